"""A CT volume through the one segmentation path (tumorseg.inference.segment) as one subject, and the options every
volume job shares.

    volume -> slices_of (canonical orientation; per-slice min-max or preprocess.window) -> Segmenter.subject with
    slice k named `k.png` (so 2.5D neighbours and the 3D post-processing go by the slice index)
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from omegaconf import OmegaConf

from tumorseg.inference.segment import Segmented, Segmenter
from tumorseg.volumes.headers import read_limits
from tumorseg.volumes.io import read_volume, slice_extent
from tumorseg.volumes.orientation import slices_of
from tumorseg.volumes.tasks import chosen_window


def window_of(cfg) -> tuple[float, float] | None:
    """preprocess.window of a command's cfg: None (per-slice min-max) or (level, width) in HU."""
    return chosen_window(OmegaConf.select(cfg, "preprocess.window", default=None))


@dataclass(frozen=True)
class VolumeOptions:
    """How a command reads and shows its CT volumes, from its cfg once (`of`).

    series: the DICOM series of a folder holding several (None: the only one); limits: max_voxels / max_pixels
    (volumes.headers.read_limits); window: preprocess.window (window_of); viewer: write the viewer's layers."""

    series: str | None
    limits: dict[str, int]
    window: tuple[float, float] | None
    viewer: bool

    @classmethod
    def of(cls, cfg) -> "VolumeOptions":
        """The options of a command's cfg (series= only where the command has it)."""
        return cls(cfg.get("series"), read_limits(cfg), window_of(cfg), bool(cfg.get("viewer", True)))

    def extent(self, path: Path) -> int:
        """The number of slices of the volume at path, from its header (refused here when unreadable or too big)."""
        return slice_extent(path, self.series, **self.limits)

    def read(self, path: Path) -> sitk.Image:
        """The volume at path, read whole (or refused)."""
        return read_volume(path, self.series, **self.limits)


def segment_volume(segmenter: Segmenter, image: sitk.Image, window: tuple[float, float] | None,
                   advance=None) -> tuple[np.ndarray, Segmented]:
    """(slices K x H x W uint8 as the model reads them, the Segmented result: masks K x H x W) of one volume."""
    slices = slices_of(image, window)
    return slices, segmenter.subject(list(slices), [Path(f"{k}.png") for k in range(len(slices))], advance)
