"""DeepLabV3Plus (models/deeplab.py): sizes, gradients and the settings it refuses."""

import numpy as np
import pytest
import torch

from tests.conftest import make_net
from tumorseg.errors import UserError
from tumorseg.models import DeepLabV3Plus


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
