"""Test-time augmentation: a prediction averaged over transformed views of the input, each mapped back.

Modes (`tta=`): `none`; `flip` (true): the slice and its left-right mirror; `affine`: those two, each
also rotated by -10 and +10 degrees and scaled by 0.9 and 1.1 (10 views), transformations that
`augment=all` trains with. Probabilities of a warped view are warped back and averaged only where
the view saw the image (corners rotated out of the frame do not count).
"""

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from tumorseg.errors import UserError

ROTATIONS = (-10.0, 10.0)  # degrees
SCALES = (0.9, 1.1)


def tta_choice(value) -> bool | str:
    """A tta setting as stored and reported: False (none), True (flip) or "affine"."""
    if value is None or value is False or str(value).lower() in ("false", "none"):
        return False
    if value is True or str(value).lower() in ("true", "flip"):
        return True
    if str(value).lower() == "affine":
        return "affine"
    raise UserError(f"tta={value} is not one of false, true (flip), affine: e.g. tta=true")


def describe(tta: bool | str) -> str:
    """How a printed summary names the choice."""
    return {False: "flip TTA off", True: "flip TTA on"}.get(tta, f"{tta} TTA")


def affine_matrices() -> list[torch.Tensor]:
    """2x2 maps from a view's (x, y) to the slice's, in the normalized coordinates of grid_sample."""
    mats = []
    for degrees in ROTATIONS:
        a = math.radians(degrees)
        mats.append(torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]))
    mats += [torch.eye(2) / s for s in SCALES]  # a view at scale s samples the slice at 1/s
    return mats


def warp(x: torch.Tensor, mat: torch.Tensor, padding: str) -> torch.Tensor:
    """x sampled at mat @ p for every output point p (bilinear)."""
    theta = torch.cat([mat, torch.zeros(2, 1)], 1).to(x)[None].expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def augmented_probabilities(probs_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode) -> torch.Tensor:
    """Mean probability over the mode's views of x (N x C x H x W); probs_of maps a batch to N x 1 x H x W."""
    mode = tta_choice(mode)
    flips = (False, True) if mode else (False,)
    total = weight = 0
    for flip in flips:
        view = x.flip(-1) if flip else x
        probs = probs_of(view)
        total, weight = total + (probs.flip(-1) if flip else probs), weight + 1
        if mode != "affine":
            continue
        for mat in affine_matrices():
            # The view's border repeats the slice's edge (air); its probabilities go back with the inverse map.
            inverse = torch.linalg.inv(mat)
            back = warp(probs_of(warp(view, mat, "border")), inverse, "zeros")
            seen = warp(torch.ones_like(back[:1, :1]), inverse, "zeros")  # the same for every slice: broadcast
            total = total + (back.flip(-1) if flip else back)
            weight = weight + (seen.flip(-1) if flip else seen)
    return total / weight
