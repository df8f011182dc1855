"""What a volume file says before its voxels are read: format by name, header, size limits, grid.
"""

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tumorseg.data.decode import MAX_PIXELS
from tumorseg.errors import UserError

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


# A volume past this is refused from its header: its pixels (and their float copies) would not fit in memory.
MAX_VOXELS = 2_000_000_000


SERIES_DESCRIPTION = "0008|103e"

# Voxel sides (mm) a chest CT of a patient can have: 0.2-1 mm in a slice and 0.5-10 mm between slices in practice.
# Outside, the header is wrong (a zero or unit pixdim, metres for millimetres) and every volume in mL with it.
SPACING_MM = (0.05, 20.0)


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


def check_header(path: str, reader: sitk.ImageFileReader, slices: int, max_voxels: int, max_pixels: int) -> None:
    """Refuse a multi-channel, 4-D or too large volume (voxels, or pixels in any plane) before its pixels are read."""
    if reader.GetNumberOfComponents() != 1 or reader.GetDimension() > 3:
        raise UserError(f"{path} holds a {reader.GetDimension()}-D image of {reader.GetNumberOfComponents()} "
                        f"channel(s): tumorseg reads one-channel 3D volumes (CT); extract that channel first")
    x, y, z = (*reader.GetSize(), 1)[:3]
    sides = sorted((x, y, z * slices))
    if sides[1] * sides[2] > max_pixels:
        raise UserError(f"{path} has {sides[2]}x{sides[1]} = {sides[1] * sides[2]} pixels in a plane, above "
                        f"max_pixels={max_pixels}: crop or resample it (or raise max_pixels=)")
    voxels = sides[0] * sides[1] * sides[2]
    if voxels > max_voxels:
        raise UserError(f"{path} holds {voxels} voxels, more than the limit of {max_voxels}: crop or resample it "
                        f"(or raise max_voxels= where the memory allows)")


def read_limits(cfg) -> dict[str, int]:
    """{max_voxels, max_pixels} of a command's cfg (checked by config_checks), the keyword arguments with which
    data.volumes reads a volume; an option a command lacks takes the library's limit."""
    return {"max_voxels": cfg.get("max_voxels") or MAX_VOXELS, "max_pixels": cfg.get("max_pixels") or MAX_PIXELS}


def same_grid(a: sitk.Image | sitk.ImageFileReader, b: sitk.Image | sitk.ImageFileReader,
              tolerance: float = 1e-3) -> bool:
    """Whether two volumes (or headers from read_header) share size, spacing, origin and direction (mm and
    cosines within tolerance)."""
    return a.GetSize() == b.GetSize() and all(
        np.allclose(getattr(a, f)(), getattr(b, f)(), rtol=0, atol=tolerance)
        for f in ("GetSpacing", "GetOrigin", "GetDirection"))


def check_spacing(path: str, spacing) -> None:
    """Refuse voxel sides (mm; a DICOM series' from its tags) outside SPACING_MM: tumor volumes in mL and the
    grid of the mask written back would be wrong with them."""
    sides = [abs(float(v)) for v in spacing]  # a negative pixdim is read as its size (ITK), a flip in the sform
    low, high = SPACING_MM
    if not all(low <= v <= high for v in sides):
        shown = " x ".join(f"{v:g}" for v in sides)
        raise UserError(f"{path} has voxels of {shown} mm, outside the {low:g}-{high:g} mm of a patient's CT, so "
                        f"its volumes in mL would be wrong: fix the voxel spacing in its header (pixdim, "
                        f"PixelSpacing, space directions), or resample it")
