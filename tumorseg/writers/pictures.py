"""Overlays and grids: the image with the predicted tumor tinted red and the ground truth outlined green."""

import cv2
import numpy as np

from tumorseg.files.output_files import imwrite, replacing

PRED_RGB = (255, 40, 40)
TRUTH_RGB = (40, 255, 40)


def overlay(gray: np.ndarray, pred: np.ndarray, truth: np.ndarray | None = None, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8: prediction tinted and outlined in red; ground truth (if any) outlined in green."""
    rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    pred = pred.astype(np.uint8)
    if pred.any():
        tint = np.zeros_like(rgb)
        tint[:] = PRED_RGB
        rgb = np.where(pred[..., None] > 0, (rgb * (1 - alpha) + tint * alpha).astype(np.uint8), rgb)
        contours, _ = cv2.findContours(pred, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, PRED_RGB, 1)
    if truth is not None and truth.any():
        contours, _ = cv2.findContours(truth.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, TRUTH_RGB, 1)
    return rgb


def triptych(gray: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """image | ground truth | prediction overlay, side by side (RGB)."""
    image = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    truth_rgb = overlay(gray, np.zeros_like(truth), truth)
    return np.concatenate([image, truth_rgb, overlay(gray, pred, truth)], axis=1)


def grid(tiles: list[np.ndarray], columns: int = 1, pad: int = 2) -> np.ndarray:
    """Tiles of one size in rows of `columns`, on a white background (RGB)."""
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = tile
    return out


def bgr(rgb: np.ndarray) -> np.ndarray:
    """An RGB array in the channel order OpenCV writes (BGR)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def save_rgb(path, rgb: np.ndarray) -> None:
    """Write an RGB array as PNG, in one step (output_files.replacing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "hydra.run.dir") as temp:
        imwrite(temp, bgr(rgb))
