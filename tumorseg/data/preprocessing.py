"""How a model reads a slice: one definition for training, evaluation, prediction and the ONNX export's metadata."""

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class Preprocessing:
    """Slices resized to image_size x image_size (INTER_AREA), scaled to [0, 1], then (x - mean) / std;
    a 2.5D model also reads context_slices neighbours on each side as extra channels.

    window: how a CT volume's voxels became the 8-bit slices the model was trained on: None, each slice from its
    own min..max (the public lung slices); (level, width), the fixed HU window [level - width/2, level + width/2]
    (slices made by `tumorseg convert preprocess.window=[LEVEL,WIDTH]`). Volumes are read the same way at inference.
    """

    image_size: int
    mean: float = 0.5
    std: float = 0.25
    context_slices: int = 0
    window: tuple[float, float] | None = None

    @classmethod
    def of_data_config(cls, data: dict) -> "Preprocessing":
        """The preprocessing of a run's `data` config group (a run config without data.window: None)."""
        return cls(int(data["image_size"]), float(data["mean"]), float(data["std"]),
                   int(data.get("context_slices") or 0), hu_window(data.get("window")))

    @property
    def channels(self) -> int:
        """Input channels: slice K and its neighbours."""
        return 1 + 2 * self.context_slices

    def as_dict(self) -> dict:
        out = asdict(self)
        out["window"] = None if self.window is None else list(self.window)  # JSON has no tuples
        return out

    def resize(self, gray: np.ndarray) -> np.ndarray:
        """uint8 H x W at any size -> uint8 image_size x image_size."""
        if gray.shape == (self.image_size, self.image_size):
            return gray
        return cv2.resize(gray, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)

    def normalize(self, images: np.ndarray) -> torch.Tensor:
        """uint8 array of any shape -> float32 tensor of the same shape, (x / 255 - mean) / std."""
        return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0).sub_(self.mean).div_(self.std)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A 0/1 mask to size x size for training (nearest neighbour: it stays 0/1)."""
    if mask.shape == (size, size):
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


def hu_window(value) -> tuple[float, float] | None:
    """A stored window (null, or [LEVEL, WIDTH] from a config or a model file's JSON) as None or (level, width);
    ValueError for anything else (two finite numbers, WIDTH > 0)."""
    if value is None:
        return None
    items = list(value)
    numbers = tuple(float(v) for v in items if not isinstance(v, bool))  # True is no number
    if len(numbers) != 2 or len(items) != 2 or not all(map(math.isfinite, numbers)) or numbers[1] <= 0:
        raise ValueError(f"window={items} is not [LEVEL,WIDTH] (two finite numbers in HU, WIDTH > 0)")
    return numbers


def shown_window(window: tuple[float, float] | None) -> str:
    """A window as it is typed on the command line: null or [LEVEL,WIDTH]."""
    return "null" if window is None else f"[{window[0]:g},{window[1]:g}]"
