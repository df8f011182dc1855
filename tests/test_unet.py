import pytest
import torch

from tumorseg.errors import UserError
from tumorseg.models import UNet, check_image_size


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_unet_seed_has_the_original_parameter_count():
    from hydra.utils import instantiate

    from tests.conftest import make_cfg

    net = instantiate(make_cfg(["model=unet_seed"]).model)
    assert n_params(net) == 31_030_593


def test_default_unet_is_small():
    assert 1.8e6 < n_params(UNet()) < 2.0e6


def train_flops(net: torch.nn.Module) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        net(torch.randn(1, 1, 64, 64)).sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize(("name", "flops_share"), [("unet_fast", 1 / 3), ("unet", 1 / 2)])
def test_cheaper_networks_keep_the_parameters_and_drop_flops(name, flops_share):
    from hydra.utils import instantiate

    from tests.conftest import make_cfg

    classic, cheap = (instantiate(make_cfg([f"model={m}"]).model) for m in ("unet_classic", name))
    assert classic.depth == 4 and cheap.depth == 5 and abs(n_params(cheap) / n_params(classic) - 1) < 0.01
    assert train_flops(cheap) < train_flops(classic) * flops_share


def test_flat_steps_keep_the_top_widths():
    net = UNet(base_channels=16, depth=5, flat_steps=1)
    widths = [net.inc[0].out_channels] + [down[1][0].out_channels for down in net.downs]
    assert widths == [16, 16, 32, 64, 128, 256]


def test_flat_steps_0_is_the_network_from_before_the_option():
    # 1,942,289: the count of base 16 / depth 4 in the runs and reports made before flat_steps existed
    assert n_params(UNet(base_channels=16, depth=4, flat_steps=0)) == 1_942_289


def test_flat_steps_beyond_the_depth_are_refused():
    with pytest.raises(UserError, match="model.flat_steps=5 must be between 0 and model.depth=4"):
        UNet(depth=4, flat_steps=5)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("up", ["transpose", "bilinear"])
@pytest.mark.parametrize("flat_steps", [0, 2])
def test_unet_keeps_the_input_size(norm, up, flat_steps):
    net = UNet(base_channels=4, depth=3, norm=norm, up=up, dropout=0.1, flat_steps=flat_steps).eval()
    assert net(torch.randn(2, 1, 64, 48)).shape == (2, 1, 64, 48)


def test_image_size_must_divide_by_two_to_the_depth():
    check_image_size(256, 4)
    with pytest.raises(UserError, match=r"data.image_size=100 .* 2\*\*model.depth=16: use data.image_size=96 or 112"):
        check_image_size(100, 4)


def test_unknown_norm_is_refused():
    with pytest.raises(UserError, match="model.norm='layer'"):
        UNet(norm="layer")
