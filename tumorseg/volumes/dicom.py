"""The grid a DICOM series' own tags establish (positions, orientation, pixel spacing), or a refusal naming the first
file and tag that leave it unknown: never a mask on a guessed grid.
"""

import numpy as np
import pydicom
import SimpleITK as sitk

from tumorseg.errors import UserError

# A DICOM slice may lie this far from its place on the series' evenly spaced grid (the larger of the two):
# positions written to 0.01 mm pass, a missing slice or a gap 1% off the spacing does not.
POSITION_TOLERANCE_MM = 0.01


POSITION_TOLERANCE_SPACING = 0.01


# tag, functional-group macro (multi-frame files) and value count of the tags a DICOM grid is built from
GEOMETRY_TAGS = {"ImagePositionPatient": ("(0020,0032)", "PlanePositionSequence", 3),
                 "ImageOrientationPatient": ("(0020,0037)", "PlaneOrientationSequence", 6),
                 "PixelSpacing": ("(0028,0030)", "PixelMeasuresSequence", 2)}


def _first_item(ds, keyword: str):
    """The first item of ds's sequence `keyword`, or None."""
    items = ds.get(keyword) if ds is not None else None
    return items[0] if items else None


def _frame_geometry(path: str) -> list[dict[str, np.ndarray]]:
    """Per frame of a DICOM file: the values of GEOMETRY_TAGS (from its functional groups, or its top level); one
    missing or malformed is a UserError naming the file and the tag."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (OSError, pydicom.errors.InvalidDicomError) as err:
        raise UserError(f"{path} cannot be read as DICOM ({err}): check the file") from None
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    frames = []
    for frame in ds.get("PerFrameFunctionalGroupsSequence") or [None]:
        values = {}
        for keyword, (tag, macro, count) in GEOMETRY_TAGS.items():
            holder = next((h for h in (_first_item(frame, macro), _first_item(shared, macro), ds)
                           if h is not None and keyword in h), None)
            raw = holder[keyword].value if holder is not None else None
            try:
                value = np.array([float(v) for v in (raw if isinstance(raw, (list, tuple, pydicom.multival.MultiValue))
                                                     else [raw])])
            except (TypeError, ValueError):
                value = np.array([])
            if raw is None or raw == "":
                raise UserError(f"{path}: {keyword} {tag} is missing, so the slice's place in the patient is "
                                f"unknown: tumorseg does not guess a grid; re-export the series with its geometry")
            if len(value) != count or not np.isfinite(value).all():
                raise UserError(f"{path}: {keyword} {tag} is {raw!r}, not {count} numbers: re-export the series")
            values[keyword] = value
        row, column = values["ImageOrientationPatient"][:3], values["ImageOrientationPatient"][3:]
        if (abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(column) - 1) > 1e-3
                or abs(row @ column) > 1e-3 or (values["PixelSpacing"] <= 0).any()):
            raise UserError(f"{path}: ImageOrientationPatient (0020,0037) or PixelSpacing (0028,0030) is not a "
                            f"grid (cosines {values['ImageOrientationPatient']}, spacing {values['PixelSpacing']}): "
                            f"re-export the series")
        frames.append(values)
    return frames


def dicom_grid(files: list[str]) -> dict:
    """The grid a DICOM volume's tags establish: origin (3), spacing (2 for one slice, else 3) and direction
    columns (3 x 2 or 3 x 3), in ITK's LPS millimetres.

    Refused (UserError naming the first bad file and the tag) when a slice lacks ImagePositionPatient,
    ImageOrientationPatient or PixelSpacing, when orientation or pixel spacing differ between slices, or when a
    slice lies off the evenly spaced line through the first one along the slice normal: off the normal, on another
    slice's position, or further than POSITION_TOLERANCE_MM / POSITION_TOLERANCE_SPACING from its place.
    """
    frames = [(f, g) for f in files for g in _frame_geometry(f)]
    first_file, first = frames[0]
    for file, values in frames[1:]:
        for keyword in ("ImageOrientationPatient", "PixelSpacing"):
            if not np.allclose(values[keyword], first[keyword], rtol=0, atol=1e-4):
                raise UserError(f"{file}: {keyword} {GEOMETRY_TAGS[keyword][0]} is {values[keyword].tolist()}, "
                                f"{first_file} has {first[keyword].tolist()}: the series has no single grid; "
                                f"give one stack of parallel slices")
    row, column = first["ImageOrientationPatient"][:3], first["ImageOrientationPatient"][3:]
    normal = np.cross(row, column)
    positions = np.array([g["ImagePositionPatient"] for _, g in frames])
    along = (positions - positions[0]) @ normal
    gap = float(np.median(np.diff(along))) if len(frames) > 1 else 0.0
    spacing = (along[-1] - along[0]) / (len(frames) - 1) if len(frames) > 1 else 0.0  # SimpleITK's, as read
    tolerance = max(POSITION_TOLERANCE_MM, POSITION_TOLERANCE_SPACING * abs(gap))
    tag = f"ImagePositionPatient {GEOMETRY_TAGS['ImagePositionPatient'][0]}"
    for k in range(1, len(frames)):
        file, previous = frames[k][0], frames[k - 1][0]
        off = np.linalg.norm(positions[k] - positions[0] - along[k] * normal)
        if off > tolerance:
            raise UserError(f"{file}: {tag} lies {off:.3g} mm off the slice normal through {first_file} (a tilted "
                            f"gantry, or two stacks in one series): resample the series to an orthogonal grid")
        if abs(along[k] - along[k - 1]) <= tolerance:
            raise UserError(f"{file}: {tag} repeats the position of {previous}: remove the duplicated slice")
        if abs(along[k] - along[k - 1] - gap) > tolerance:
            raise UserError(f"{file}: {tag} lies {along[k] - along[k - 1]:.4g} mm from {previous}, the series' "
                            f"slices {abs(gap):.4g} mm apart (a missing slice or uneven spacing): give a complete, "
                            f"evenly spaced series or resample it")
    drift = np.abs(along - np.arange(len(frames)) * spacing)  # gaps each close to the median may still add up
    if len(frames) > 1 and drift.max() > tolerance:
        raise UserError(f"{frames[int(drift.argmax())][0]}: {tag} lies {drift.max():.3g} mm from its place on the "
                        f"series' even grid of {abs(spacing):.4g} mm (uneven spacing): resample the series")
    spacings = [first["PixelSpacing"][1], first["PixelSpacing"][0]] + ([abs(spacing)] if len(frames) > 1 else [])
    columns = [row, column] + ([normal * np.sign(spacing)] if len(frames) > 1 else [])
    return {"origin": positions[0], "spacing": np.array(spacings), "direction": np.array(columns).T}


def on_grid(image: sitk.Image, grid: dict, tolerance: float = 1e-3) -> bool:
    """Whether a read image lies on dicom_grid's grid (a one-slice grid fixes no slice spacing or normal)."""
    n = len(grid["spacing"])
    direction = np.array(image.GetDirection()).reshape(3, 3)[:, :n]
    return all(np.allclose(a, b, rtol=0, atol=tolerance) for a, b in (
        (image.GetOrigin(), grid["origin"]), (image.GetSpacing()[:n], grid["spacing"]),
        (direction, grid["direction"])))
