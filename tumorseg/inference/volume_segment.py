"""A CT volume through the one segmentation path (tumorseg.inference.segment) as one subject.

    volume -> slices_of (canonical orientation; per-slice min-max or preprocess.window) -> Segmenter.subject with
    slice k named `k.png` (so 2.5D neighbours and the 3D post-processing go by the slice index)
"""

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from omegaconf import OmegaConf

from tumorseg.inference.segment import Segmented, Segmenter
from tumorseg.volumes.orientation import slices_of
from tumorseg.volumes.tasks import chosen_window


def window_of(cfg) -> tuple[float, float] | None:
    """preprocess.window of a command's cfg: None (per-slice min-max) or (level, width) in HU."""
    return chosen_window(OmegaConf.select(cfg, "preprocess.window", default=None))


def segment_volume(segmenter: Segmenter, image: sitk.Image, window: tuple[float, float] | None,
                   advance=None) -> tuple[np.ndarray, Segmented]:
    """(slices K x H x W uint8 as the model reads them, the Segmented result: masks K x H x W) of one volume."""
    slices = slices_of(image, window)
    return slices, segmenter.subject(list(slices), [Path(f"{k}.png") for k in range(len(slices))], advance)
