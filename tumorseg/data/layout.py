"""The data layout: `<root>/<part>/{images,masks}/[<subject>/]<name>.<ext>`, paired by path."""

import os
from dataclasses import dataclass
from pathlib import Path

from tumorseg.data.problems import Problems
from tumorseg.errors import UserError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
PARTS = ("train", "val", "test")


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


def subject_of(key: str) -> str:
    """The subject is the first folder level; in a flat layout each image is its own subject."""
    return key.split("/", 1)[0]


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
    for key in sorted(set(images) - set(masks)):
        collect.error(f"{images[key]} has no mask at {masks_dir / key}.<ext>: add the mask or remove the image")
    for key in sorted(set(masks) - set(images)):
        collect.error(f"{masks[key]} has no image at {images_dir / key}.<ext>: add the image or remove the mask")
    if problems is None:
        collect.raise_errors(part_dir.parent)
    return [Sample(images[k], masks[k], subject_of(k), k) for k in sorted(images) if k in masks]


def find_parts(root: Path) -> dict[str, Path]:
    """The parts (train/val/test) present under a data set root."""
    return {part: root / part for part in PARTS if (root / part).is_dir()}
