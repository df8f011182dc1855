"""A CT volume through the one segmentation path (tumorseg.inference.segment) as one subject, and the options every
volume job shares.

    volume -> slices_of (canonical orientation; per-slice min-max or the model's HU window) -> Segmenter.subject
    with slice k named `k.png` (so 2.5D neighbours and the 3D post-processing go by the slice index)
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from omegaconf import OmegaConf

from tumorseg.data.preprocessing import hu_window, shown_window
from tumorseg.errors import UserError
from tumorseg.inference.segment import Segmented, Segmenter
from tumorseg.volumes.headers import read_limits
from tumorseg.volumes.io import read_volume, slice_extent
from tumorseg.volumes.orientation import slices_of


def window_option(cfg) -> tuple[float, float] | None:
    """preprocess.window of a command's cfg: None (the model's own) or (level, width) in HU."""
    return hu_window(OmegaConf.select(cfg, "preprocess.window", default=None))


def reading_window(option: tuple[float, float] | None, segmenter: Segmenter) -> tuple[float, float] | None:
    """The window volumes are read with: the model's own (Preprocessing.window: how its training slices were made),
    else preprocess.window (for a model that records none); a preprocess.window other than the model's is refused,
    as it would feed the net slices unlike any it was trained on."""
    own = segmenter.preprocessing.window
    if own is None or option is None or option == own:
        return option if own is None else own
    raise UserError(f"preprocess.window={shown_window(option)}, but {segmenter.model.path.name} was trained on "
                    f"slices made with the window {shown_window(own)}: leave preprocess.window out (the model's own "
                    f"window is used)")


@dataclass(frozen=True)
class VolumeOptions:
    """How a command reads and shows its CT volumes, from its cfg once (`of`).

    series: the DICOM series of a folder holding several (None: the only one); limits: max_voxels / max_pixels
    (volumes.headers.read_limits); window: preprocess.window (window_option; reading_window weighs it against the
    model's); viewer: write the viewer's layers."""

    series: str | None
    limits: dict[str, int]
    window: tuple[float, float] | None
    viewer: bool

    @classmethod
    def of(cls, cfg) -> "VolumeOptions":
        """The options of a command's cfg (series= only where the command has it)."""
        return cls(cfg.get("series"), read_limits(cfg), window_option(cfg), bool(cfg.get("viewer", True)))

    def extent(self, path: Path) -> int:
        """The number of slices of the volume at path, from its header (refused here when unreadable or too big)."""
        return slice_extent(path, self.series, **self.limits)

    def read(self, path: Path) -> sitk.Image:
        """The volume at path, read whole (or refused)."""
        return read_volume(path, self.series, **self.limits)


def segment_volume(segmenter: Segmenter, image: sitk.Image, window: tuple[float, float] | None, name: str,
                   advance=None) -> tuple[np.ndarray, Segmented]:
    """(slices K x H x W uint8 as the model reads them, the Segmented result: masks K x H x W) of one volume;
    window: preprocess.window (reading_window); name: the volume's file, for a refusal."""
    slices = slices_of(image, reading_window(window, segmenter), name)
    return slices, segmenter.subject(list(slices), [Path(f"{k}.png") for k in range(len(slices))], advance)
