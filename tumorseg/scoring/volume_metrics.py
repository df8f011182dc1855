"""3D figures of predicted tumor masks: volume in mL, 3D components, per-case Dice, volume error and detection.

Components are 26-connected (touching by a corner across neighbouring slices links), as the 3D post-processing
counts them (tumorseg.inference.postprocess.CUBE). Dice follows the MSD / nnU-Net convention: 2|P∩T| / (|P| + |T|)
per case, undefined (None) for a case with neither truth nor prediction, and such cases are left out of the mean.
"""

import numpy as np
from scipy import ndimage

from tumorseg.inference.postprocess import CUBE


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(labels, count) of the 26-connected components of a K x H x W 0/1 mask; labels int32, 0 = background."""
    return ndimage.label(np.asarray(mask) > 0, structure=CUBE)


def volume_figures(mask: np.ndarray, voxel_ml: float) -> dict:
    """A K x H x W 0/1 mask's tumor voxels and mL, its components, the largest one's mL, the first and last slice
    index (k) holding tumor (None when there is none)."""
    labels, n = components(mask)
    sizes = np.bincount(labels.ravel())[1:] if n else np.zeros(0, np.int64)
    voxels = int(sizes.sum())
    slices = np.flatnonzero(np.asarray(mask).any(axis=(1, 2)))
    return dict(tumor_voxels=voxels, tumor_ml=round(voxels * voxel_ml, 4), components=int(n),
                largest_ml=round(int(sizes.max()) * voxel_ml, 4) if n else 0.0,
                first_slice=int(slices[0]) if len(slices) else None,
                last_slice=int(slices[-1]) if len(slices) else None)


def dice(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """3D Dice of two masks of one shape; None when both are empty."""
    p, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    total = int(p.sum()) + int(t.sum())
    return None if total == 0 else 2.0 * int((p & t).sum()) / total


def detection(pred: np.ndarray, truth: np.ndarray) -> dict:
    """True 3D components found (a predicted component overlaps them) and predicted components overlapping none."""
    p, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    (true_labels, n_true), (pred_labels, n_pred) = components(t), components(p)
    found = np.unique(true_labels[p & t])
    hit = np.unique(pred_labels[p & t])
    return dict(true_components=int(n_true), found_components=int((found > 0).sum()),
                predicted_components=int(n_pred), false_positive_components=int(n_pred - (hit > 0).sum()))


def case_scores(pred: np.ndarray, truth: np.ndarray, voxel_ml: float) -> dict:
    """One case's figures from its K x H x W predicted and true masks: Dice, mL predicted and true, the volume
    error (predicted minus true, mL) and detection."""
    d = dice(pred, truth)
    predicted, true = int((np.asarray(pred) > 0).sum()) * voxel_ml, int((np.asarray(truth) > 0).sum()) * voxel_ml
    return dict(dice=None if d is None else round(d, 6), predicted_ml=round(predicted, 4), true_ml=round(true, 4),
                volume_error_ml=round(predicted - true, 4), **detection(pred, truth), slices=int(len(pred)))


def mean_scores(cases: list[dict]) -> dict:
    """The figures over cases: mean Dice (cases where it is defined), mean absolute volume error, the share of
    true components found, false-positive components per case."""
    dices = [c["dice"] for c in cases if c["dice"] is not None]
    true, found = sum(c["true_components"] for c in cases), sum(c["found_components"] for c in cases)
    return dict(dice=round(float(np.mean(dices)), 6) if dices else None,
                volume_error_ml_mean_abs=round(float(np.mean([abs(c["volume_error_ml"]) for c in cases])), 4),
                volume_error_ml_mean=round(float(np.mean([c["volume_error_ml"] for c in cases])), 4),
                detection_rate=round(found / true, 6) if true else None,
                true_components=true, found_components=found,
                false_positive_components_per_case=round(sum(c["false_positive_components"] for c in cases)
                                                         / len(cases), 4),
                n_cases=len(cases), n_cases_without_dice=len(cases) - len(dices))
