"""CT volumes in and out (SimpleITK): NIfTI, NRRD, MetaImage, a DICOM file or series, and their 2D slices.

Slice convention (the one the public lung slices and the shipped model use): every volume is first turned, by
whole-voxel flips and axis swaps (sitk.DICOMOrient), into one canonical voxel order, CANONICAL = "RAS": the x index
runs toward the patient's right, y toward anterior, z toward superior (direction diag(-1, -1, 1) in ITK's LPS
coordinates, as MSD Task06's NIfTI files are stored). Slice k is then `volume[:, :, k]` of the (x, y, z) voxel
array: a slice's row is the x index, its column the y index, so the spine lies on the image's left and the sternum
on its right whatever order the file stored its voxels in. An oblique volume is turned to the nearest axis order;
its voxels are not resampled. mask_volume_like undoes the turn exactly.
"""

import numpy as np
import SimpleITK as sitk

from tumorseg.errors import UserError
from tumorseg.volumes.integrity import nonfinite_voxels

# x toward the patient's right, y toward anterior, z toward superior: the voxel order of the training slices.
CANONICAL = "RAS"
# A chest CT in Hounsfield units: lungs (about -800) and the air around the body (-1000) lie below AIR_BELOW in at
# least MIN_AIR_SHARE of the voxels, even cropped to the body; a volume of stored values (0..4095) or MR has none.
AIR_BELOW = -500
MIN_AIR_SHARE = 0.01


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


def check_hounsfield(stack: np.ndarray, name: str) -> None:
    """Refuse, for a fixed HU window, a volume that holds no air: a chest CT in Hounsfield units has lungs and the
    air around the body below AIR_BELOW HU; a CT whose DICOM rescale was lost (0..4095) or an MR scan has not, and a
    window would turn it into slices unlike any the model was trained on."""
    share = float(np.count_nonzero(stack < AIR_BELOW)) / max(stack.size, 1)
    if share < MIN_AIR_SHARE:
        raise UserError(f"{name}: {share:.2%} of its voxels lie below {AIR_BELOW} (values {float(stack.min()):g} to "
                        f"{float(stack.max()):g}), so it is not a chest CT in Hounsfield units, which a fixed window "
                        f"reads: give the CT in HU (a DICOM series with its rescale slope and intercept), or use a "
                        f"model trained on per-slice scaling (window null)")


def slices_of(image: sitk.Image, window: tuple[float, float] | None = None, name: str = "the volume") -> np.ndarray:
    """The volume as 8-bit slices, as the model's training slices were made.

    Args:
        image: a 3D volume, size (X, Y, Z), in its stored values (Hounsfield units for CT).
        window: None scales every slice from its own min..max to 0..255 (the public slices, the shipped
            model); (level, width) maps the fixed window [level - width/2, level + width/2] to 0..255, for a
            volume in Hounsfield units only (check_hounsfield).
        name: the volume's file, named by a refusal.

    Returns:
        uint8 array K x H x W = Z x X x Y of the volume in CANONICAL order: slice k is `volume[:, :, k]` (row = x
        index toward the patient's right, column = y index toward anterior).
    """
    bad = nonfinite_voxels(image)
    if bad:  # NaN would turn a slice's min..max, and so the whole slice, into zeros
        raise ValueError(f"the volume holds {bad} NaN or infinite voxel(s): read it with read_volume, which refuses it")
    if window is not None:
        level, width = (float(v) for v in window)
        if width <= 0:
            raise UserError(f"window=({level:g}, {width:g}): the width must be above 0, e.g. window=[-600,1500]")
        stack = slice_stack(image)
        check_hounsfield(stack, name)
        return np.stack([_windowed(s, level, width) for s in stack])
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
