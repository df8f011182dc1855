"""CT volumes in and out (SimpleITK): NIfTI, NRRD, MetaImage, a DICOM file or series, and their 2D slices.

Slice convention (the one the public lung slices and the shipped model use): every volume is first turned, by
whole-voxel flips and axis swaps (sitk.DICOMOrient), into one canonical voxel order, CANONICAL = "RAS": the x index
runs toward the patient's right, y toward anterior, z toward superior (direction diag(-1, -1, 1) in ITK's LPS
coordinates, as MSD Task06's NIfTI files are stored). Slice k is then `volume[:, :, k]` of the (x, y, z) voxel
array: a slice's row is the x index, its column the y index, so the spine lies on the image's left and the sternum
on its right whatever order the file stored its voxels in. An oblique volume is turned to the nearest axis order;
its voxels are not resampled. mask_volume_like undoes the turn exactly.
"""

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tumorseg.errors import UserError

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
# A volume past this is refused from its header: its pixels (and their float copies) would not fit in memory.
MAX_VOXELS = 2_000_000_000
SERIES_DESCRIPTION = "0008|103e"
# x toward the patient's right, y toward anterior, z toward superior: the voxel order of the training slices.
CANONICAL = "RAS"


def has_volume_suffix(path: str | os.PathLike) -> bool:
    """Whether the file name ends in one of VOLUME_SUFFIXES (case-insensitive)."""
    return str(path).lower().endswith(VOLUME_SUFFIXES)


def is_dicom_file(path: str | os.PathLike) -> bool:
    """A file named *.dcm or one with the DICOM preamble ('DICM' at byte 128)."""
    path = Path(path)
    if not path.is_file() or path.name.startswith("."):
        return False
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    except OSError:
        return False


def is_volume(path: str | os.PathLike) -> bool:
    """A volume file (by suffix, or a DICOM file) or a folder that holds DICOM files."""
    path = Path(path)
    if path.is_dir():
        return any(is_dicom_file(f) for f in sorted(path.iterdir()))
    return path.is_file() and (has_volume_suffix(path) or is_dicom_file(path))


def read_header(path: str | os.PathLike) -> sitk.ImageFileReader:
    """A reader that has read the file's header only (GetSize, GetSpacing, GetOrigin, GetDirection work on it, and
    same_grid); a file SimpleITK cannot read is a UserError naming it."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise UserError(f"{path} is not a volume SimpleITK can read (NIfTI, NRRD, MetaImage or DICOM): "
                        f"check the file, or convert it to .nii.gz") from None
    return reader


def _check_header(path: str, reader: sitk.ImageFileReader, slices: int, max_voxels: int) -> None:
    """Refuse a multi-channel, 4-D or too large volume before its pixels are read."""
    if reader.GetNumberOfComponents() != 1 or reader.GetDimension() > 3:
        raise UserError(f"{path} holds a {reader.GetDimension()}-D image of {reader.GetNumberOfComponents()} "
                        f"channel(s): tumorseg reads one-channel 3D volumes (CT); extract that channel first")
    voxels = int(np.prod(reader.GetSize(), dtype=np.int64)) * slices
    if voxels > max_voxels:
        raise UserError(f"{path} holds {voxels} voxels, more than the limit of {max_voxels}: crop or resample it "
                        f"(or raise max_voxels= where the memory allows)")


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


def volume_files(path: str | os.PathLike, series: str | None = None, max_voxels: int = MAX_VOXELS) -> list[str]:
    """The files of a volume (one, or a DICOM folder's series in slice order), checked from the first header."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path} does not exist: give a volume file or a DICOM series folder")
    files = _series_files(path, series) if path.is_dir() else [str(path)]
    _check_header(str(path), read_header(files[0]), len(files), max_voxels)
    return files


def slice_extent(path: str | os.PathLike, series: str | None = None, max_voxels: int = MAX_VOXELS) -> int:
    """An upper bound of the volume's slice count in any voxel order (its largest side), from its header."""
    files = volume_files(path, series, max_voxels)
    return max(*read_header(files[0]).GetSize(), len(files))


def read_volume(path: str | os.PathLike, series: str | None = None, max_voxels: int = MAX_VOXELS) -> sitk.Image:
    """Read a volume file or a DICOM series folder as a 3D sitk.Image with its size, spacing, origin and direction.

    Args:
        path: `.nii`, `.nii.gz`, `.nrrd`, `.mha`/`.mhd`, a DICOM file, or a folder holding one DICOM series.
        series: the SeriesInstanceUID to read when the folder holds several.
        max_voxels: larger volumes are refused from their header, before any pixel is read.

    Returns:
        A one-channel 3D image, size (X, Y, Z), in its stored voxel order; a 2D file becomes a volume of one
        slice (Z = 1).
    """
    path = Path(path).expanduser()
    files = volume_files(path, series, max_voxels)
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
    return sitk.JoinSeries(image) if image.GetDimension() == 2 else image


def canonical(image: sitk.Image) -> sitk.Image:
    """The volume in CANONICAL voxel order (flips and axis swaps only; an oblique one to its nearest axes)."""
    return sitk.DICOMOrient(image, CANONICAL)


def canonical_axes(direction) -> np.ndarray:
    """The signed permutation P (3 x 3) that canonical() applies to a volume of this direction: its new direction
    is direction @ P, and canonical axis j is stored axis i where P[i, j] != 0."""
    probe = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    probe.SetDirection(tuple(float(c) for c in direction))
    turned = np.array(canonical(probe).GetDirection()).reshape(3, 3)
    return np.rint(np.array(direction, float).reshape(3, 3).T @ turned)


def canonical_size(image: sitk.Image | sitk.ImageFileReader) -> tuple[int, int, int]:
    """The (X, Y, Z) size the volume has in CANONICAL order, from its size and direction only (no pixels)."""
    size, axes = image.GetSize(), np.abs(canonical_axes(image.GetDirection())).argmax(axis=0)
    return tuple(int(size[i]) for i in axes)


def slice_stack(image: sitk.Image) -> np.ndarray:
    """The voxel values in CANONICAL order as K slices, K x H x W = Z x X x Y (slice k = `volume[:, :, k]`),
    values untouched."""
    return sitk.GetArrayFromImage(canonical(image)).transpose(0, 2, 1)


def _minmax(values: np.ndarray) -> np.ndarray:
    """One slice scaled from its own minimum..maximum to 0..255; a constant slice is all zeros."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.rint((values.astype(np.float64) - lo) * 255.0 / (hi - lo)).astype(np.uint8)


def _windowed(values: np.ndarray, level: float, width: float) -> np.ndarray:
    """One slice through the fixed window [level - width/2, level + width/2] onto 0..255, clipped."""
    scaled = (values.astype(np.float64) - (level - width / 2)) * 255.0 / width
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def slices_of(image: sitk.Image, window: tuple[float, float] | None = None) -> np.ndarray:
    """The volume as 8-bit slices, as the model's training slices were made.

    Args:
        image: a 3D volume, size (X, Y, Z), in its stored values (Hounsfield units for CT).
        window: None scales every slice from its own min..max to 0..255 (the public slices, the shipped
            model); (level, width) maps the fixed window [level - width/2, level + width/2] to 0..255.

    Returns:
        uint8 array K x H x W = Z x X x Y of the volume in CANONICAL order: slice k is `volume[:, :, k]` (row = x
        index toward the patient's right, column = y index toward anterior).
    """
    if window is not None:
        level, width = (float(v) for v in window)
        if width <= 0:
            raise UserError(f"window=({level:g}, {width:g}): the width must be above 0, e.g. window=[-600,1500]")
        return np.stack([_windowed(s, level, width) for s in slice_stack(image)])
    return np.stack([_minmax(s) for s in slice_stack(image)])


def mask_volume_like(masks: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Slice masks as a label volume on the reference's grid: the exact inverse of slices_of's orientation.

    Args:
        masks: K x H x W = Z x X x Y in CANONICAL order, as slices_of gives for `reference`; nonzero is foreground.
        reference: the volume the slices came from.

    Returns:
        uint8 image (0 background, 1 foreground) in the reference's voxel order, with its size, spacing, origin
        and direction.
    """
    x, y, z = canonical_size(reference)
    expected = (z, x, y)
    if masks.shape != expected:
        raise ValueError(f"masks of shape {masks.shape} do not fit a volume of size {reference.GetSize()}: "
                         f"expected K x H x W = {expected} (its canonical order)")
    label = sitk.GetImageFromArray((np.asarray(masks) > 0).astype(np.uint8).transpose(0, 2, 1))
    turned = np.array(reference.GetDirection()).reshape(3, 3) @ canonical_axes(reference.GetDirection())
    label.SetDirection(tuple(turned.ravel()))
    stored = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(reference.GetDirection())
    label = sitk.DICOMOrient(label, stored)
    label.CopyInformation(reference)
    return label


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


def same_grid(a: sitk.Image | sitk.ImageFileReader, b: sitk.Image | sitk.ImageFileReader,
              tolerance: float = 1e-3) -> bool:
    """Whether two volumes (or headers from read_header) share size, spacing, origin and direction (mm and
    cosines within tolerance)."""
    return a.GetSize() == b.GetSize() and all(
        np.allclose(getattr(a, f)(), getattr(b, f)(), rtol=0, atol=tolerance)
        for f in ("GetSpacing", "GetOrigin", "GetDirection"))


def voxel_ml(image: sitk.Image) -> float:
    """The volume of one voxel in millilitres (spacing in mm)."""
    return float(np.prod(image.GetSpacing())) / 1000.0
