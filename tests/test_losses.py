"""The losses: right values at the extremes, gradients that point the right way."""

import pytest
import torch

from tumorseg.training.losses import DiceBCELoss, DiceLoss, FocalDiceLoss, TverskyLoss

LOSSES = [DiceLoss(), DiceBCELoss(), TverskyLoss(), FocalDiceLoss()]


def target():
    t = torch.zeros(2, 1, 16, 16)
    t[:, :, 4:8, 4:8] = 1
    return t


@pytest.mark.parametrize("loss", LOSSES, ids=lambda m: type(m).__name__)
def test_perfect_logits_beat_wrong_ones(loss):
    t = target()
    perfect, wrong = (t * 2 - 1) * 20, (1 - t * 2) * 20
    assert float(loss(perfect, t)) < 0.01 < 0.5 < float(loss(wrong, t))


@pytest.mark.parametrize("loss", LOSSES, ids=lambda m: type(m).__name__)
def test_gradient_raises_tumor_logits(loss):
    t = target()
    logits = torch.full_like(t, -4.6, requires_grad=True)  # predicting "no tumor" everywhere
    loss(logits, t).backward()
    assert float(logits.grad[t > 0].mean()) < 0  # descending the gradient raises tumor logits


def test_tversky_with_equal_weights_is_dice():
    t = target()
    logits = torch.randn_like(t)
    dice = float(DiceLoss(smooth=0)(logits, t))
    assert float(TverskyLoss(0.5, 0.5, smooth=0)(logits, t)) == pytest.approx(dice, abs=1e-6)


def test_focal_term_down_weights_easy_pixels():
    t = target()
    easy = (t * 2 - 1) * 4  # every pixel right with some confidence
    focal = FocalDiceLoss(dice_weight=0.0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(easy, t)
    assert float(focal(easy, t)) < 0.1 * float(bce)
