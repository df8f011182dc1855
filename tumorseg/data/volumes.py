"""CT volumes in and out (SimpleITK): NIfTI, NRRD, MetaImage, a DICOM file or series, and their 2D slices.

Slice convention (the one the public lung slices and the shipped model use): every volume is first turned, by
whole-voxel flips and axis swaps (sitk.DICOMOrient), into one canonical voxel order, CANONICAL = "RAS": the x index
runs toward the patient's right, y toward anterior, z toward superior (direction diag(-1, -1, 1) in ITK's LPS
coordinates, as MSD Task06's NIfTI files are stored). Slice k is then `volume[:, :, k]` of the (x, y, z) voxel
array: a slice's row is the x index, its column the y index, so the spine lies on the image's left and the sternum
on its right whatever order the file stored its voxels in. An oblique volume is turned to the nearest axis order;
its voxels are not resampled. mask_volume_like undoes the turn exactly.
"""

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from tumorseg.data.decode import MAX_PIXELS
from tumorseg.errors import UserError

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
# A volume past this is refused from its header: its pixels (and their float copies) would not fit in memory.
MAX_VOXELS = 2_000_000_000
SERIES_DESCRIPTION = "0008|103e"
# x toward the patient's right, y toward anterior, z toward superior: the voxel order of the training slices.
CANONICAL = "RAS"
# A DICOM slice may lie this far from its place on the series' evenly spaced grid (the larger of the two):
# positions written to 0.01 mm pass, a missing slice or a gap 1% off the spacing does not.
POSITION_TOLERANCE_MM = 0.01
POSITION_TOLERANCE_SPACING = 0.01
# tag, functional-group macro (multi-frame files) and value count of the tags a DICOM grid is built from
GEOMETRY_TAGS = {"ImagePositionPatient": ("(0020,0032)", "PlanePositionSequence", 3),
                 "ImageOrientationPatient": ("(0020,0037)", "PlaneOrientationSequence", 6),
                 "PixelSpacing": ("(0028,0030)", "PixelMeasuresSequence", 2)}
PIXEL_BYTES = {sitk.sitkUInt8: 1, sitk.sitkInt8: 1, sitk.sitkUInt16: 2, sitk.sitkInt16: 2, sitk.sitkUInt32: 4,
               sitk.sitkInt32: 4, sitk.sitkUInt64: 8, sitk.sitkInt64: 8, sitk.sitkFloat32: 4, sitk.sitkFloat64: 8}
CHUNK = 1 << 20


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


def _check_header(path: str, reader: sitk.ImageFileReader, slices: int, max_voxels: int, max_pixels: int) -> None:
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
    """(path, the volume's files, the DICOM grid its tags establish or None), every header check passed."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path} does not exist: give a volume file or a DICOM series folder")
    files = _series_files(path, series) if path.is_dir() else [str(path)]
    _check_header(str(path), read_header(files[0]), len(files), max_voxels, max_pixels)
    return path, files, (dicom_grid(files) if path.is_dir() or is_dicom_file(path) else None)


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
    or short file checked for every byte its header announces (check_payload), a DICOM grid established from its
    tags (dicom_grid), no NaN or infinite voxel (nonfinite_voxels).

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
    if grid is not None and not _on_grid(image, grid):
        raise UserError(f"{path}: SimpleITK read it on another grid than its ImagePositionPatient and "
                        f"ImageOrientationPatient give (origin {image.GetOrigin()}, spacing {image.GetSpacing()}): "
                        f"convert the series to .nii.gz with a tool you trust")
    bad = nonfinite_voxels(image) or (stored_nonfinite(Path(files[0])) if grid is None else 0)
    if bad:
        raise UserError(f"{path} holds {bad} NaN or infinite voxel(s): tumorseg does not guess their value; "
                        f"replace them (e.g. with the air value) and save the volume again")
    return image


def nonfinite_voxels(image: sitk.Image) -> int:
    """How many voxels are NaN or infinite (0 for an integer volume), counted a slice at a time."""
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return 0
    return int(sum(np.count_nonzero(~np.isfinite(plane)) for plane in sitk.GetArrayViewFromImage(image)))


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


def _on_grid(image: sitk.Image, grid: dict, tolerance: float = 1e-3) -> bool:
    """Whether a read image lies on dicom_grid's grid (a one-slice grid fixes no slice spacing or normal)."""
    n = len(grid["spacing"])
    direction = np.array(image.GetDirection()).reshape(3, 3)[:, :n]
    return all(np.allclose(a, b, rtol=0, atol=tolerance) for a, b in (
        (image.GetOrigin(), grid["origin"]), (image.GetSpacing()[:n], grid["spacing"]),
        (direction, grid["direction"])))


def _inflated_bytes(fh) -> int:
    """The bytes a zlib or gzip stream (or several gzip members in a row) inflates to, read in chunks; a stream
    that fails its checksum or ends early raises ValueError."""
    inflater, total, data = zlib.decompressobj(47), 0, b""  # 47: a zlib or a gzip header, found from the data
    while True:
        if not data:
            data = fh.read(CHUNK)
            if not data:
                break
        if inflater.eof:
            inflater = zlib.decompressobj(47)
        try:
            total += len(inflater.decompress(data, CHUNK))
        except zlib.error as err:
            raise ValueError(f"its compressed data is damaged ({err})") from None
        data = inflater.unconsumed_tail or inflater.unused_data
    if not inflater.eof:
        raise ValueError(f"its compressed data ends early, after {total} bytes")
    return total


def _nifti_header(path: Path) -> tuple[bool, int, int, np.dtype | None]:
    """(gzip-compressed, vox_offset, voxel count, the numpy dtype of float voxels or None) of a .nii or .nii.gz."""
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if compressed else open)(path, "rb") as fh:
            head = fh.read(540)
    except (OSError, EOFError, zlib.error) as err:
        raise UserError(f"{path} is damaged ({err}): fetch or copy it again") from None
    end = next((e for e in "<>" if len(head) >= 348 and struct.unpack(e + "i", head[:4])[0] in (348, 540)), None)
    if end is None:
        raise UserError(f"{path} has no NIfTI-1 or NIfTI-2 header: check the file, or convert it to .nii.gz")
    if struct.unpack(end + "i", head[:4])[0] == 348:
        dims, (datatype, bitpix) = struct.unpack(end + "8h", head[40:56]), struct.unpack(end + "2h", head[70:74])
        offset = int(struct.unpack(end + "f", head[108:112])[0])
    else:
        (datatype, bitpix), dims = struct.unpack(end + "2h", head[12:16]), struct.unpack(end + "8q", head[16:80])
        offset = struct.unpack(end + "q", head[168:176])[0]
    floats = {16: "f4", 64: "f8"}.get(datatype)
    return compressed, offset, int(np.prod(dims[1:dims[0] + 1], dtype=np.int64)) * bitpix // 8, (
        np.dtype(end + floats) if floats else None)


def _nifti_layout(path: Path) -> tuple[Path, int, bool, int]:
    """check_payload's layout of a .nii or .nii.gz: the whole file is the (gzip) stream, the data at vox_offset."""
    compressed, offset, data, _ = _nifti_header(path)
    return path, 0, compressed, offset + data


def stored_nonfinite(path: Path) -> int:
    """The NaN or infinite voxels a float NIfTI file stores (SimpleITK reads them as 0); 0 for other files."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return 0
    compressed, offset, data, dtype = _nifti_header(path)
    if dtype is None:
        return 0
    bad = 0
    with (gzip.open if compressed else open)(path, "rb") as fh:
        fh.seek(offset)
        for at in range(0, data, CHUNK * dtype.itemsize):
            values = np.frombuffer(fh.read(min(CHUNK * dtype.itemsize, data - at)), dtype)
            bad += np.count_nonzero(~np.isfinite(values))
    return int(bad)


def _text_header(path: Path, separator: str, last: str | None) -> tuple[dict[str, str], int]:
    """(fields, byte where the header ends) of a NRRD (`key: value` up to a blank line) or MetaImage (`Key = Value`
    up to the `last` key) header; keys lower-case without spaces."""
    fields = {}
    with open(path, "rb") as fh:
        for line in iter(fh.readline, b""):
            text = line.decode("latin-1").strip()
            if not text and last is None:
                break
            key, found, value = text.partition(separator)
            if found and not text.startswith("#") and ":=" not in text:
                fields[key.strip().lower().replace(" ", "")] = value.strip()
            if last is not None and key.strip().lower() == last:
                break
        return fields, fh.tell()


def _data_file(header: Path, name: str) -> Path:
    """The one data file a header names (relative to its folder); a list or pattern of files is refused."""
    if name.split()[0].upper() == "LIST" or len(name.split()) > 1 or "%" in name:
        raise UserError(f"{header} keeps its data in several files ({name}): tumorseg reads one data file; save "
                        f"the volume as one .nii.gz, .nrrd or .mha")
    return header.parent / name


def _nrrd_layout(path: Path, reader: sitk.ImageFileReader) -> tuple[Path, int, bool, int]:
    """check_payload's layout of a .nrrd or .nhdr (raw or gzip data, in the file or a detached one)."""
    fields, start = _text_header(path, ":", None)
    data = path
    if "datafile" in fields:
        data, start = _data_file(path, fields["datafile"]), 0
    compressed = fields.get("encoding", "raw").lower() in ("gz", "gzip")
    with open(data, "rb") as fh:
        fh.seek(start)
        for _ in range(int(fields.get("lineskip", 0))):
            fh.readline()
        start = fh.tell()
    skip, needed = int(fields.get("byteskip", 0)), _voxel_bytes(reader)
    if compressed:  # the bytes to skip are in the inflated stream
        return data, start, True, needed + max(skip, 0)
    return data, start + skip if skip >= 0 else max(data.stat().st_size - needed, 0), False, needed  # -1: at the end


def _meta_layout(path: Path, reader: sitk.ImageFileReader) -> tuple[Path, int, bool, int]:
    """check_payload's layout of a .mha or .mhd (raw or zlib data, after the header or in ElementDataFile)."""
    fields, start = _text_header(path, "=", "elementdatafile")
    data = path
    if fields.get("elementdatafile", "LOCAL").upper() != "LOCAL":
        data, start = _data_file(path, fields["elementdatafile"]), max(int(fields.get("headersize", 0)), 0)
    return data, start, fields.get("compresseddata", "false").lower() == "true", _voxel_bytes(reader)


def _voxel_bytes(reader: sitk.ImageFileReader) -> int:
    """The bytes of the voxels a one-channel header announces."""
    return int(np.prod(reader.GetSize(), dtype=np.int64)) * PIXEL_BYTES.get(reader.GetPixelID(), 1)


def check_payload(path: Path) -> None:
    """Refuse a NIfTI, NRRD or MetaImage file holding fewer bytes than its header announces, or whose compressed
    data fails its checksum or ends early (SimpleITK fills a cut .nii.gz with zeros and returns); other files are
    left to their reader."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        data, start, compressed, needed = _nifti_layout(path)
    elif name.endswith((".nrrd", ".nhdr")):
        data, start, compressed, needed = _nrrd_layout(path, read_header(path))
    elif name.endswith((".mha", ".mhd")):
        data, start, compressed, needed = _meta_layout(path, read_header(path))
    else:
        return
    named = f"{data}" if data == path else f"{data} (the data of {path})"
    try:
        with open(data, "rb") as fh:
            fh.seek(start)
            have = _inflated_bytes(fh) if compressed else data.stat().st_size - start
    except OSError as err:
        raise UserError(f"{named} cannot be read ({err}): check the file") from None
    except ValueError as err:
        raise UserError(f"{named} is damaged: {err}: fetch or copy it again") from None
    if have < needed:
        raise UserError(f"{named} is cut short: it holds {have} of the {needed} bytes its header announces (an "
                        f"interrupted download or copy?): fetch or copy it again")


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
    bad = nonfinite_voxels(image)
    if bad:  # NaN would turn a slice's min..max, and so the whole slice, into zeros
        raise ValueError(f"the volume holds {bad} NaN or infinite voxel(s): read it with read_volume, which refuses it")
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
