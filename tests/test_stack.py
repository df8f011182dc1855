"""SliceStackUNet (models/stack.py): a 2D encoder shared over the 2.5D stack, the slices fused inside the net."""

import pytest
import torch

from tests.conftest import TINY, assert_one_error, make_net, phantom_overrides, run_main
from tumorseg.errors import UserError
from tumorseg.models import SliceStackUNet, UNet


@pytest.mark.parametrize("context, params", [(1, 2_216_985), (2, 2_480_665)])
def test_slice_stack_unet_size_and_output(context, params):
    net = make_net(f"model=stack_unet data.context_slices={context}")
    assert sum(p.numel() for p in net.parameters()) == params  # the default U-Net: 1,953,593
    assert net(torch.randn(2, 1 + 2 * context, 64, 64)).shape == (2, 1, 64, 64)


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
    assert_one_error(result, "error: model=stack_unet needs a stack of slices")
