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
