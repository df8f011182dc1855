"""tumorseg: tumor segmentation in grayscale medical images with a scratch U-Net."""

import os

from omegaconf import OmegaConf

# albumentations otherwise asks the network for a newer release at import time.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

# hydra.run.dir: the run dir named by resume=, else a new one.
OmegaConf.register_new_resolver("resume_or", lambda resume, default: resume or default, replace=True)
# model.in_channels: slice K and data.context_slices neighbours on each side (2.5D).
OmegaConf.register_new_resolver("input_channels", lambda context: 1 + 2 * int(context), replace=True)
# data.num_workers: up to n loader workers, leaving one core to the training process.
OmegaConf.register_new_resolver("workers", lambda n: max(0, min(int(n), (os.cpu_count() or 1) - 1)), replace=True)

# The config groups, shipped as the package tumorseg.conf (the checkout's conf/ folder): every Hydra app and
# compose() reads them from there, in a wheel as in an editable install. Users add their own folders with
# hydra.searchpath=[file://DIR] or --config-dir DIR (docs/configuration.md).
CONF_MODULE = "tumorseg.conf"
CONF_DIR = f"pkg://{CONF_MODULE}"
