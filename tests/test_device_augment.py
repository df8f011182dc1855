"""On-device augmentation (training/device_augment.py): seeded, image and mask alike, as albumentations does it."""

import numpy as np
import pytest
import torch

from tests.conftest import make_cfg, train_run
from tumorseg.errors import UserError
from tumorseg.inference.model_file import read
from tumorseg.training.device_augment import DeviceAugment, inverse_affine_maps, step_generator, warp

# Every step off: the identity.
OFF = dict(flip_p=0, affine_p=0, elastic_p=0, brightness_p=0)


def square_batch(n: int = 2, channels: int = 3, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized slices of air (8-bit 0) with a bright square (8-bit 255) in rows 10-21, columns 30-43; its mask."""
    mask = torch.zeros(n, 1, size, size)
    mask[..., 10:22, 30:44] = 1
    u = mask.expand(n, channels, size, size)
    return (u - 0.5) / 0.25, mask.clone()


def test_device_augment_keeps_shapes_and_a_binary_mask():
    image, mask = torch.randn(8, 3, 64, 64), (torch.rand(8, 1, 64, 64) > 0.9).float()
    out, out_mask = DeviceAugment()(image, mask, step_generator("cpu", 0))
    assert out.shape == image.shape and out_mask.shape == mask.shape
    assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.isfinite(out).all()


def test_every_probability_0_is_the_identity():
    image, mask = torch.randn(4, 3, 32, 32), (torch.rand(4, 1, 32, 32) > 0.5).float()
    out, out_mask = DeviceAugment(**OFF)(image, mask, step_generator("cpu", 1))
    assert torch.equal(out, image) and torch.equal(out_mask, mask)


def test_the_same_seed_draws_the_same_augmentation():
    image, mask = square_batch(6)
    aug = DeviceAugment(flip_p=0.5, affine_p=1, elastic_p=1, brightness_p=1)
    first = aug(image, mask, step_generator("cpu", 42, 0, 3))
    again = aug(image, mask, step_generator("cpu", 42, 0, 3))
    other = aug(image, mask, step_generator("cpu", 42, 0, 4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16-mixed training step: still fp32 coordinates
        in_bf16 = aug(image, mask, step_generator("cpu", 42, 0, 3))
    assert all(torch.equal(a, b) for a, b in zip(first, in_bf16))


def test_a_known_shift_moves_the_square_and_its_mask_together():
    image, mask = square_batch(1)
    zero = torch.zeros(1)
    inverse = inverse_affine_maps(zero, zero + 1, zero + 1, zero + 5, zero - 3)  # 5 px right, 3 px up
    grid = DeviceAugment().grid(inverse, torch.tensor([False]), (64, 64), None)
    moved, moved_mask = warp(image, grid, "bilinear", -2.0), warp(mask, grid, "nearest", 0.0)
    expected = torch.zeros(1, 1, 64, 64)
    expected[..., 7:19, 35:49] = 1
    assert torch.equal(moved_mask, expected)
    assert torch.allclose(moved, (expected - 0.5) / 0.25, atol=1e-5)  # every channel, air filled in


def test_a_random_affine_moves_image_and_mask_alike():
    image, mask = square_batch(8, channels=1)
    out, out_mask = DeviceAugment(flip_p=0.5, affine_p=1, elastic_p=1, brightness_p=0)(image, mask,
                                                                                         step_generator("cpu", 7))
    bright = out > 0  # u > 0.5 after bilinear resampling: inside the moved square
    agree = (bright == (out_mask > 0)).float().mean(dim=(1, 2, 3))
    assert (agree > 0.99).all()  # only the square's edge pixels may differ
    assert not torch.equal(out_mask, mask)


def test_the_affine_matches_albumentations():
    """The CPU augment=all step (albumentations.Affine) and the device one, with the same drawn values."""
    import albumentations as A

    slice8 = np.zeros((64, 64), np.uint8)
    slice8[10:22, 30:44], slice8[40:50, 8:12] = 200, 120
    cpu = A.Affine(rotate=(12, 12), scale=(1.08, 1.08), translate_percent={"x": (0.05, 0.05), "y": (-0.05, -0.05)},
                   interpolation=1, mask_interpolation=0, border_mode=0, p=1)(image=slice8, mask=(slice8 > 0) * 1)
    t = torch.tensor
    inverse = inverse_affine_maps(t([12.0]), t([1.08]), t([1.08]), t([float(int(0.05 * 64))]),
                                  t([float(int(-0.05 * 64))]))
    aug = DeviceAugment()
    grid = aug.grid(inverse, t([False]), (64, 64), None)
    image = warp((torch.from_numpy(slice8).float()[None, None] / 255 - 0.5) / 0.25, grid, "bilinear", aug.fill)
    mask = warp(torch.from_numpy(slice8 > 0).float()[None, None], grid, "nearest", 0.0)
    as8bit = (image[0, 0] * 0.25 + 0.5) * 255
    assert (as8bit - torch.from_numpy(cpu["image"]).float()).abs().max() < 0.51  # albumentations rounds to 8 bits
    assert np.array_equal(mask[0, 0].numpy(), cpu["mask"])


def test_the_elastic_field_is_as_large_as_albumentations():
    from albumentations.augmentations.geometric.functional import generate_displacement_fields

    dx, dy = generate_displacement_fields((128, 128), 30, 6, False, (0, 0), np.random.default_rng(0), "gaussian")
    cpu_rms = float(np.sqrt((dx**2 + dy**2).mean() / 2))
    ours = DeviceAugment().displacement(8, 128, 128, torch.device("cpu"), step_generator("cpu", 0))
    assert ours.pow(2).mean().sqrt().item() == pytest.approx(cpu_rms, rel=0.25)


def test_brightness_contrast_acts_on_the_image_only_in_the_8_bit_range():
    image, mask = square_batch(16, channels=1)
    out, out_mask = DeviceAugment(**{**OFF, "brightness_p": 1})(image, mask, step_generator("cpu", 3))
    assert torch.equal(out_mask, mask)
    u = out * 0.25 + 0.5
    assert u.min() >= 0 and u.max() <= 1
    air, tumor = u[..., 0, 0].flatten(), u[..., 15, 35].flatten()
    assert (air.abs() <= 0.1 + 1e-6).all() and (tumor >= 0.8 - 1e-6).all()  # 0 + beta, clip(alpha + beta)
    assert len(air.unique()) > 1


def test_a_probability_out_of_range_is_a_user_error():
    with pytest.raises(UserError, match=r"module.device_augment.affine_p=1.5 must be a probability"):
        DeviceAugment(affine_p=1.5)


def test_augment_device_all_turns_the_cpu_transform_off_and_builds_the_device_one():
    from hydra.utils import instantiate

    cfg = make_cfg(["augment=device_all", "data.mean=0.4"])
    assert not cfg.augment
    aug = instantiate(cfg.module, _partial_=True).keywords["device_augment"]
    assert isinstance(aug, DeviceAugment) and aug.mean == 0.4 and aug.scale == (0.9, 1.1)


@pytest.mark.trains
def test_a_tiny_run_with_augment_device_all_augments_training_batches_only(data_dir, tmp_path, monkeypatch):
    calls = []
    forward = DeviceAugment.forward

    def spy(self, image, mask, generator=None):
        calls.append(image.shape)
        return forward(self, image, mask, generator)

    monkeypatch.setattr(DeviceAugment, "forward", spy)
    run, metrics = train_run(data_dir, tmp_path, "augment=device_all")
    assert metrics["val/dice"] is not None
    assert len(calls) == 2  # trainer.limit_train_batches=2; no validation or test batch
    model = read(run / "checkpoints" / "last.ckpt")  # weights_only: the checkpoint holds plain data only
    assert model.run_config["module"]["device_augment"]["_target_"] == "tumorseg.training.device_augment.DeviceAugment"
    assert not any(k.startswith("device_augment") for k in model.weights)
