"""Options for quality on unseen patients (issue 31): on-device augmentation, 3D context (wider 2.5D, the slice-stack
U-Net, DeepLabV3+), training above the native size, and the per-component Tversky loss."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import TINY, make_cfg, phantom_overrides, run_main
from tumorseg.errors import UserError
from tumorseg.inference.model_file import read
from tumorseg.models import NETS, DeepLabV3Plus, SliceStackUNet, UNet
from tumorseg.train import train
from tumorseg.training.device_augment import DeviceAugment, inverse_affine_maps, step_generator, warp
from tumorseg.training.losses import ComponentTverskyLoss, TverskyLoss, component_labels, propagated_labels

# Every step off: the identity.
OFF = dict(flip_p=0, affine_p=0, elastic_p=0, brightness_p=0)
# TINY without its U-Net settings, and a tiny DeepLabV3+.
TINY_DATA = [o for o in TINY if not o.startswith("model.")]
DEEPLAB = ["model=deeplabv3", "model.base_channels=8", "model.blocks=1", "model.aspp_channels=8",
           "model.low_level_channels=4"]


def square_batch(n: int = 2, channels: int = 3, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized slices of air (8-bit 0) with a bright square (8-bit 255) in rows 10-21, columns 30-43; its mask."""
    mask = torch.zeros(n, 1, size, size)
    mask[..., 10:22, 30:44] = 1
    u = mask.expand(n, channels, size, size)
    return (u - 0.5) / 0.25, mask.clone()


def train_run(data_dir, tmp_path, *overrides: str, base=TINY):
    """A tiny training run: (run dir, metrics)."""
    run = tmp_path / "run"
    return run, train(make_cfg(base + phantom_overrides(data_dir) + list(overrides), run))


# --- on-device augmentation ---------------------------------------------------------------------------------------

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


# --- 3D context -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("context", [2, 3])
def test_wider_25d_context_trains_and_sets_the_input_channels(data_dir, tmp_path, context):
    run, metrics = train_run(data_dir, tmp_path, f"data.context_slices={context}")
    assert metrics["val/dice"] is not None
    model = read(run / "checkpoints" / "last.ckpt")
    assert model.model["in_channels"] == 1 + 2 * context and model.preprocessing.context_slices == context
    assert model.net().inc[0].in_channels == 1 + 2 * context


def test_new_nets_are_registered_under_their_config_targets():
    for name in ("stack_unet", "deeplabv3"):
        cfg = make_cfg([f"model={name}", "data.context_slices=1"])
        assert cfg.model._target_ in NETS


@pytest.mark.parametrize("context, params", [(1, 2_216_985), (2, 2_480_665)])
def test_slice_stack_unet_size_and_output(context, params):
    net = make_net(f"model=stack_unet data.context_slices={context}")
    assert sum(p.numel() for p in net.parameters()) == params  # the default U-Net: 1,953,593
    assert net(torch.randn(2, 1 + 2 * context, 64, 64)).shape == (2, 1, 64, 64)


def make_net(overrides: str) -> torch.nn.Module:
    """The net of a composed model config."""
    from omegaconf import OmegaConf

    from tumorseg.models import build_net

    return build_net(OmegaConf.to_container(make_cfg(overrides.split()).model, resolve=True))


def test_slice_stack_unet_starts_as_the_2d_unet_on_the_centre_slice_then_mixes_the_stack():
    torch.manual_seed(0)
    stack = SliceStackUNet(in_channels=5, base_channels=4, depth=2)
    flat = UNet(1, base_channels=4, depth=2)
    flat.load_state_dict({k: v for k, v in stack.state_dict().items() if not k.startswith("fuse.")})
    x = torch.randn(2, 5, 32, 32, requires_grad=True)
    stack.eval(), flat.eval()
    assert torch.allclose(stack(x), flat(x[:, 2:3]), atol=1e-6)
    stack.train()
    stack(x).square().mean().backward()
    grads = {name: p.grad for name, p in stack.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert any(g.abs().sum() > 0 for name, g in grads.items() if name.startswith("fuse."))
    with torch.no_grad():  # one step on the fusion's zero-initialized output: the neighbours now count
        for fuse in stack.fuse:
            fuse.mix[-1].last.weight.fill_(0.5)
    x.grad = None
    stack(x).square().mean().backward()
    assert x.grad[:, [0, 1, 3, 4]].abs().sum() > 0


def test_slice_stack_unet_needs_neighbour_slices(data_dir, tmp_path):
    with pytest.raises(UserError, match=r"model=stack_unet needs a stack of slices: data.context_slices >= 1"):
        SliceStackUNet(in_channels=1)
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "model=stack_unet",
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: model=stack_unet needs a stack of slices")


@pytest.mark.parametrize("size", [64, 256])
def test_deeplab_keeps_the_input_size(size):
    net = DeepLabV3Plus(prior=0.01).train()
    assert net(torch.randn(2, 1, size, size)).shape == (2, 1, size, size)


def test_deeplab_size_and_gradients():
    net = make_net("model=deeplabv3")
    assert sum(p.numel() for p in net.parameters()) == 2_107_357
    x = torch.randn(2, 1, 64, 64, requires_grad=True)
    net(x).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert x.grad.abs().sum() > 0
    assert net.decoder.classifier.bias.item() == pytest.approx(np.log(0.01 / 0.99))


def test_deeplab_has_output_stride_16_only_and_a_width_of_8_or_more():
    with pytest.raises(UserError, match=r"model.depth=5: model=deeplabv3 has output stride 16"):
        DeepLabV3Plus(depth=5)
    with pytest.raises(UserError, match=r"model.base_channels=4: model=deeplabv3 needs >= 8"):
        DeepLabV3Plus(base_channels=4)


@pytest.mark.parametrize("base, overrides, kind, channels", [
    (TINY, ["model=stack_unet", "data.context_slices=1"], SliceStackUNet, 3),
    (TINY_DATA, DEEPLAB, DeepLabV3Plus, 1),
])
def test_new_nets_train_and_rebuild_from_their_checkpoint(data_dir, tmp_path, base, overrides, kind, channels):
    run, metrics = train_run(data_dir, tmp_path, *overrides, base=base)
    assert metrics["val/dice"] is not None
    model = read(run / "checkpoints" / "last.ckpt")
    net = model.net()
    assert isinstance(net, kind)
    assert net(torch.randn(2, channels, 64, 64)).shape == (2, 1, 64, 64)


# --- small tumors ---------------------------------------------------------------------------------------------

def test_training_above_the_native_size_upsamples_and_evaluates_at_the_files_size(data_dir, tmp_path):
    run, metrics = train_run(data_dir, tmp_path, "data.image_size=128")  # phantom slices: 64x64
    assert metrics["val/dice"] is not None
    model = read(run / "checkpoints" / "last.ckpt")
    assert model.preprocessing.image_size == 128
    result = run_main("tumorseg.evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                      f"data_dir={data_dir / 'phantom' / 'val'}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr[-2000:]
    scored = json.loads(result.stdout.strip().splitlines()[-1])
    assert scored["n_images"] == len(list((data_dir / "phantom" / "val" / "images").rglob("*.png")))


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
