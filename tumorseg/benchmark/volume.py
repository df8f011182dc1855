"""A 512 x 512 phantom CT volume through predict's volume path with the shipped model (read, slices, net, mask on
the input's grid, written), in slices/s, with the model's TTA and without."""

import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from tumorseg.benchmark.settings import BenchSettings


def volume_rates(settings: BenchSettings, tmp: Path) -> dict[str, dict]:
    """'TTA': {slices_per_s, runs, slices}; the volume is written below tmp."""
    from tumorseg.inference.segment import segmenter_for
    from tumorseg.inference.volume_segment import segment_volume
    from tumorseg.volumes.io import read_volume, write_volume
    from tumorseg.volumes.orientation import mask_volume_like
    from tumorseg.volumes.phantom import write_nifti

    slices = settings.volume_slices
    image_path, _ = write_nifti(tmp / "volume", "ct", size=(512, 512, slices))
    out = {}
    for name, tta in (("the model's TTA (affine, 10 views)", None), ("no TTA (tta=false)", False)):
        segmenter = segmenter_for(OmegaConf.create({"device": settings.device, "tta": tta}))
        start = time.perf_counter()
        image = read_volume(image_path)
        _, result = segment_volume(segmenter, image, None, str(image_path))
        write_volume(mask_volume_like(np.stack(result.masks), image), tmp / "volume" / "ct_mask.nii.gz")
        rate = slices / (time.perf_counter() - start)
        out[name] = {"slices_per_s": rate, "runs": segmenter.runner.describe(), "slices": slices}
        print(f"  volume {name}: {rate:.2f} slices/s ({out[name]['runs']})", flush=True)
    return out
