"""CT volumes in and out (SimpleITK): NIfTI, NRRD, MetaImage, a DICOM file or series, read whole and meaningful or
refused, and masks written.
"""

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tumorseg.data.decode import MAX_PIXELS
from tumorseg.errors import UserError
from tumorseg.volumes.dicom import dicom_grid, on_grid
from tumorseg.volumes.headers import (
    MAX_VOXELS,
    SERIES_DESCRIPTION,
    check_header,
    check_spacing,
    is_dicom_file,
    read_header,
)
from tumorseg.volumes.integrity import (
    check_nifti_spacing,
    check_orientation,
    check_payload,
    nonfinite_voxels,
    stored_nonfinite,
)


def _series_files(folder: Path, series: str | None) -> list[str]:
    """The files of the folder's one DICOM series, or of series=UID; several series and no choice is a UserError."""
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise UserError(f"{folder} holds no DICOM series: give a folder of one CT series' .dcm files, or a volume file")
    if series is not None and series not in ids:
        raise UserError(f"{folder} holds no series {series}: choose one of {', '.join(ids)} (series=UID)")
    if series is None and len(ids) > 1:
        listing = "; ".join(f"{uid} ({_describe(folder, uid)})" for uid in ids)
        raise UserError(f"{folder} holds {len(ids)} DICOM series: choose one with series=UID: {listing}")
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series or ids[0]))


def _describe(folder: Path, uid: str) -> str:
    """'<SeriesDescription>, N slices' of one series in a folder."""
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
    reader = read_header(files[0])
    text = reader.GetMetaData(SERIES_DESCRIPTION).strip() if reader.HasMetaDataKey(SERIES_DESCRIPTION) else ""
    return f"{text or 'no description'}, {len(files)} slices"


def _checked_files(path: str | os.PathLike, series: str | None, max_voxels: int,
                   max_pixels: int) -> tuple[Path, list[str], dict | None]:
    """(path, the volume's files, the DICOM grid its tags establish or None), every header check passed: size, and
    the orientation a DICOM series' tags or another file's header states."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path} does not exist: give a volume file or a DICOM series folder")
    files = _series_files(path, series) if path.is_dir() else [str(path)]
    header = read_header(files[0])
    check_header(str(path), header, len(files), max_voxels, max_pixels)
    if path.is_dir() or is_dicom_file(path):
        grid = dicom_grid(files)
        check_spacing(str(path), grid["spacing"])
        return path, files, grid
    check_orientation(path)
    check_spacing(str(path), header.GetSpacing())
    check_nifti_spacing(path)
    return path, files, None


def volume_files(path: str | os.PathLike, series: str | None = None, max_voxels: int = MAX_VOXELS,
                 max_pixels: int = MAX_PIXELS) -> list[str]:
    """The files of a volume (one, or a DICOM folder's series in slice order), checked from their headers: size
    (max_voxels, max_pixels in any plane) and, for DICOM, the grid its tags establish (dicom_grid)."""
    return _checked_files(path, series, max_voxels, max_pixels)[1]


def slice_extent(path: str | os.PathLike, series: str | None = None, max_voxels: int = MAX_VOXELS,
                 max_pixels: int = MAX_PIXELS) -> int:
    """An upper bound of the volume's slice count in any voxel order (its largest side), from its header."""
    files = volume_files(path, series, max_voxels, max_pixels)
    return max(*read_header(files[0]).GetSize(), len(files))


def read_volume(path: str | os.PathLike, series: str | None = None, max_voxels: int = MAX_VOXELS,
                max_pixels: int = MAX_PIXELS) -> sitk.Image:
    """Read a volume file or a DICOM series folder as a 3D sitk.Image with its size, spacing, origin and direction.

    Read whole and meaningful, or refused (UserError naming the file): sizes from the header first, a compressed
    or short file checked for every byte its header announces (check_payload), its orientation stated
    (check_orientation) or a DICOM grid established from its tags (dicom_grid), no NaN or infinite voxel
    (nonfinite_voxels).

    Args:
        path: `.nii`, `.nii.gz`, `.nrrd`, `.mha`/`.mhd`, a DICOM file, or a folder holding one DICOM series.
        series: the SeriesInstanceUID to read when the folder holds several.
        max_voxels: larger volumes are refused from their header, before any pixel is read.
        max_pixels: so is a volume with a plane (any two of its sides) of more pixels.

    Returns:
        A one-channel 3D image, size (X, Y, Z), in its stored voxel order; a 2D file becomes a volume of one
        slice (Z = 1).
    """
    path, files, grid = _checked_files(path, series, max_voxels, max_pixels)
    if grid is None:
        check_payload(Path(files[0]))
    try:
        if len(files) == 1:
            image = sitk.ReadImage(files[0])
        else:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            image = reader.Execute()
    except RuntimeError:
        raise UserError(f"{path} could not be read (a truncated or corrupt file?): check it, or convert it "
                        f"to .nii.gz") from None
    image = sitk.JoinSeries(image) if image.GetDimension() == 2 else image
    if grid is not None and not on_grid(image, grid):
        raise UserError(f"{path}: SimpleITK read it on another grid than its ImagePositionPatient and "
                        f"ImageOrientationPatient give (origin {image.GetOrigin()}, spacing {image.GetSpacing()}): "
                        f"convert the series to .nii.gz with a tool you trust")
    bad = nonfinite_voxels(image) or (stored_nonfinite(Path(files[0])) if grid is None else 0)
    if bad:
        raise UserError(f"{path} holds {bad} NaN or infinite voxel(s): tumorseg does not guess their value; "
                        f"replace them (e.g. with the air value) and save the volume again")
    return image


def write_volume(image: sitk.Image, path: str | os.PathLike) -> Path:
    """Write a volume (format from the suffix; .nii.gz compressed); a failed write is a UserError naming the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sitk.WriteImage(image, str(path), useCompression=str(path).lower().endswith((".gz", ".nrrd", ".mha")))
    except RuntimeError:
        raise UserError(f"{path} could not be written (unknown suffix, disk full or not writable): use .nii.gz, "
                        f".nrrd or .mha in a writable folder") from None
    return path


def voxel_ml(image: sitk.Image) -> float:
    """The volume of one voxel in millilitres (spacing in mm)."""
    return float(np.prod(image.GetSpacing())) / 1000.0
