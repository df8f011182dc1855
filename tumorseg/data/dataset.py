"""Slices decoded once into a uint8 cache, then augmented and turned into tensors per item."""

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tumorseg.data.layout import Sample
from tumorseg.errors import UserError


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


def read_gray(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file to one 8-bit gray channel (16-bit scaled, colour converted)."""
    if max_pixels:
        check_pixels(path, max_pixels)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.empty(0, np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise UserError(f"{path} cannot be read as an image (empty, corrupt or not an image): replace or remove it")
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return img


def load_pair(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image (uint8) and binary mask (uint8 0/1), both resized to size x size."""
    image, mask = read_gray(sample.image), read_gray(sample.mask)
    if image.shape != mask.shape:
        raise UserError(
            f"{sample.mask} is {mask.shape[1]}x{mask.shape[0]} but its image {sample.image} is "
            f"{image.shape[1]}x{image.shape[0]}: image and mask must have the same size"
        )
    if image.shape != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return image, (mask > 0).astype(np.uint8)


class SegDataset(Dataset):
    """(image, mask, subject id): image 1xHxW normalized float, mask 1xHxW in {0, 1}, id an int."""

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int,
        transform: Callable | None = None,
        mean: float = 0.5,
        std: float = 0.25,
        threads: int = 4,
    ):
        self.samples = list(samples)
        self.subject_names = sorted({s.subject for s in self.samples})
        ids = {name: i for i, name in enumerate(self.subject_names)}
        self.subject_ids = [ids[s.subject] for s in self.samples]
        self.transform = transform
        self.mean, self.std = mean, std
        # Decode every file once, up front: later epochs (and forked workers) read the cache.
        with ThreadPoolExecutor(max_workers=threads) as pool:
            pairs = list(pool.map(lambda s: load_pair(s, image_size), self.samples))
        self.images = np.stack([p[0] for p in pairs]) if pairs else np.empty((0, image_size, image_size), np.uint8)
        self.masks = np.stack([p[1] for p in pairs]) if pairs else np.empty((0, image_size, image_size), np.uint8)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, mask = self.images[index], self.masks[index]
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        x = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0).sub_(self.mean).div_(self.std)
        y = torch.from_numpy(np.ascontiguousarray(mask)).float()
        return x[None], y[None], self.subject_ids[index]
