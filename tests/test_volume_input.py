"""A volume is read whole and meaningful, or refused: cut or damaged files, DICOM series without a grid, NaN or
infinite voxels, planes over max_pixels (tumorseg.volumes.io.read_volume)."""

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from tumorseg.errors import UserError
from tumorseg.volumes.io import read_volume, volume_files, write_volume
from tumorseg.volumes.orientation import slices_of
from tumorseg.volumes.phantom import phantom_volume, write_dicom_series, write_nifti

SMALL = (16, 16, 6)


def refused(path, match: str, **options) -> str:
    """read_volume's one-line refusal of path, which names `match`."""
    with pytest.raises(UserError) as err:
        read_volume(path, **options)
    message = str(err.value)
    assert match in message and "\n" not in message, message
    return message


def cut(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def damage(path: Path, at: float) -> None:
    """Flip 16 bytes at the fraction `at` of the file."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + 16] = bytes(b ^ 0xFF for b in data[start:start + 16])
    path.write_bytes(bytes(data))


# (suffix, compressed, the file that holds the voxels)
FORMATS = [(".nii.gz", True, "case.nii.gz"), (".nii", False, "case.nii"), (".nrrd", True, "case.nrrd"),
           (".nrrd", False, "case.nrrd"), (".mha", True, "case.mha"), (".mha", False, "case.mha"),
           (".mhd", True, "case.zraw"), (".mhd", False, "case.raw"), (".nhdr", True, "case.raw.gz")]


def written(folder: Path, suffix: str, compressed: bool) -> tuple[Path, sitk.Image]:
    image, _ = phantom_volume()
    path = folder / f"case{suffix}"
    sitk.WriteImage(image, str(path), useCompression=compressed)
    return path, image


@pytest.mark.parametrize("suffix, compressed, data", FORMATS)
def test_an_intact_file_of_every_format_reads_whole(tmp_path, suffix, compressed, data):
    path, image = written(tmp_path, suffix, compressed)
    assert (tmp_path / data).is_file()
    assert np.array_equal(sitk.GetArrayFromImage(read_volume(path)), sitk.GetArrayFromImage(image))


@pytest.mark.parametrize("suffix, compressed, data", [f for f in FORMATS if f[0] in (".nii.gz", ".nii")])
@pytest.mark.parametrize("fraction", [0.6, 0.995])
def test_a_cut_nifti_file_is_refused_naming_it(tmp_path, suffix, compressed, data, fraction):
    # SimpleITK fills the missing voxels with zeros and returns (40% of them zero at 0.6)
    path, _ = written(tmp_path, suffix, compressed)
    cut(path, fraction)
    message = refused(path, str(path))
    assert ("cut short" if suffix == ".nii" else "ends early") in message


@pytest.mark.parametrize("suffix, compressed, data", [f for f in FORMATS if f[1]])
def test_damaged_compressed_data_is_refused_naming_the_file(tmp_path, suffix, compressed, data):
    # SimpleITK read a damaged .nrrd, .mha or .mhd/.zraw without an error, its voxels wrong
    path, _ = written(tmp_path, suffix, compressed)
    damage(tmp_path / data, 0.5 if suffix != ".nii.gz" else 0.9)
    refused(path, str(tmp_path / data))


@pytest.mark.parametrize("suffix, compressed, data", [f for f in FORMATS if f[0] in (".mhd", ".nhdr")])
def test_a_cut_detached_data_file_is_refused_naming_it(tmp_path, suffix, compressed, data):
    path, _ = written(tmp_path, suffix, compressed)
    cut(tmp_path / data, 0.9)
    refused(path, f"{tmp_path / data} (the data of {path})")


def test_an_empty_nifti_is_refused(tmp_path):
    path, _ = written(tmp_path, ".nii.gz", True)
    path.write_bytes(gzip.compress(b""))
    refused(path, str(path))


def series(tmp_path: Path, edit=None) -> tuple[Path, list[Path]]:
    """A phantom DICOM series of SMALL size, each slice k passed through edit(k, dataset) (None: left alone)."""
    folder = write_dicom_series(tmp_path / "ct", size=SMALL)
    files = sorted(folder.iterdir())
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        if edit is not None and edit(k, ds) is not False:
            ds.save_as(path)
    return folder, files


def shift(ds, mm: float, axis: int = 2) -> None:
    position = [float(v) for v in ds.ImagePositionPatient]
    position[axis] += mm
    ds.ImagePositionPatient = position


def drop(tag: str, slices):
    def edit(k, ds):
        if k not in slices:
            return False
        del ds[tag]
    return edit


@pytest.mark.parametrize("edit, bad, tag", [
    (drop("ImagePositionPatient", range(SMALL[2])), 0, "ImagePositionPatient (0020,0032) is missing"),
    (drop("ImagePositionPatient", [3]), 3, "ImagePositionPatient (0020,0032) is missing"),
    (drop("ImageOrientationPatient", range(SMALL[2])), 0, "ImageOrientationPatient (0020,0037) is missing"),
    (drop("PixelSpacing", [2]), 2, "PixelSpacing (0028,0030) is missing"),
    (lambda k, ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0]) if k == 2 else False, 2,
     "ImageOrientationPatient (0020,0037) is [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]"),
    (lambda k, ds: shift(ds, 2.5) if k >= 4 else False, 4, "a missing slice or uneven spacing"),
    (lambda k, ds: shift(ds, 0.1) if k >= 1 else False, 1, "a missing slice or uneven spacing"),  # 2.6, then 2.5
    (lambda k, ds: shift(ds, -2.5) if k == 3 else False, 3, "repeats the position of"),
    (lambda k, ds: shift(ds, 1.0 * k, axis=0), 1, "off the slice normal"),  # a tilted gantry's sheared stack
])
def test_a_dicom_series_without_one_even_grid_is_refused_naming_the_file_and_tag(tmp_path, monkeypatch, edit, bad,
                                                                              tag):
    # SimpleITK made a grid up: origin 0 and slice spacing 1.0 without positions, the mean gap over uneven ones
    folder, files = series(tmp_path, edit)
    monkeypatch.setattr(sitk.ImageSeriesReader, "Execute", lambda *a: pytest.fail("pixels read before the check"))
    message = refused(folder, tag)
    assert str(files[bad]) in message
    if tag.startswith("repeats"):  # the two slices on one position: either may come first
        assert str(files[bad - 1]) in message


def test_a_missing_slice_is_refused(tmp_path):
    folder, files = series(tmp_path)
    files[3].unlink()
    refused(folder, f"{files[4]}: ImagePositionPatient (0020,0032) lies 5 mm from {files[2]}")


def test_positions_written_to_a_hundredth_of_a_millimetre_pass(tmp_path):
    folder, _ = series(tmp_path, lambda k, ds: shift(ds, [0, 0.004, -0.003, 0.005, 0, -0.004][k]))
    assert read_volume(folder).GetSpacing()[2] == pytest.approx(2.5, abs=1e-3)


def test_a_single_dicom_file_without_a_position_is_refused(tmp_path):
    _, files = series(tmp_path, drop("ImagePositionPatient", [0]))
    refused(files[0], f"{files[0]}: ImagePositionPatient (0020,0032) is missing")
    assert read_volume(files[1]).GetOrigin() == pytest.approx(
        [float(v) for v in pydicom.dcmread(files[1]).ImagePositionPatient])


def float_volume(tmp_path: Path, values, suffix: str) -> Path:
    image, _ = phantom_volume(size=SMALL)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array.flat[: len(values)] = values
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return write_volume(out, tmp_path / f"float{suffix}")


@pytest.mark.parametrize("values, count", [([np.nan], 1), ([np.inf, -np.inf, np.nan], 3),
                                           ([np.nan] * int(np.prod(SMALL)), int(np.prod(SMALL)))])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_nan_or_infinite_voxels_are_refused_with_their_count(tmp_path, values, count, suffix):
    # a NaN blanked its whole slice (its min..max became NaN), an all-NaN volume gave an empty mask with exit 0;
    # SimpleITK reads a NIfTI file's NaN as 0
    path = float_volume(tmp_path, values, suffix)
    refused(path, f"{path} holds {count} NaN or infinite voxel(s)")


def test_slices_of_never_blanks_a_slice_with_nan(tmp_path):
    image = sitk.GetImageFromArray(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4))
    assert slices_of(image).any(axis=(1, 2)).all()
    image[1, 1, 1] = float("nan")
    for window in (None, (10, 20)):
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            slices_of(image, window)


def huge_slice_nifti(path: Path, width: int = 11000, height: int = 11000) -> Path:
    """A .nii.gz of a few hundred bytes whose header announces one width x height uint8 slice."""
    small = tmp = path.with_name("small.nii")
    sitk.WriteImage(sitk.Image([2, 2, 1], sitk.sitkUInt8), str(tmp))
    header = bytearray(small.read_bytes())
    header[40:56] = struct.pack("<8h", 3, width, height, 1, 1, 1, 1, 1)
    path.write_bytes(gzip.compress(bytes(header)))
    small.unlink()
    return path


def test_a_volume_with_a_plane_over_max_pixels_is_refused_from_its_header(tmp_path, monkeypatch):
    path = huge_slice_nifti(tmp_path / "huge.nii.gz")
    assert path.stat().st_size < 2000
    monkeypatch.setattr(sitk, "ReadImage", lambda *a, **k: pytest.fail("pixels read before the pixel check"))
    refused(path, f"{path} has 11000x11000 = 121000000 pixels in a plane, above max_pixels=100000000")
    with pytest.raises(UserError, match="max_pixels"):
        volume_files(path)


def test_max_pixels_bounds_every_plane_of_a_volume(tmp_path):
    image, _ = write_nifti(tmp_path, "case", size=SMALL)
    assert read_volume(image, max_pixels=16 * 16).GetSize() == SMALL
    refused(image, "16x16 = 256 pixels", max_pixels=16 * 16 - 1)
    tall = write_volume(sitk.Image([4, 5, 300], sitk.sitkInt16), tmp_path / "tall.nrrd")  # largest plane: y by z
    refused(tall, "300x5 = 1500 pixels", max_pixels=1499)
    folder, _ = series(tmp_path)
    refused(folder, "16x16", max_pixels=255)
    shutil.rmtree(folder)


def with_codes(path: Path, qform: int, sform: int) -> None:
    """Set a NIfTI-1 file's qform_code and sform_code (bytes 252-255), gzip or not."""
    compressed = path.name.endswith(".gz")
    data = bytearray(gzip.decompress(path.read_bytes()) if compressed else path.read_bytes())
    data[252:256] = struct.pack("<2h", qform, sform)
    path.write_bytes(gzip.compress(bytes(data)) if compressed else bytes(data))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_a_nifti_that_states_no_orientation_is_refused_from_its_header(tmp_path, suffix):
    # SimpleITK reads it in identity directions: the phantom's slices then reach the model turned by 180 degrees,
    # and the reference model's mask differs (72 voxels against 30), exit 0
    path, _ = written(tmp_path, suffix, suffix.endswith(".gz"))
    with_codes(path, 0, 0)
    message = refused(path, str(path))
    assert "qform_code and sform_code are both 0" in message and "dcm2niix" in message
    with pytest.raises(UserError, match="which way the patient lies"):
        volume_files(path)  # from the header, before any voxel is read


@pytest.mark.parametrize("qform, sform", [(1, 0), (0, 1), (0, 2)])
def test_a_nifti_with_either_code_reads_on_its_grid(tmp_path, qform, sform):
    path, image = written(tmp_path, ".nii", False)
    with_codes(path, qform, sform)
    read = read_volume(path)
    assert np.allclose(read.GetDirection(), image.GetDirection(), atol=1e-4)


@pytest.mark.parametrize("suffix", [".nrrd", ".nhdr"])
def test_a_nrrd_without_space_directions_is_refused(tmp_path, suffix):
    path, _ = written(tmp_path, suffix, False)
    head, blank, data = path.read_bytes().partition(b"\n\n")
    lines = [line for line in head.split(b"\n") if not line.startswith((b"space", b"measurement frame"))]
    path.write_bytes(b"\n".join(lines + [b"spacings: 0.7 0.7 2.5"]) + blank + data)
    assert sitk.ReadImage(str(path)).GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)  # what SimpleITK would use
    refused(path, "no `space directions` field")


def with_pixdim(path: Path, pixdim) -> None:
    """Set a NIfTI-1 file's pixdim[1:4] (the sform keeps its voxel sides)."""
    compressed = path.name.endswith(".gz")
    data = bytearray(gzip.decompress(path.read_bytes()) if compressed else path.read_bytes())
    data[80:92] = struct.pack("<3f", *pixdim)
    path.write_bytes(gzip.compress(bytes(data)) if compressed else bytes(data))


@pytest.mark.parametrize("pixdim, codes, words", [
    ((0, 0, 0), (1, 1), "states no voxel size (pixdim 0 x 0 x 0), which readers take for 1 mm"),
    ((0, 0, 0), (1, 0), "states no voxel size"),  # qform alone: SimpleITK would read 1 x 1 x 1 mm
    ((1, 1, 1), (1, 1), "states two voxel sizes, 1 x 1 x 1 mm (pixdim) and 0.7 x 0.7 x 2.5 mm (its sform)"),
    ((1e-6, 1e-6, 2.5), (1, 0), "has voxels of 1e-06 x 1e-06 x 2.5 mm, outside the 0.05-20 mm of a patient's CT"),
    ((700, 700, 2500), (1, 0), "has voxels of 700 x 700 x 2500 mm"),  # metres read as millimetres
])
def test_a_nifti_with_no_true_voxel_size_is_refused_from_its_header(tmp_path, pixdim, codes, words):
    # SimpleITK reads each with a spacing that makes the tumor's mL wrong (a pixdim of 0 reads as 1 mm), exit 0
    path, _ = written(tmp_path, ".nii.gz", True)
    with_codes(path, *codes)
    with_pixdim(path, pixdim)
    assert str(path) in refused(path, words)
    with pytest.raises(UserError, match="voxel"):
        volume_files(path)  # from the header, before any voxel is read


def test_a_negative_pixdim_is_read_as_its_size_and_a_dicom_series_spacing_is_checked(tmp_path):
    path, image = written(tmp_path, ".nii", False)
    with_pixdim(path, (-0.7, 0.7, 2.5))
    assert np.allclose(read_volume(path).GetSpacing(), image.GetSpacing(), atol=1e-4)
    series = write_dicom_series(tmp_path / "dicom", size=SMALL)
    for file in series.glob("*.dcm"):
        ds = pydicom.dcmread(file)
        ds.PixelSpacing = [0.001, 0.001]
        ds.save_as(file)
    refused(series, "has voxels of 0.001 x 0.001 x 2.5 mm")
