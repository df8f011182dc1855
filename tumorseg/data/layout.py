"""The data layout: `<root>/<part>/{images,masks}/[<subject>/]<name>.<ext>`, paired by path."""

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tumorseg.data.preprocessing import hu_window, shown_window
from tumorseg.data.problems import Problems
from tumorseg.errors import UserError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
PARTS = ("train", "val", "test")
# Where `tumorseg convert` records each case it wrote into a root: <root>/.convert/<case>.json (settings, files, done).
CONVERT_RECORDS = ".convert"


@dataclass(frozen=True)
class Sample:
    """One slice: its image and mask files, its subject, and its path relative to images/."""

    image: Path
    mask: Path
    subject: str
    key: str


def files_below(folder: Path) -> list[Path]:
    """Every file below folder, sorted, through symlinked folders too (a subject linked from elsewhere); each real
    folder once, so a link loop ends."""
    seen, files = set(), []
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        files += [Path(top, name) for name in names]
    return sorted(f for f in files if f.is_file())


def _index(folder: Path, problems: Problems) -> dict[str, Path]:
    """Map 'relative/path/without/extension' to the file, for every image file below `folder`."""
    found: dict[str, Path] = {}
    for path in files_below(folder):
        if path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_EXTS:
            problems.note("ignored", path)
            continue
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in found:
            problems.error(f"{path} and {found[key]} are the same slice in two formats: keep one")
        found[key] = path
    return found


def check_root(root: Path) -> None:
    """Refuse a data set root that is not a folder, in one line."""
    if root.exists() and not root.is_dir():
        raise UserError(f"data.root={root} is a file: data.root must be a folder holding train/ (and val/, test/)")
    if not root.is_dir():
        raise UserError(f"data.root={root} does not exist (data.root, else $TUMORSEG_DATA, else "
                        f"paths.data_dir/lung-ct-slices): point data.root at a folder holding train/ (and val/, "
                        f"test/), or use data=phantom for the embedded synthetic set")


def convert_windows(root: Path) -> dict[tuple[float, float] | None, list[Path]]:
    """The windows `tumorseg convert` made root's slices with (None: per-slice min..max; (level, width)), each with
    the records that say so; {} for a root convert did not write. A record that cannot be read says nothing."""
    found = defaultdict(list)
    for record in sorted((root / CONVERT_RECORDS).glob("*.json")):
        try:
            settings = json.loads(record.read_text()).get("settings", {})
            found[hu_window(settings["window"])].append(record)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
            continue
    return dict(found)


def check_window(root: Path, window: tuple[float, float] | None) -> None:
    """Refuse data.window when convert made root's slices with another window (or with several): the model would
    record a window its training slices were not made with, and read every volume wrongly at inference."""
    made = convert_windows(root)
    if len(made) > 1:
        listed = ", ".join(f"{shown_window(w)} ({records[0].name})" for w, records in made.items())
        raise UserError(f"{root}: tumorseg convert made its slices with different windows ({listed}): convert the "
                        f"task again into a new output= with one preprocess.window")
    if made and window not in made:
        (other, records), = made.items()
        raise UserError(f"data.window={shown_window(window)}, but tumorseg convert made the slices of {root} with "
                        f"preprocess.window={shown_window(other)} ({records[0]}): add data.window="
                        f"{shown_window(other)}, so that the model reads CT volumes as its slices were made")


def slice_index(path: str | Path) -> int | None:
    """The slice index a file name stands for (.../117.png -> 117); None when the name is not a number."""
    stem = Path(path).stem
    # ASCII digits only: str.isdigit() also accepts "²" or "٣", which int() refuses or reads as another number.
    return int(stem) if stem.isascii() and stem.isdigit() else None


def subject_of(key: str) -> str:
    """The subject is the first folder level; in a flat layout each image is its own subject."""
    return key.split("/", 1)[0]


def below_top(key: str) -> str:
    """The key without its first folder level."""
    return key.split("/", 1)[1]


def one_folder_too_deep(lone: dict[str, Path], other: dict[str, Path]) -> dict[str, list[str]]:
    """Top folders of `lone` whose every file is a file of `other` by the rest of its path: {folder: its keys}."""
    tops: dict[str, list[str]] = defaultdict(list)
    for key in lone:
        if "/" in key:
            tops[subject_of(key)].append(key)
    return {top: keys for top, keys in tops.items() if all(below_top(k) in other for k in keys)}


def report_misplaced(lone: dict[str, Path], other: dict[str, Path], folder: Path, kind: str,
                     problems: Problems) -> None:
    """One error per folder of `kind` files sitting one level too deep below `folder`; their files leave both
    orphan lists (the move fixes them all)."""
    for top, keys in one_folder_too_deep(lone, other).items():
        problems.error(f"{folder / top} holds {len(keys)} {kind}(s) one folder too deep (e.g. {lone[keys[0]]} for "
                       f"{other[below_top(keys[0])]}): move its contents up into {folder}")
        for key in keys:
            del other[below_top(key)], lone[key]


def report_orphans(images: dict[str, Path], masks: dict[str, Path], part_dir: Path, problems: Problems) -> None:
    """Every image without a mask and mask without an image; an empty masks/ or files one folder too deep as one
    line each."""
    images_dir, masks_dir = part_dir / "images", part_dir / "masks"
    if not masks:
        problems.error(f"{masks_dir} holds no masks for the {len(images)} image(s) in {images_dir}: put each "
                       f"image's mask there under the image's relative path")
        return
    lone_images = {k: images[k] for k in sorted(set(images) - set(masks))}
    lone_masks = {k: masks[k] for k in sorted(set(masks) - set(images))}
    report_misplaced(lone_masks, lone_images, masks_dir, "mask", problems)
    report_misplaced(lone_images, lone_masks, images_dir, "image", problems)
    for key, image in lone_images.items():
        problems.error(f"{image} has no mask at {masks_dir / key}.<ext>: add the mask or remove the image")
    for key, mask in lone_masks.items():
        problems.error(f"{mask} has no image at {images_dir / key}.<ext>: add the image or remove the mask")


def find_pairs(part_dir: Path, problems: Problems | None = None) -> list[Sample]:
    """All (image, mask) pairs of one part, matched by relative path (any image extension).

    Orphans are recorded in `problems` (all of them); without one, the first raises UserError.
    """
    collect = problems if problems is not None else Problems()
    images_dir, masks_dir = part_dir / "images", part_dir / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise UserError(f"{folder} is missing: a data part holds images/ and masks/ with the same relative paths")
    images, masks = _index(images_dir, collect), _index(masks_dir, collect)
    if not images:
        raise UserError(f"{images_dir} holds no images ({', '.join(IMAGE_EXTS)}): put the slices there")
    report_orphans(images, masks, part_dir, collect)
    if problems is None:
        collect.raise_errors(part_dir.parent)
    return [Sample(images[k], masks[k], subject_of(k), k) for k in sorted(images) if k in masks]


def find_parts(root: Path) -> dict[str, Path]:
    """The parts (train/val/test) present under a data set root."""
    return {part: root / part for part in PARTS if (root / part).is_dir()}
