"""predict's outputs for CT volumes: per volume a mask on the input's exact grid, a DICOM SEG for a DICOM input,
overlays of the slices with tumor, viewer layers, and a summary row of 3D figures. They are written from arrays (the
volume, its slices and their Segmented result); segmenting is the command's (tumorseg/predict.py).

    <output>/<name>_mask.nii.gz (.nrrd / .mha as the input)    <output>/<name>_seg.dcm (DICOM inputs)
    <output>/overlays/<name>/<k>.png (slices with tumor)        <output>/viewer/<name>/...  (index.html's pictures)
"""

import sys
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from tumorseg.errors import UserError
from tumorseg.files.output_files import OutputFiles
from tumorseg.inference.segment import Segmented
from tumorseg.inference.sources import VolumeSource
from tumorseg.inference.volume_segment import VolumeOptions
from tumorseg.scoring.volume_metrics import volume_figures
from tumorseg.volumes.io import volume_files, voxel_ml, write_volume
from tumorseg.volumes.orientation import mask_volume_like
from tumorseg.writers.dicom_seg import segmentation
from tumorseg.writers.pictures import bgr, overlay
from tumorseg.writers.viewer import PageSubject, layer_paths, write_layers

FIELDS = ("path", "slices", "tumor_voxels", "tumor_ml", "components", "largest_ml", "first_slice", "last_slice",
          "max_probability")
COLUMNS = ("tumor mL", "components", "largest mL", "slices")
MASK_SUFFIXES = {".nrrd": ".nrrd", ".nhdr": ".nrrd", ".mha": ".mha", ".mhd": ".mha"}


class VolumeFiles(OutputFiles):
    """OutputFiles that also writes volumes and DICOM datasets (claimed first, each in one step)."""

    def volume(self, path: Path, image: sitk.Image) -> None:
        """Write a volume (format from the suffix)."""
        with self.writing(path) as temp:
            write_volume(image, temp)

    def dataset(self, path: Path, dataset: pydicom.Dataset) -> None:
        """Write a DICOM dataset as a DICOM file (with its preamble and file meta)."""
        with self.writing(path) as temp:
            dataset.save_as(temp, enforce_file_format=True)


def mask_path(out: Path, source: VolumeSource) -> Path:
    """Where a volume's mask goes: <name>_mask with the input's format (NRRD, MetaImage), else .nii.gz."""
    suffix = "" if source.path.is_dir() else MASK_SUFFIXES.get(source.path.suffix.lower(), "")
    return out / f"{source.name}_mask{suffix or '.nii.gz'}"


def seg_path(out: Path, source: VolumeSource) -> Path:
    """Where a DICOM volume's SEG object goes."""
    return out / f"{source.name}_seg.dcm"


def planned(out: Path, source: VolumeSource, extent: int, options: VolumeOptions) -> list[Path]:
    """Every file predict may write for one volume of at most `extent` slices (data.volumes.slice_extent)."""
    paths = [mask_path(out, source)] + ([seg_path(out, source)] if source.dicom else [])
    return (paths + [out / "overlays" / source.name / f"{k}.png" for k in range(extent)]
            + (layer_paths(out, source.name, extent) if options.viewer else []))


def write_volume_outputs(written: VolumeFiles, out: Path, source: VolumeSource, image: sitk.Image, slices: np.ndarray,
                         result: Segmented, options: VolumeOptions, model_name: str,
                         failures: list[str]) -> tuple[dict, PageSubject | None]:
    """One segmented volume's outputs (image: the volume read; slices: K x H x W as the model read them; result:
    their Segmented masks and probabilities); its summary row and its viewer entry (None without viewer).
    model_name: the model file's name, in a DICOM SEG's description."""
    masks = np.stack(result.masks)
    mask = mask_volume_like(masks, image)
    written.volume(mask_path(out, source), mask)
    if source.dicom:
        write_seg(written, out, source, mask, options, model_name, failures)
    for k in np.flatnonzero(masks.any(axis=(1, 2))):
        written.image(out / "overlays" / source.name / f"{k}.png", bgr(overlay(slices[k], masks[k])))
    figures = volume_figures(masks, voxel_ml(image))
    row = {"path": str(source.path), "slices": len(slices), **figures,
           "max_probability": round(max(float(result.at_size(k, s.shape).max()) for k, s in enumerate(slices)), 6)}
    if not options.viewer:
        return row, None
    layers = write_layers(written, out, source.name, [str(k) for k in range(len(slices))], list(slices),
                          result.masks)
    return row, PageSubject(source.name, page_figures(figures), layers)


def page_figures(figures: dict) -> dict:
    """A volume's figures (volume_figures) as the viewer page lists them (COLUMNS)."""
    first, last = figures["first_slice"], figures["last_slice"]
    return dict(zip(COLUMNS, (figures["tumor_ml"], figures["components"], figures["largest_ml"],
                              "none" if first is None else f"{first}-{last}")))


def write_seg(written: VolumeFiles, out: Path, source: VolumeSource, mask: sitk.Image, options: VolumeOptions,
              model_name: str, failures: list[str]) -> None:
    """The DICOM SEG of a DICOM volume's mask; a series highdicom cannot describe is reported and counted as a
    failure (the mask file stands); a failed write (a full disk) ends the command."""
    try:
        files = volume_files(source.path, options.series, **options.limits)
        seg = segmentation(files, mask, model_name)
    except UserError as err:
        failures.append(str(source.path))
        print(f"error: {err}", file=sys.stderr, flush=True)
        return
    written.dataset(seg_path(out, source), seg)
