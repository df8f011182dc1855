"""The viewer page (index.html) that predict and evaluate write beside their outputs: one self-contained file.

No server and no network: the page references its slice pictures by relative path (`viewer/<subject>/<i>.png`,
the gray slice; `<i>.pred.png` and `<i>.truth.png`, transparent layers of the predicted and the true tumor, written
only for slices that hold one) and carries its data as JSON. It lists the subjects (volumes) with their figures,
scrolls through the chosen one's slices (range slider, arrow keys; up/down: the subject), toggles the prediction
(checkbox, key m) and the truth (t), and opens on the first subject's slice of largest tumor area. The URL can
choose: `index.html#subject=<name>&slice=<k>` (k: the slice's label, its index in a volume).
"""

import html
import json
from dataclasses import asdict, dataclass, field
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
    page = (TEMPLATE.replace("__TITLE__", html.escape(title)).replace("__NOTE__", html.escape(note))
            .replace("__DATA__", data))
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")  # the same page in any locale's encoding


def write_page(written: OutputFiles, out: Path, title: str, columns: list[str], subjects: list[PageSubject],
               note: str = "") -> Path:
    """Write out/index.html for the subjects (in the order given) and return its path."""
    written.text(out / PAGE, page_html(title, columns, subjects, note))
    return out / PAGE


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { margin: 0; font: 13px system-ui, sans-serif; background: #1d1f24; color: #dde; display: flex; height: 100vh; }
#side { width: 410px; flex: none; overflow: auto; border-right: 1px solid #333; padding: 8px; box-sizing: border-box; }
#main { flex: 1; padding: 8px 14px; overflow: auto; }
h1 { font-size: 15px; margin: 0 0 4px; overflow-wrap: anywhere; } .note { color: #99a; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
td, th { padding: 3px 4px; text-align: right; vertical-align: bottom; }
th { font-weight: 600; color: #aab; }
td:first-child, th:first-child { text-align: left; min-width: 8em; overflow-wrap: break-word; }
tbody tr { cursor: pointer; } tbody tr:hover { background: #2b2f38; } tr.on { background: #2d4a6e; }
#stack { position: relative; width: 512px; background: #000; margin-top: 6px; }
#stack img { display: block; width: 100%; image-rendering: pixelated; }
#stack img.layer { position: absolute; left: 0; top: 0; height: 100%; }
#slider { width: 512px; } .keys { color: #99a; }
</style></head>
<body>
<div id="side"><h1>__TITLE__</h1><p class="note">__NOTE__</p><table><thead id="head"></thead>
<tbody id="list"></tbody></table></div>
<div id="main">
<div id="where"></div>
<div id="stack"><img id="image" alt=""><img id="pred" class="layer" alt=""><img id="truth" class="layer" alt=""></div>
<input id="slider" type="range" min="0" value="0" step="1">
<div><label><input id="showPred" type="checkbox" checked> prediction (m)</label>
<label id="truthBox"><input id="showTruth" type="checkbox" checked> truth (t)</label></div>
<p class="keys">&larr; &rarr; slice, &uarr; &darr; subject, m prediction, t truth; the address
#subject=NAME&amp;slice=K opens a slice</p>
</div>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const $ = (id) => document.getElementById(id);
let s = 0, k = 0;

function startOf(subject) {
  const by = (key) => subject.slices.reduce((best, x, i) => (x[key] > subject.slices[best][key] ? i : best), 0);
  const i = by("area");
  if (subject.slices[i].area > 0) return i;
  const j = by("truth_area");
  return subject.slices[j].truth_area > 0 ? j : Math.floor(subject.slices.length / 2);
}

function show() {
  const subject = DATA.subjects[s], slice = subject.slices[k];
  $("image").src = slice.image;
  for (const [id, box, src] of [["pred", "showPred", slice.pred], ["truth", "showTruth", slice.truth]]) {
    const img = $(id);
    if (src && $(box).checked) { img.src = src; img.style.display = "block"; }
    else { img.removeAttribute("src"); img.style.display = "none"; }
  }
  $("slider").max = subject.slices.length - 1;
  $("slider").value = k;
  $("where").textContent = subject.name + ": slice " + slice.label + " (" + (k + 1) + " of " +
    subject.slices.length + "), predicted " + slice.area + " px" +
    (slice.truth ? ", true " + slice.truth_area + " px" : "");
  document.querySelectorAll("#list tr").forEach((row, i) => row.classList.toggle("on", i === s));
  try { history.replaceState(null, "", "#subject=" + encodeURIComponent(subject.name) +
                             "&slice=" + encodeURIComponent(slice.label)); } catch (e) { /* file: URLs may refuse */ }
}

function choose(subject, slice) { s = subject; k = slice === undefined ? startOf(DATA.subjects[s]) : slice; show(); }

function fromAddress() {
  const params = new URLSearchParams(location.hash.slice(1) || location.search.slice(1));
  const i = DATA.subjects.findIndex((x) => x.name === params.get("subject"));
  const subject = i < 0 ? 0 : i;
  const label = params.get("slice");
  const j = label === null ? -1 : DATA.subjects[subject].slices.findIndex((x) => x.label === label);
  choose(subject, j < 0 ? undefined : j);
}

function build() {
  const head = document.createElement("tr");
  for (const name of ["subject", ...DATA.columns]) {
    const th = document.createElement("th"); th.textContent = name; head.appendChild(th);
  }
  $("head").appendChild(head);
  DATA.subjects.forEach((subject, i) => {
    const row = document.createElement("tr");
    for (const value of [subject.name, ...DATA.columns.map((c) => subject.figures[c])]) {
      const td = document.createElement("td");
      td.textContent = value === null || value === undefined ? "n/a"
        : typeof value === "number" && !Number.isInteger(value) ? String(Number(value.toPrecision(3))) : String(value);
      row.appendChild(td);
    }
    row.addEventListener("click", () => choose(i));
    $("list").appendChild(row);
  });
  const truth = DATA.subjects.some((subject) => subject.slices.some((x) => x.truth));
  $("truthBox").style.display = truth ? "" : "none";
}

$("slider").addEventListener("input", () => { k = Number($("slider").value); show(); });
$("showPred").addEventListener("change", show);
$("showTruth").addEventListener("change", show);
document.addEventListener("keydown", (event) => {
  if (event.target === $("slider") && event.key.startsWith("Arrow")) return;  // the slider steps itself
  const n = DATA.subjects[s].slices.length, m = DATA.subjects.length;
  if (event.key === "ArrowRight") { k = Math.min(n - 1, k + 1); show(); }
  else if (event.key === "ArrowLeft") { k = Math.max(0, k - 1); show(); }
  else if (event.key === "ArrowDown") choose(Math.min(m - 1, s + 1));
  else if (event.key === "ArrowUp") choose(Math.max(0, s - 1));
  else if (event.key === "m") { $("showPred").checked = !$("showPred").checked; show(); }
  else if (event.key === "t") { $("showTruth").checked = !$("showTruth").checked; show(); }
  else return;
  event.preventDefault();
});
window.addEventListener("hashchange", fromAddress);
build();
if (DATA.subjects.length) fromAddress(); else $("where").textContent = "nothing to show";
</script>
</body></html>
"""
