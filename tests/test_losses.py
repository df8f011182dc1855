"""The losses: right values at the extremes, gradients that point the right way."""


import pytest
import torch

from tests.conftest import make_cfg, train_run
from tumorseg.training.losses import (
    ComponentTverskyLoss,
    DiceBCELoss,
    DiceLoss,
    FocalDiceLoss,
    TverskyLoss,
    component_labels,
    propagated_labels,
)

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


def two_tumors() -> torch.Tensor:
    """One slice with a small (2x2) and a large (10x10) tumor."""
    target = torch.zeros(1, 1, 32, 32)
    target[..., 2:4, 2:4] = 1
    target[..., 15:25, 15:25] = 1
    return target


def test_a_small_and_a_large_tumor_count_the_same():
    target = two_tumors()
    small = torch.zeros_like(target)
    small[..., 2:4, 2:4] = 1

    def logits_finding(found: torch.Tensor) -> torch.Tensor:
        return torch.where(found > 0, 10.0, -10.0)

    only_large, only_small = logits_finding(target - small), logits_finding(small)
    loss = ComponentTverskyLoss()
    assert loss(only_large, target).item() == pytest.approx(loss(only_small, target).item(), rel=1e-4)
    plain = TverskyLoss()
    assert plain(only_large, target) < plain(only_small, target) / 5  # per pixel, the small one hardly counts


def test_one_component_is_the_plain_tversky_loss():
    target = torch.zeros(3, 1, 32, 32)
    target[1, :, 5:12, 8:20] = 1
    logits = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert ComponentTverskyLoss(0.2, 0.8)(logits, target).item() == pytest.approx(
        TverskyLoss(0.2, 0.8)(logits, target).item(), rel=1e-6)


def test_component_loss_gradients_are_finite_on_empty_masks():
    logits = torch.randn(2, 1, 32, 32, requires_grad=True)
    loss = ComponentTverskyLoss()(logits, torch.zeros(2, 1, 32, 32))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Two labellings split the pixels into the same groups (ids may differ)."""
    pairs = torch.unique(torch.stack([a.flatten(), b.flatten()]), dim=1)
    return len(pairs[0].unique()) == pairs.shape[1] == len(pairs[1].unique())


@pytest.mark.parametrize("density", [0.3, 0.5, 0.7, 0.95])
def test_device_labelling_matches_scipy_8_connected(density):
    from tumorseg.inference.postprocess import count_components

    mask = (torch.rand(4, 1, 48, 48, generator=torch.Generator().manual_seed(1)) > density).float()
    mask[..., :3, :] = 0  # a box smaller than the slice
    labels = propagated_labels(mask)
    assert same_partition(labels, component_labels(mask))
    assert [len(labels[i].unique()) - 1 for i in range(4)] == [count_components(m[0].numpy()) for m in mask]


def test_a_long_winding_component_is_one_label():
    mask = torch.zeros(1, 1, 40, 40)
    mask[..., ::4, 1:39] = 1
    for row in range(0, 36, 4):
        mask[..., row:row + 5, 38 if row % 8 == 0 else 1] = 1
    assert len(propagated_labels(mask).unique()) == 2


@pytest.mark.trains
def test_loss_component_tversky_config_and_a_tiny_run(data_dir, tmp_path):
    from hydra.utils import instantiate

    loss = instantiate(make_cfg(["loss=component_tversky"]).loss)
    assert isinstance(loss, ComponentTverskyLoss) and (loss.alpha, loss.beta) == (0.3, 0.7)
    _, metrics = train_run(data_dir, tmp_path, "loss=component_tversky")
    assert metrics["val/dice"] is not None


def test_weights_follow_the_components():
    from tumorseg.training.losses import component_weights

    weights = component_weights(two_tumors())
    assert weights[0, 0, 2, 2].item() == pytest.approx(104 / (2 * 4))
    assert weights[0, 0, 20, 20].item() == pytest.approx(104 / (2 * 100))
    assert weights[0, 0, 0, 0].item() == 1.0
    assert (weights * two_tumors()).sum().item() == pytest.approx(104)  # the foreground keeps its total
