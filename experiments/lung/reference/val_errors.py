"""Where the shipped model loses per-subject Dice on val: a diagnosis, not a choice (val chooses nothing).

Frozen: ran at commit 439b099 (2026-11-29); it imports APIs that have since changed. Kept as the record of what
ran; not linted, not run.

    python experiments/lung/reference/val_errors.py DATA_ROOT     (writes val-errors.md and val-errors.png here)

The model's probabilities (its stored affine TTA, fp32) on the 4 val subjects: per-subject Dice at
thresholds around the shipped 0.3, the tumor and prediction areas of every slice of the two
subjects that hold the mean down (57, 60), and zoomed overlays of some of their slices
(ground truth outlined green, prediction red).
"""

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from tumorseg.evaluate import by_subject, dataset_for
from tumorseg.inference import REFERENCE_MODEL, load_predictor
from tumorseg.metrics import SegMetrics
from tumorseg.pictures import grid, overlay, save_rgb
from tumorseg.postprocess import slice_index

HERE = Path(__file__).parent
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
SHOWN = ("Subject_57/205", "Subject_57/209", "Subject_57/214", "Subject_60/47", "Subject_60/48", "Subject_60/52")
ZOOM, SIDE = 4, 64  # a 64x64 window around the tumor, drawn 4x larger


def zoomed(gray: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The slice and its overlay in a window centred on tumor and prediction, side by side, enlarged."""
    ys, xs = np.nonzero(pred | truth)
    y0, x0 = (int(np.clip(c.mean() - SIDE // 2, 0, n - SIDE)) for c, n in ((ys, gray.shape[0]), (xs, gray.shape[1])))
    window = np.s_[y0:y0 + SIDE, x0:x0 + SIDE]
    plain = cv2.cvtColor(gray[window], cv2.COLOR_GRAY2RGB)
    both = np.concatenate([plain, overlay(gray[window], pred[window], truth[window], alpha=0.0)], axis=1)
    return cv2.resize(both, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST)


def main(root: Path) -> None:
    predictor = load_predictor(REFERENCE_MODEL)
    dataset = dataset_for(predictor, root / "val")
    metrics = {t: SegMetrics(threshold=t) for t in THRESHOLDS}
    rows, tiles = [], []
    for positions, probs, y in by_subject(predictor, dataset, 16, predictor.tta):
        subject = torch.tensor([dataset.subject_ids[i] for i in positions])
        for metric in metrics.values():
            metric.update(probs, y, subject)
        for k, i in enumerate(positions):
            sample, truth, pred = dataset.samples[i], y[k, 0].numpy() > 0.5, probs[k, 0].numpy() > predictor.threshold
            if sample.subject in ("Subject_57", "Subject_60") and truth.any() | pred.any():
                rows.append(f"| {sample.subject} | {slice_index(sample.image)} | {truth.sum()} | {pred.sum()} "
                            f"| {(truth & pred).sum()} |")
            if sample.key in SHOWN:
                tiles.append(zoomed(dataset.images[i], pred, truth))
    names = dataset.subject_names
    lines = ["# The shipped model on val, by threshold and by slice (diagnosis only)", "",
             f"`python experiments/lung/reference/val_errors.py DATA_ROOT`: {REFERENCE_MODEL.name}, "
             "its affine TTA, fp32; "
             f"the shipped threshold is {predictor.threshold}.", "",
             "| threshold | Dice | per subject | " + " | ".join(names) + " |", "|---" * (3 + len(names)) + "|"]
    for t, metric in metrics.items():
        whole = metric.compute()
        each = metric.by_subject()
        lines.append(f"| {t} | {whole['dice']:.4f} | {whole['dice_per_subject']:.4f} | "
                     + " | ".join(f"{each[i]['dice']:.3f}" for i in range(len(names))) + " |")
    lines += ["", "Slices of subjects 57 and 60 with tumor or prediction (pixels at the shipped threshold):", "",
              "| subject | slice | tumor | predicted | both |", "|---|---|---|---|---|", *rows, "",
              "`val-errors.png`, one row per slice (" + ", ".join(SHOWN) + "): the 64x64 window, then the same "
              "with the ground truth outlined green and the prediction red."]
    (HERE / "val-errors.md").write_text("\n".join(lines) + "\n")
    save_rgb(HERE / "val-errors.png", grid(tiles))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
