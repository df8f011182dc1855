"""tumorseg: tumor segmentation in grayscale medical images with a scratch U-Net."""

import os

# albumentations otherwise asks the network for a newer release at import time.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
