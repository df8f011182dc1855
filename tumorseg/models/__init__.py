"""Networks: the scratch U-Net, an ensemble of nets, and the factory that rebuilds a net from its config."""

from torch import nn

from tumorseg.errors import UserError
from tumorseg.models.deeplab import DeepLabV3Plus
from tumorseg.models.ensemble import LogitMean
from tumorseg.models.stack import SliceStackUNet
from tumorseg.models.unet import UNet, check_image_size

# The nets a model file may name (its model config's _target_). A file cannot choose other code to run:
# a net is rebuilt from this table, never by importing what the file says.
NETS: dict[str, type[nn.Module]] = {
    "tumorseg.models.UNet": UNet,
    "tumorseg.models.SliceStackUNet": SliceStackUNet,
    "tumorseg.models.DeepLabV3Plus": DeepLabV3Plus,
}


def build_net(model: dict, members: int = 1) -> nn.Module:
    """The net of a model config (its _target_ looked up in NETS; UNet when it has none); members > 1: a LogitMean."""
    target = model.get("_target_", "tumorseg.models.UNet")
    if target not in NETS:
        raise UserError(f"model._target_={target} is not a tumorseg net (one of {', '.join(NETS)})")

    def one() -> nn.Module:
        return NETS[target](**{k: v for k, v in model.items() if not k.startswith("_")})

    return one() if members == 1 else LogitMean([one() for _ in range(members)])


__all__ = ["NETS", "DeepLabV3Plus", "LogitMean", "SliceStackUNet", "UNet", "build_net", "check_image_size"]
