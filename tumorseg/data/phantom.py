"""Synthetic CT-like slices with tumors, written in the project's data layout (demo and tests).

Each subject is a short run of consecutive slices through a roughly spherical tumor in one lung,
plus a few distant tumor-free slices, like the real lung set. Vessel specks in the lungs are
bright like the tumor but tiny, so a model has to learn size and shape, not just brightness.
"""

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from tumorseg.errors import UserError

MARKER = "phantom.json"


def _ellipse(shape: tuple[int, int], center, axes, angle: float = 0.0) -> np.ndarray:
    """Boolean mask of a filled ellipse."""
    canvas = np.zeros(shape, np.uint8)
    c = (int(round(center[0])), int(round(center[1])))
    a = (max(1, int(round(axes[0]))), max(1, int(round(axes[1]))))
    cv2.ellipse(canvas, c, a, angle, 0, 360, 1, thickness=-1)
    return canvas.astype(bool)


def _subject(rng: np.random.Generator, size: int, slices: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(slice index, image, mask) for one subject; anatomy drifts slowly from slice to slice."""
    s = size / 128.0
    body_c = (size / 2 + rng.uniform(-3, 3) * s, size / 2 + rng.uniform(-3, 3) * s)
    body_ax = (rng.uniform(50, 56) * s, rng.uniform(38, 44) * s)
    lung_ax = (rng.uniform(15, 19) * s, rng.uniform(24, 30) * s)
    lung_dx = rng.uniform(21, 25) * s
    n_vessels = int(rng.integers(12, 24))
    vessels = rng.uniform(-1, 1, size=(n_vessels, 2)) * 0.8  # positions relative to a lung
    vessel_drift = rng.normal(0, 0.01, size=(n_vessels, 2))
    side = rng.choice([-1, 1])
    tumor_rel = rng.uniform(-0.45, 0.45, size=2)
    tumor_r = rng.uniform(3.5, 9.0) * s
    half = max(2, slices // 2 - 1)
    start = int(rng.integers(20, 200))
    center_k = start + slices // 2
    # Consecutive slices around the tumor, plus tumor-free ones far away (~15% of a subject).
    n_far = max(1, round(slices * 0.15))
    ks = list(range(center_k - (slices - n_far) // 2, center_k - (slices - n_far) // 2 + slices - n_far))
    ks += [int(k) for k in rng.choice(np.arange(0, start - half - 3), size=n_far, replace=False)]
    out = []
    for k in sorted(ks):
        dz = k - center_k
        image = np.full((size, size), 8.0, np.float32)
        image[_ellipse(image.shape, body_c, (body_ax[0], body_ax[1] * (1 - 0.002 * abs(dz))))] = 150.0
        mask = np.zeros((size, size), bool)
        for lung_side in (-1, 1):
            lc = (body_c[0] + lung_side * lung_dx, body_c[1] - 2 * s)
            lax = (lung_ax[0] * (1 + 0.004 * dz), lung_ax[1])
            lung = _ellipse(image.shape, lc, lax)
            image[lung] = 40.0
            for (vx, vy), (ddx, ddy) in zip(vessels, vessel_drift):
                vc = (lc[0] + (vx + ddx * dz) * lax[0], lc[1] + (vy + ddy * dz) * lax[1])
                image[_ellipse(image.shape, vc, (rng.uniform(0.6, 1.6) * s,) * 2) & lung] = rng.uniform(120, 175)
            if lung_side == side and abs(dz) < half:
                r = tumor_r * np.sqrt(1 - (dz / half) ** 2)
                if r >= 1.5 * s:
                    tc = (lc[0] + tumor_rel[0] * lax[0], lc[1] + tumor_rel[1] * lax[1])
                    blob = _ellipse(image.shape, tc, (r, r * rng.uniform(0.75, 1.0)), rng.uniform(0, 180))
                    mask |= blob
        image[mask] = rng.uniform(140, 185)
        image = cv2.GaussianBlur(image, (0, 0), 0.8 * s)
        image += rng.normal(0, 7, image.shape).astype(np.float32)
        out.append((k, np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8) * 255))
    return out


def generate_phantom(
    root: str | os.PathLike,
    train_subjects: int = 10,
    val_subjects: int = 3,
    slices: int = 16,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write the phantom data set once to `root` (train/ and val/, one folder per subject)."""
    root = Path(root)
    params = dict(train_subjects=train_subjects, val_subjects=val_subjects, slices=slices, size=size, seed=seed)
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root
    if root.exists() and not marker.is_file():
        raise UserError(f"{root} exists and is not a phantom data set: set paths.data_dir to another folder")
    # Build beside the target and rename, so an interrupted run never leaves half a data set.
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    names = [("train", i) for i in range(train_subjects)] + [("val", train_subjects + i) for i in range(val_subjects)]
    for part, subject in names:
        sub_rng = np.random.default_rng([seed, subject])
        for k, image, mask in _subject(sub_rng, size, slices):
            for kind, array in (("images", image), ("masks", mask)):
                path = tmp / part / kind / f"Subject_{subject}" / f"{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), array)
    (tmp / MARKER).write_text(json.dumps(params))
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, root)
    return root
