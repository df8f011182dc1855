"""The viewer page (index.html) that predict and evaluate write beside their outputs: one self-contained file.

No server and no network: the page references its slice pictures by relative path (`viewer/<subject>/<i>.png`,
the gray slice; `<i>.pred.png` and `<i>.truth.png`, transparent layers of the predicted and the true tumor, written
only for slices that hold one) and carries its data as JSON. It lists the subjects (volumes) with their figures,
scrolls through the chosen one's slices (range slider, arrow keys; up/down: the subject), toggles the prediction
(checkbox, key m) and the truth (t), and opens on the first subject's slice of largest tumor area. The URL can
choose: `index.html#subject=<name>&slice=<k>` (k: the slice's label, its index in a volume).

The page's HTML, CSS and JS are package data, `tumorseg/writers/page/index.html` (TEMPLATE): this module fills in
its marks __TITLE__, __NOTE__ (escaped text) and __DATA__ (the JSON) in one pass.
"""

import html
import json
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from tumorseg.files.output_files import OutputFiles
from tumorseg.writers.pictures import PRED_RGB, TRUTH_RGB

FOLDER = "viewer"
PAGE = "index.html"
KINDS = ("", ".pred", ".truth")
PRED_ALPHA = 115  # of 255: the tumor's tint over the slice, as pictures.overlay blends it
TEMPLATE = "page/index.html"  # package data of tumorseg.writers: the page with its marks
MARKS = re.compile("__(TITLE|NOTE|DATA)__")


@dataclass
class PageSlice:
    """One slice on the page: its label (shown, and chosen by #slice=), its layers' relative URLs (None: empty),
    and its predicted and true tumor pixels."""

    label: str
    image: str
    pred: str | None
    truth: str | None
    area: int
    truth_area: int = 0


@dataclass
class PageSubject:
    """One subject (a volume, or a folder of slices) on the page: its name, its figures (column -> value)."""

    name: str
    figures: dict
    slices: list[PageSlice] = field(default_factory=list)


def layer_paths(out: Path, subject: str, count: int) -> list[Path]:
    """Every file the layers of a subject of `count` slices may take (to claim before writing)."""
    return [out / FOLDER / subject / f"{i}{kind}.png" for i in range(count) for kind in KINDS]


def layer(mask: np.ndarray, rgb: tuple[int, int, int], fill_alpha: int) -> np.ndarray:
    """H x W 0/1 mask -> H x W x 4 BGRA: the region tinted at fill_alpha, its outline opaque, the rest clear."""
    out = np.zeros((*mask.shape, 4), np.uint8)
    out[..., :3] = rgb[::-1]
    out[..., 3] = np.where(mask > 0, fill_alpha, 0)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (*rgb[::-1], 255), 1)
    return out


def write_layers(written: OutputFiles, out: Path, subject: str, labels: list[str], grays: list[np.ndarray],
                 masks: list[np.ndarray], truths: list[np.ndarray | None] | None = None) -> list[PageSlice]:
    """Write a subject's slice pictures (gray H x W uint8, masks 0/1 of the same size) and return their page entries."""
    truths = truths or [None] * len(grays)
    slices = []
    for i, (label, gray, mask, truth) in enumerate(zip(labels, grays, masks, truths)):
        base = out / FOLDER / subject / str(i)
        written.image(base.with_suffix(".png"), gray)
        entry = PageSlice(str(label), url(out, base.with_suffix(".png")), None, None, int(mask.sum()))
        if mask.any():
            written.image(base.with_name(f"{i}.pred.png"), layer(mask, PRED_RGB, PRED_ALPHA))
            entry.pred = url(out, base.with_name(f"{i}.pred.png"))
        if truth is not None and truth.any():
            written.image(base.with_name(f"{i}.truth.png"), layer(truth, TRUTH_RGB, 0))
            entry.truth, entry.truth_area = url(out, base.with_name(f"{i}.truth.png")), int(truth.sum())
        slices.append(entry)
    return slices


def url(out: Path, path: Path) -> str:
    """path relative to out as a URL (each part quoted, so '#', '?' and spaces in names stay part of the path)."""
    return "/".join(quote(part) for part in path.relative_to(out).parts)


def finite(value):
    """A figure as the page shows it: NaN and infinities as None (n/a), anything else as it is."""
    return None if isinstance(value, float) and not np.isfinite(value) else value


def page_html(title: str, columns: list[str], subjects: list[PageSubject], note: str = "") -> str:
    """The page: TEMPLATE with its title, note and data (the JSON made safe inside a script element)."""
    rows = [asdict(s) | {"figures": {k: finite(v) for k, v in s.figures.items()}} for s in subjects]
    data = json.dumps({"columns": columns, "subjects": rows}, allow_nan=False)
    data = data.replace("<", "\\u003c")  # valid JSON that no "</script>" or "<!--" in a name can end early
    values = {"TITLE": html.escape(title), "NOTE": html.escape(note), "DATA": data}
    page = MARKS.sub(lambda mark: values[mark[1]], template())  # one pass: a mark in a value stays as it is
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")  # the same page in any locale's encoding


@cache
def template() -> str:
    """The page's HTML, CSS and JS with its marks, as the package ships it (tumorseg/writers/page/index.html)."""
    folder, name = TEMPLATE.split("/")
    return (files(__package__) / folder / name).read_text(encoding="utf-8")


def write_page(written: OutputFiles, out: Path, title: str, columns: list[str], subjects: list[PageSubject],
               note: str = "") -> Path:
    """Write out/index.html for the subjects (in the order given) and return its path."""
    written.text(out / PAGE, page_html(title, columns, subjects, note))
    return out / PAGE

