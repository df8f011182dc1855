"""tumorseg: tumor segmentation in grayscale medical images with a scratch U-Net."""

import os
import sys
from pathlib import Path

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


def _interrupt_hook(previous):
    """sys.excepthook for `python -m tumorseg.<command>`: Ctrl+C while the command's imports load (seconds: torch,
    Lightning), before its main can catch it, ends in the line and status a running command gives (as the
    `tumorseg` command does in cli.py), not a traceback; any other exception goes to the previous hook."""

    def hook(kind, value, traceback):
        if not issubclass(kind, KeyboardInterrupt):
            return previous(kind, value, traceback)
        from tumorseg.errors import EXIT_SIGINT, interrupted

        try:
            interrupted(Path(sys.argv[0]).stem if sys.argv[0].endswith(".py") else "tumorseg", "Ctrl+C", EXIT_SIGINT)
        except SystemExit as done:  # a hook cannot exit by SystemExit; nothing was written yet
            sys.stdout.flush()
            os._exit(done.code)

    return hook


# argv[0] is "-m" only while Python imports this package as the parent of a `python -m` target.
if getattr(sys, "argv", [])[:1] == ["-m"]:  # an embedded interpreter may have no argv
    sys.excepthook = _interrupt_hook(sys.excepthook)
