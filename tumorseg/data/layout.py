"""The data layout: `<root>/<part>/{images,masks}/[<subject>/]<name>.<ext>`, paired by path."""

from dataclasses import dataclass
from pathlib import Path

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


def _index(folder: Path) -> dict[str, Path]:
    """Map 'relative/path/without/extension' to the file, for every image file below `folder`."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTS:
            key = path.relative_to(folder).with_suffix("").as_posix()
            if key in found:
                raise UserError(f"{path} and {found[key]} are the same slice in two formats: keep one")
            found[key] = path
    return found


def subject_of(key: str) -> str:
    """The subject is the first folder level; in a flat layout each image is its own subject."""
    return key.split("/", 1)[0]


def find_pairs(part_dir: Path) -> list[Sample]:
    """All (image, mask) pairs of one part, matched by relative path (any image extension)."""
    images_dir, masks_dir = part_dir / "images", part_dir / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise UserError(f"{folder} is missing: a data part holds images/ and masks/ with the same relative paths")
    images, masks = _index(images_dir), _index(masks_dir)
    if not images:
        raise UserError(f"{images_dir} holds no images ({', '.join(IMAGE_EXTS)}): put the slices there")
    orphans = sorted(set(images) - set(masks))
    if orphans:
        raise UserError(
            f"{images[orphans[0]]} has no mask at {masks_dir / orphans[0]}.<ext> "
            f"({len(orphans)} image(s) without a mask): add the masks or remove those images"
        )
    strays = sorted(set(masks) - set(images))
    if strays:
        raise UserError(
            f"{masks[strays[0]]} has no image at {images_dir / strays[0]}.<ext> "
            f"({len(strays)} mask(s) without an image): add the images or remove those masks"
        )
    return [Sample(images[k], masks[k], subject_of(k), k) for k in sorted(images)]


def find_parts(root: Path) -> dict[str, Path]:
    """The parts (train/val/test) present under a data set root."""
    return {part: root / part for part in PARTS if (root / part).is_dir()}
