"""Post-processing of predicted masks: small 2D components; 3D regions without a confident pixel, or all but
the largest."""

from collections.abc import Sequence

import cv2
import numpy as np
from scipy import ndimage

# 26-connected in 3D, as 8-connected in 2D: touching by a corner across neighbouring slices links.
CUBE = np.ones((3, 3, 3), bool)


def remove_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Drop connected components (8-connected) smaller than min_size pixels from a 0/1 mask."""
    if min_size <= 1 or not mask.any():
        return mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_size
    return keep[labels].astype(mask.dtype)


def count_components(mask: np.ndarray) -> int:
    """Number of 8-connected components in a 0/1 mask."""
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def runs_of_slices(numbers: Sequence[int | None]) -> list[list[int]]:
    """Positions grouped into stacks of consecutive slice indices (K, K+1, ...); an unnumbered slice stands alone."""
    numbered = sorted((n, i) for i, n in enumerate(numbers) if n is not None)
    runs = [[i] for i, n in enumerate(numbers) if n is None]
    for k, (n, i) in enumerate(numbered):
        if k and n == numbered[k - 1][0] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def seeded_regions(probs: np.ndarray, numbers: Sequence[int | None], threshold: float, seed: float) -> np.ndarray:
    """Of one subject's N x H x W probabilities, the pixels > threshold whose region holds a pixel > seed.

    A region is connected in 3D across neighbouring slices (by slice index), so weak evidence
    beside a confident detection on the next slice survives and a lone weak detection goes.
    """
    keep = np.zeros(probs.shape, bool)
    for run in runs_of_slices(numbers):
        stack = probs[run]
        labels, n = ndimage.label(stack > threshold, structure=CUBE)
        if n:
            seeded = np.zeros(n + 1, bool)
            seeded[np.unique(labels[stack > seed])] = True
            seeded[0] = False
            keep[run] = seeded[labels]
    return keep


def drop_unseeded(probs: np.ndarray, numbers: Sequence[int | None], threshold: float, seed: float) -> np.ndarray:
    """probs (N x H x W, one subject) with the regions that seeded_regions drops set to 0; as is when
    seed <= threshold."""
    if seed <= threshold:
        return probs
    return np.where(seeded_regions(probs, numbers, threshold, seed), probs, 0).astype(probs.dtype)


def largest_region(probs: np.ndarray, numbers: Sequence[int | None], threshold: float) -> np.ndarray:
    """Mask (N x H x W) of the largest 3D region > threshold of one subject (all of its runs of slices)."""
    best, best_size, keep = None, 0, np.zeros(probs.shape, bool)
    for run in runs_of_slices(numbers):
        labels, n = ndimage.label(probs[run] > threshold, structure=CUBE)
        if n:
            sizes = np.bincount(labels.ravel())[1:]
            if sizes.max() > best_size:
                best, best_size = (run, labels == 1 + int(sizes.argmax())), int(sizes.max())
    if best is not None:
        keep[best[0]] = best[1]
    return keep


def subject_regions(probs: np.ndarray, numbers: Sequence[int | None], threshold: float, seed: float,
                    largest: bool) -> np.ndarray:
    """One subject's probabilities after the 3D steps in force: unseeded regions dropped, then all but the largest."""
    probs = drop_unseeded(probs, numbers, threshold, seed)
    if largest:
        probs = np.where(largest_region(probs, numbers, threshold), probs, 0).astype(probs.dtype)
    return probs
