"""Networks: the scratch U-Net, and an ensemble of them."""

from tumorseg.models.ensemble import LogitMean
from tumorseg.models.unet import UNet, check_image_size

__all__ = ["LogitMean", "UNet", "check_image_size"]
