"""Decoding image files to 8-bit gray, and masks to 0/1, with every fault named by file."""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tumorseg.data.layout import Sample
from tumorseg.data.problems import Problems
from tumorseg.errors import UserError


# Every image and mask of every command is decoded by read_gray, which first reads the header and refuses more
# pixels than this (a small file can announce gigabytes: a decompression bomb); predict's max_pixels= sets it.
MAX_PIXELS = 100_000_000


def check_pixels(path: Path, max_pixels: int) -> None:
    """Refuse an image whose header announces more than max_pixels (a decompression bomb)."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError as err:
        raise UserError(f"{path} is refused as a decompression bomb ({err}): shrink it") from None
    except Exception:  # noqa: BLE001 - not readable by Pillow: the decoder below reports it
        return
    if width * height > max_pixels:
        raise UserError(f"{path} is {width}x{height} = {width * height} pixels, above max_pixels={max_pixels}: "
                        f"shrink it or raise max_pixels")


def read_gray(path: Path, max_pixels: int = MAX_PIXELS, problems: Problems | None = None) -> np.ndarray:
    """Decode an image file to one 8-bit gray channel (16-bit scaled, colour converted), refusing a bomb first."""
    check_pixels(path, max_pixels)
    size = path.stat().st_size if path.is_file() else -1
    if size == 0:
        raise UserError(f"{path} is an empty (zero-byte) file: replace it with the real image or remove it")
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED) if size > 0 else None
    if img is None:
        raise UserError(f"{path} cannot be decoded (corrupt, truncated or not an image): replace or remove it")
    if img.ndim == 3:
        if problems is not None:
            problems.note("color", path)
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    if img.dtype == np.uint16:
        if problems is not None:
            problems.note("sixteen_bit", path)
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return img


def binarize(mask: np.ndarray, path: Path, threshold: int, strict: bool, problems: Problems | None) -> np.ndarray:
    """0/1 mask: 0 and one other level as they are; anything else binarized at threshold (or refused)."""
    levels = np.unique(mask)
    if len(levels) <= 1 or (len(levels) == 2 and levels[0] == 0):
        return (mask > 0).astype(np.uint8)
    if strict:
        shown = ", ".join(str(v) for v in levels[:6]) + (", ..." if len(levels) > 6 else "")
        raise UserError(f"{path} has {len(levels)} levels ({shown}), not 0 and one other: fix the mask, "
                        f"or set data.strict=false to binarize it at data.mask_threshold={threshold}")
    if problems is not None:
        problems.note("multilevel", path)
    return (mask > threshold).astype(np.uint8)


@dataclass
class Pair:
    """A decoded slice at its own size: image uint8, mask 0/1."""

    image: np.ndarray
    mask: np.ndarray


def load_pair(sample: Sample, problems: Problems | None = None, mask_threshold: int = 127,
              strict: bool = False, max_pixels: int = MAX_PIXELS) -> Pair:
    """Decode and check one (image, mask) pair; a fault raises UserError naming the file."""
    image = read_gray(sample.image, max_pixels, problems)
    mask = read_gray(sample.mask, max_pixels, problems)
    if image.shape != mask.shape:
        raise UserError(
            f"{sample.mask} is {mask.shape[1]}x{mask.shape[0]} but its image {sample.image} is "
            f"{image.shape[1]}x{image.shape[0]}: image and mask must have the same size"
        )
    return Pair(image, binarize(mask, sample.mask, mask_threshold, strict, problems))
