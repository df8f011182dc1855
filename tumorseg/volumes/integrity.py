"""Whether a volume file holds every voxel its header announces, intact and finite (SimpleITK fills a cut .nii.gz with
zeros and reads NaN in a NIfTI file as 0, both without an error), and states which way the patient lies (SimpleITK
reads a file that does not as if it did).
"""

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tumorseg.errors import UserError
from tumorseg.volumes.headers import read_header

PIXEL_BYTES = {sitk.sitkUInt8: 1, sitk.sitkInt8: 1, sitk.sitkUInt16: 2, sitk.sitkInt16: 2, sitk.sitkUInt32: 4,
               sitk.sitkInt32: 4, sitk.sitkUInt64: 8, sitk.sitkInt64: 8, sitk.sitkFloat32: 4, sitk.sitkFloat64: 8}


CHUNK = 1 << 20


def nonfinite_voxels(image: sitk.Image) -> int:
    """How many voxels are NaN or infinite (0 for an integer volume), counted a slice at a time."""
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return 0
    return int(sum(np.count_nonzero(~np.isfinite(plane)) for plane in sitk.GetArrayViewFromImage(image)))


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


def _nifti_head(path: Path) -> tuple[bool, bytes, str, bool]:
    """(gzip-compressed, the first 540 bytes, struct's byte order '<' or '>', NIfTI-1) of a .nii or .nii.gz."""
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
    return compressed, head, end, struct.unpack(end + "i", head[:4])[0] == 348


def _nifti_header(path: Path) -> tuple[bool, int, int, np.dtype | None]:
    """(gzip-compressed, vox_offset, voxel count, the numpy dtype of float voxels or None) of a .nii or .nii.gz."""
    compressed, head, end, nifti1 = _nifti_head(path)
    if nifti1:
        dims, (datatype, bitpix) = struct.unpack(end + "8h", head[40:56]), struct.unpack(end + "2h", head[70:74])
        offset = int(struct.unpack(end + "f", head[108:112])[0])
    else:
        (datatype, bitpix), dims = struct.unpack(end + "2h", head[12:16]), struct.unpack(end + "8q", head[16:80])
        offset = struct.unpack(end + "q", head[168:176])[0]
    floats = {16: "f4", 64: "f8"}.get(datatype)
    return compressed, offset, int(np.prod(dims[1:dims[0] + 1], dtype=np.int64)) * bitpix // 8, (
        np.dtype(end + floats) if floats else None)


def _nifti_oriented(path: Path) -> bool:
    """Whether a NIfTI file states its orientation: a qform_code or an sform_code other than 0 (NIfTI's 'method 1',
    both 0, is ANALYZE's voxel grid with no direction in the patient)."""
    _, head, end, nifti1 = _nifti_head(path)
    if nifti1:
        codes = struct.unpack(end + "2h", head[252:256])
    else:
        codes = struct.unpack(end + "2i", head[344:352])
    return any(codes)


def check_orientation(path: Path) -> None:
    """Refuse a NIfTI file with qform_code = sform_code = 0, or a NRRD file without `space directions`: SimpleITK
    reads either as lying in identity directions, and the model, which finds tumors on slices turned as it was
    trained (RAS), would then look at them mirrored or turned, a different mask with no error. Other formats state
    their geometry (DICOM's tags, checked by dicom_grid) or default to one by their definition (MetaImage)."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        stated, missing = _nifti_oriented(path), "qform_code and sform_code are both 0"
    elif name.endswith((".nrrd", ".nhdr")):
        stated, missing = "spacedirections" in _text_header(path, ":", None)[0], "it has no `space directions` field"
    else:
        return
    if not stated:
        raise UserError(f"{path} does not say which way the patient lies ({missing}), so its slices could be read "
                        f"mirrored or turned: convert the scan again with its orientation (e.g. dcm2niix from the "
                        f"DICOM series)")


def _nifti_voxel_sizes(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(pixdim of its spatial axes (up to 3), the voxel sides its sform scales those by, or None when its sform_code
    is 0) of a NIfTI file."""
    _, head, end, nifti1 = _nifti_head(path)
    if nifti1:
        ndim, code = struct.unpack(end + "h", head[40:42])[0], struct.unpack(end + "h", head[254:256])[0]
        pixdim, rows = struct.unpack(end + "3f", head[80:92]), struct.unpack(end + "12f", head[280:328])
    else:
        ndim, code = struct.unpack(end + "q", head[16:24])[0], struct.unpack(end + "i", head[348:352])[0]
        pixdim, rows = struct.unpack(end + "3d", head[112:136]), struct.unpack(end + "12d", head[400:496])
    n = min(max(int(ndim), 1), 3)
    sides = np.linalg.norm(np.array(rows, float).reshape(3, 4)[:, :n], axis=0) if code else None
    return np.array(pixdim[:n], float), sides


def check_nifti_spacing(path: Path) -> None:
    """Refuse a NIfTI file that states no voxel size (a pixdim of 0, which SimpleITK reads as 1 mm) or two (an
    sform that scales its voxels otherwise than pixdim): tumor volumes in mL would follow a reader's guess."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return
    pixdim, sides = _nifti_voxel_sizes(path)
    shown = " x ".join(f"{float(v):.4g}" for v in pixdim)
    if not (np.isfinite(pixdim).all() and (pixdim != 0).all()):
        raise UserError(f"{path} states no voxel size (pixdim {shown}), which readers take for 1 mm: fix the "
                        f"header (e.g. convert the scan again from DICOM with dcm2niix)")
    if sides is not None and not np.allclose(sides, np.abs(pixdim), rtol=1e-3, atol=1e-4):
        raise UserError(f"{path} states two voxel sizes, {shown} mm (pixdim) and "
                        f"{' x '.join(f'{v:.4g}' for v in sides)} mm (its sform), so its volumes in mL depend on "
                        f"the reader: fix the header (e.g. convert the scan again from DICOM with dcm2niix)")


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
