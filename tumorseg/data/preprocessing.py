"""How a model reads a slice: one definition for training, evaluation, prediction and the ONNX export's metadata."""

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class Preprocessing:
    """Slices resized to image_size x image_size (INTER_AREA), scaled to [0, 1], then (x - mean) / std;
    a 2.5D model also reads context_slices neighbours on each side as extra channels."""

    image_size: int
    mean: float = 0.5
    std: float = 0.25
    context_slices: int = 0

    @classmethod
    def of_data_config(cls, data: dict) -> "Preprocessing":
        """The preprocessing of a run's `data` config group."""
        return cls(int(data["image_size"]), float(data["mean"]), float(data["std"]),
                   int(data.get("context_slices") or 0))

    @property
    def channels(self) -> int:
        """Input channels: slice K and its neighbours."""
        return 1 + 2 * self.context_slices

    def as_dict(self) -> dict:
        return asdict(self)

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
