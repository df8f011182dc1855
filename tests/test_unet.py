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


def test_unet_fast_keeps_the_parameters_and_drops_most_flops():
    from hydra.utils import instantiate
    from torch.utils.flop_counter import FlopCounterMode

    from tests.conftest import make_cfg

    def train_flops(net: torch.nn.Module) -> int:
        x = torch.randn(1, 1, 64, 64)
        with FlopCounterMode(display=False) as counter:
            net(x).sum().backward()
        return counter.get_total_flops()

    default, fast = (instantiate(make_cfg([f"model={m}"]).model) for m in ("unet", "unet_fast"))
    assert fast.depth == 5 and abs(n_params(fast) / n_params(default) - 1) < 0.01
    assert train_flops(fast) < train_flops(default) / 3


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("up", ["transpose", "bilinear"])
def test_unet_keeps_the_input_size(norm, up):
    net = UNet(base_channels=4, depth=3, norm=norm, up=up, dropout=0.1).eval()
    assert net(torch.randn(2, 1, 64, 48)).shape == (2, 1, 64, 48)


def test_image_size_must_divide_by_two_to_the_depth():
    check_image_size(256, 4)
    with pytest.raises(UserError, match=r"data.image_size=100 .* 2\*\*model.depth=16: use data.image_size=96 or 112"):
        check_image_size(100, 4)


def test_unknown_norm_is_refused():
    with pytest.raises(UserError, match="model.norm='layer'"):
        UNet(norm="layer")
