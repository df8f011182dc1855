"""A predicted mask as a DICOM Segmentation object (highdicom) that references the CT series it was made from."""

import logging
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.sr.codedict import codes

from tumorseg import __version__
from tumorseg.errors import UserError

SEGMENT = "tumor"
# highdicom logs every module it copies at INFO, which the commands' logging would print: a page per SEG.
logging.getLogger("highdicom").setLevel(logging.WARNING)


def tumor_segment(model_name: str) -> hd.seg.SegmentDescription:
    """Segment 1: a neoplasm (SNOMED CT 108369006), a morphologically abnormal structure, found by an AI algorithm."""
    algorithm = hd.AlgorithmIdentificationSequence(name=f"tumorseg {model_name}", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    return hd.seg.SegmentDescription(
        segment_number=1, segment_label=SEGMENT,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)


def read_sources(files: list[str]) -> list[pydicom.Dataset]:
    """The series' datasets (pixels included: highdicom checks the frames against them), in the volume's slice order."""
    try:
        return [pydicom.dcmread(f) for f in files]
    except (OSError, pydicom.errors.InvalidDicomError) as err:
        raise UserError(f"{files[0]}: its series cannot be read as DICOM for the SEG object ({err}): check the "
                        f"files") from None


def segmentation(files: list[str], mask: sitk.Image, model_name: str) -> pydicom.Dataset:
    """A BINARY DICOM SEG of `mask` (0/1 on the grid of the series read from `files`, in that slice order).

    Args:
        files: the series' files, as read_volume read them (slice z of the volume is files[z]).
        mask: uint8 volume of size (columns, rows, slices), as mask_volume_like gives it.
        model_name: the model file's name, recorded as the algorithm.
    """
    sources = read_sources(files)
    # z, row, column: frame z belongs to files[z], or to frame z of a single multi-frame file (highdicom checks)
    frames = sitk.GetArrayFromImage(mask).astype(bool)
    first = sources[0]
    try:
        return hd.seg.Segmentation(
            source_images=sources, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[tumor_segment(model_name)], series_instance_uid=hd.UID(),
            series_number=int(getattr(first, "SeriesNumber", 0) or 0) + 1000, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer="tumorseg", manufacturer_model_name=model_name,
            software_versions=__version__, device_serial_number="0", series_description=f"tumorseg {SEGMENT}",
            omit_empty_frames=False)
    except (ValueError, AttributeError, TypeError) as err:
        raise UserError(f"{Path(files[0]).parent}: no DICOM SEG could be made from this series ({err}); the mask "
                        f"volume (on the grid the series' tags establish) is written, the SEG is not: load the mask "
                        f"in a viewer, or report the series' tags") from None


def seg_frames(seg: pydicom.Dataset | str | Path, source_uids: list[str]) -> np.ndarray:
    """A SEG's tumor frames (N x rows x columns, 0/1 uint8), one for each of source_uids (SOPInstanceUIDs)."""
    seg = hd.seg.segread(seg) if isinstance(seg, (str, Path)) else hd.seg.Segmentation.from_dataset(seg)
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=source_uids, segment_numbers=[1])
    return np.asarray(pixels)[..., 0].astype(np.uint8)
