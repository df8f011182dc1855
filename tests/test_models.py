"""The nets' table (models/__init__.py): every net registered, trained and rebuilt from its checkpoint."""

import pytest
import torch

from tests.conftest import TINY, make_cfg, train_run
from tumorseg.inference.model_file import read
from tumorseg.models import NETS, DeepLabV3Plus, SliceStackUNet

# TINY without its U-Net settings, and a tiny DeepLabV3+.
TINY_DATA = [o for o in TINY if not o.startswith("model.")]
DEEPLAB = ["model=deeplabv3", "model.base_channels=8", "model.blocks=1", "model.aspp_channels=8",
           "model.low_level_channels=4"]


def test_new_nets_are_registered_under_their_config_targets():
    for name in ("stack_unet", "deeplabv3"):
        cfg = make_cfg([f"model={name}", "data.context_slices=1"])
        assert cfg.model._target_ in NETS


@pytest.mark.trains
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
