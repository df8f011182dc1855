"""Test-time augmentation: the settings, and that every view is mapped back onto the slice."""

import pytest
import torch

from tumorseg.errors import UserError
from tumorseg.inference.tta import augmented_probabilities, tta_choice


def blob(size: int = 64) -> torch.Tensor:
    """A smooth off-centre bright spot (N=2, C=1): warps and their inverses move it measurably."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    spot = torch.exp(-((xs - 0.3) ** 2 + (ys + 0.2) ** 2) / 0.05) * 6 - 3
    return torch.stack([spot, spot.flip(-1)])[:, None]


@pytest.mark.parametrize(("value", "choice"), [(None, False), (False, False), ("none", False), (True, True),
                                               ("flip", True), ("true", True), ("affine", "affine"),
                                               ("AFFINE", "affine")])
def test_tta_settings(value, choice):
    assert tta_choice(value) == choice


def test_unknown_tta_is_a_clear_error():
    with pytest.raises(UserError, match="tta=rotate is not one of false, true"):
        tta_choice("rotate")


def test_flip_is_the_mean_of_the_slice_and_its_mirror():
    x = blob()

    def probs_of(v):
        return torch.sigmoid(v[:, :1] + torch.linspace(0, 1, v.shape[-1]))  # not mirror-symmetric

    expected = (probs_of(x) + probs_of(x.flip(-1)).flip(-1)) / 2
    assert torch.equal(augmented_probabilities(probs_of, x, True), expected)
    assert torch.equal(augmented_probabilities(probs_of, x, False), probs_of(x))


def test_affine_views_come_back_to_where_they_were_seen():
    # A per-pixel net commutes with warps: mapped back, every view predicts the same image.
    x = blob()

    def probs_of(v):
        return torch.sigmoid(v[:, :1])

    plain, affine = probs_of(x), augmented_probabilities(probs_of, x, "affine")
    assert affine.shape == plain.shape
    assert (affine - plain).abs().max() < 0.03  # bilinear resampling, twice
    # Without the inverse map the spot would be smeared over the rotated and scaled places.
    calls = []
    unwarped = augmented_probabilities(lambda v: calls.append(v) or probs_of(x), x, "affine")
    assert len(calls) == 10 and (unwarped - plain).abs().max() > 0.1
