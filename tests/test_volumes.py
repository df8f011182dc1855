"""tumorseg.volumes.io and the 3D phantom: formats, geometry, the slice orientation, scaling, DICOM series."""

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from tumorseg.errors import UserError
from tumorseg.volumes.headers import is_volume
from tumorseg.volumes.io import read_volume, voxel_ml, write_volume
from tumorseg.volumes.orientation import CANONICAL, canonical, canonical_size, mask_volume_like, slice_stack, slices_of
from tumorseg.volumes.phantom import (
    LABELS,
    SIZE,
    SPACING,
    direction,
    phantom_volume,
    write_dicom_series,
    write_nifti,
)


def assert_same_geometry(a: sitk.Image, b: sitk.Image, tol: float = 1e-6) -> None:
    assert a.GetSize() == b.GetSize()
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(a, get)(), getattr(b, get)(), atol=tol, err_msg=get)


def test_phantom_is_ct_like_with_a_real_geometry():
    image, label = phantom_volume(seed=0)
    hu, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
    assert image.GetSize() == SIZE and image.GetSpacing() == pytest.approx(SPACING)
    assert not np.allclose(image.GetDirection(), np.eye(3).ravel()) and any(image.GetOrigin())
    assert np.median(hu[:, 0, :]) == pytest.approx(-1000, abs=50)  # air at the edge
    assert np.median(hu[lab == 1]) == pytest.approx(45, abs=20)
    assert set(np.unique(lab)) == set(LABELS)
    tumor_slices = np.flatnonzero((lab == 1).any(axis=(1, 2)))
    assert len(tumor_slices) >= 3 and (lab.any(axis=(1, 2)) == 0).sum() >= 5
    assert np.array_equal(hu, sitk.GetArrayFromImage(phantom_volume(seed=0)[0]))  # deterministic by seed
    assert not np.array_equal(hu, sitk.GetArrayFromImage(phantom_volume(seed=1)[0]))


def test_phantom_slices_show_the_spine_on_the_left_as_the_training_slices():
    image, _ = phantom_volume(seed=0)
    bone = slice_stack(image)[SIZE[2] // 2] > 400
    assert bone.any() and np.flatnonzero(bone.any(axis=0)).max() < SIZE[1] / 2


def test_nifti_round_trip_keeps_geometry_and_voxels(tmp_path):
    image_path, label_path = write_nifti(tmp_path, "case", seed=3)
    image, label = read_volume(image_path), read_volume(label_path)
    original, original_label = phantom_volume(seed=3)
    assert_same_geometry(image, original)
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(original))
    masks = slice_stack(label) == 1
    rebuilt = read_volume(write_volume(mask_volume_like(masks, image), tmp_path / "mask.nii.gz"))
    assert_same_geometry(rebuilt, image)
    assert rebuilt.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(rebuilt), (sitk.GetArrayFromImage(original_label) == 1))


def test_slice_k_is_the_canonical_xyz_array_at_k_row_x_column_y():
    image = sitk.Image(5, 7, 3, sitk.sitkInt16)  # x, y, z: not square, so a swap shows
    image.SetDirection(tuple(np.diag([-1.0, -1.0, 1.0]).ravel()))  # stored as the training volumes: RAS
    image.SetPixel((1, 4, 2), 100)
    slices = slices_of(image)
    assert slices.shape == (3, 5, 7)  # K x H x W = Z x X x Y
    assert slices[2, 1, 4] == 255 and slices.sum() == 255
    xyz = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # what nibabel's get_fdata() gives
    assert np.array_equal(slice_stack(image)[2], xyz[:, :, 2])
    back = mask_volume_like(slices > 0, image)
    assert back.GetPixel((1, 4, 2)) == 1 and sitk.GetArrayFromImage(back).sum() == 1


@pytest.mark.parametrize("direction, voxel, at", [
    (np.eye(3), (1, 4, 2), (2, 3, 2)),  # LPS (DICOM's identity): x and y flipped into RAS
    (np.diag([-1.0, 1.0, -1.0]), (1, 4, 2), (0, 1, 2)),  # R, P, I: y and z flipped
    (np.array([[0.0, 0, -1], [-1, 0, 0], [0, 1, 0]]), (1, 4, 2), (4, 2, 1)),  # stored axes run A, S, R: swapped
])
def test_every_direction_is_turned_to_the_canonical_ras_order(direction, voxel, at):
    image = sitk.Image(5, 7, 3, sitk.sitkInt16)
    image.SetDirection(tuple(direction.ravel()))
    image.SetPixel(voxel, 100)
    assert CANONICAL == "RAS"
    turned = canonical(image)
    np.testing.assert_allclose(turned.GetDirection(), np.diag([-1.0, -1.0, 1.0]).ravel(), atol=1e-9)
    assert canonical_size(image) == turned.GetSize()
    slices = slices_of(image)
    assert slices.shape == (turned.GetSize()[2], turned.GetSize()[0], turned.GetSize()[1])
    assert slices[at] == 255 and slices.sum() == 255
    # the physical point of the bright voxel is the same in both orders: a turn, not a move
    k, row, column = at
    np.testing.assert_allclose(turned.TransformIndexToPhysicalPoint((row, column, k)),
                               image.TransformIndexToPhysicalPoint(voxel), atol=1e-9)
    back = mask_volume_like(slices > 0, image)
    assert_same_geometry(back, image, tol=0)
    assert back.GetPixel(voxel) == 1 and sitk.GetArrayFromImage(back).sum() == 1


def test_an_oblique_volume_turns_to_its_nearest_axes_and_masks_come_back_exactly():
    rng = np.random.default_rng(0)
    for turn in (20.0, 70.0, 130.0, 200.0):
        image = sitk.GetImageFromArray(rng.integers(-1000, 1000, (3, 7, 5)).astype(np.int16))
        image.SetDirection(direction(turn))
        image.SetOrigin((1.5, -2.0, 30.0))
        turned = canonical(image)
        assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(turned.GetDirection()) == CANONICAL
        assert np.abs(np.array(turned.GetDirection()).reshape(3, 3)[:2, :2]).max() < 1  # still oblique: not resampled
        assert sorted(turned.GetSize()) == sorted(image.GetSize())
        back = mask_volume_like(slice_stack(image) > 0, image)
        assert_same_geometry(back, image, tol=0)
        assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image) > 0)


@pytest.mark.parametrize("orientation, suffix", [("LPS", ".nii.gz"), ("LAI", ".nrrd"), ("SAR", ".mha")])
def test_the_same_anatomy_stored_in_any_order_gives_the_same_slices(tmp_path, orientation, suffix):
    as_made, _ = write_nifti(tmp_path, "ras", seed=1)
    dicom = write_dicom_series(tmp_path / "dicom", seed=1, orientation="LPS")
    other, _ = write_nifti(tmp_path, "other", seed=1, orientation=orientation, suffix=suffix)
    volumes = [read_volume(p) for p in (as_made, dicom, other)]
    assert not np.allclose(volumes[0].GetDirection(), volumes[1].GetDirection(), atol=0.5)
    assert not np.array_equal(sitk.GetArrayFromImage(volumes[0]), sitk.GetArrayFromImage(volumes[1]))
    reference = slices_of(volumes[0])
    assert reference.shape == (SIZE[2], SIZE[0], SIZE[1])
    for volume in volumes[1:]:
        assert np.array_equal(slices_of(volume), reference)
        mask = mask_volume_like(reference > 200, volume)
        assert_same_geometry(mask, volume, tol=0)
        assert np.array_equal(slice_stack(mask), reference > 200)


def test_slices_are_scaled_per_slice_or_through_a_window():
    values = np.zeros((3, 4, 4), np.int16)  # z, y, x
    values[0] = np.linspace(-1000, 1000, 16).reshape(4, 4)
    values[1] = 40  # constant: no division by zero
    values[2] = [[-1000, -160, 40, 240], [3000, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    image = sitk.GetImageFromArray(values)
    image.SetDirection(tuple(np.diag([-1.0, -1.0, 1.0]).ravel()))  # the canonical order: slices as stored
    per_slice = slices_of(image)
    assert per_slice.dtype == np.uint8
    assert per_slice[0].min() == 0 and per_slice[0].max() == 255 and per_slice[2].max() == 255
    assert not per_slice[1].any()
    windowed = slices_of(image, window=(40, 400))  # -160..240 HU
    assert [windowed[2][x, 0] for x in range(4)] == [0, 0, 128, 255]
    assert windowed[2][0, 1] == 255  # 3000 HU clipped
    assert (windowed[1] == 128).all()
    with pytest.raises(UserError, match="width"):
        slices_of(image, window=(40, 0))
    stored = sitk.GetImageFromArray(values + 1024)  # a CT's stored values, its rescale lost: no air below -500 HU
    stored.SetDirection(image.GetDirection())
    with pytest.raises(UserError, match=r"^ct\.nii\.gz: 0\.00% of its voxels lie below -500 \(values 24 to 4024\).*"
                                        r"Hounsfield units.*window null"):
        slices_of(stored, window=(40, 400), name="ct.nii.gz")
    assert (slices_of(stored) == per_slice).all()  # per-slice scaling reads any values, and is shift-free


def test_mask_volume_like_refuses_masks_of_another_shape():
    image = sitk.Image(5, 7, 3, sitk.sitkInt16)
    with pytest.raises(ValueError, match=r"\(3, 5, 7\)"):
        mask_volume_like(np.zeros((3, 7, 5), np.uint8), image)


def test_dicom_series_reads_back_with_the_phantoms_geometry(tmp_path):
    folder = write_dicom_series(tmp_path / "ct", seed=2)
    volume, (original, _) = read_volume(folder), phantom_volume(seed=2)
    assert_same_geometry(volume, original, tol=1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(volume), sitk.GetArrayFromImage(original))
    assert np.array_equal(slices_of(volume), slices_of(original))
    first = pydicom.dcmread(min(folder.iterdir()))
    assert first.Modality == "CT" and float(first.RescaleIntercept) == -1024 and float(first.SliceThickness) == 2.5
    assert [float(v) for v in first.PixelSpacing] == [SPACING[1], SPACING[0]]
    assert first.SeriesInstanceUID and first.StudyInstanceUID
    assert is_volume(folder)


def test_writing_a_dicom_series_leaves_the_locale_as_it_was(tmp_path):
    import locale

    before = locale.setlocale(locale.LC_ALL)
    write_dicom_series(tmp_path / "ct", size=(8, 8, 2))  # GDCM's writer alone would leave "C" (ASCII open())
    assert locale.setlocale(locale.LC_ALL) == before


def test_a_folder_with_two_series_asks_which(tmp_path):
    write_dicom_series(tmp_path, seed=0, description="lung window")
    write_dicom_series(tmp_path, seed=1, description="soft tissue")
    uids = sorted({pydicom.dcmread(f).SeriesInstanceUID for f in tmp_path.iterdir()})
    with pytest.raises(UserError) as err:
        read_volume(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "series=" in message and str(tmp_path) in message
    assert all(uid in message for uid in uids)
    assert "lung window" in message and "soft tissue" in message and f"{SIZE[2]} slices" in message
    assert read_volume(tmp_path, series=uids[1]).GetSize() == SIZE
    with pytest.raises(UserError, match="no series 1.2.3"):
        read_volume(tmp_path, series="1.2.3")


def test_the_chest_ct_slice_pydicom_ships_is_a_one_slice_volume():
    path = get_testdata_file("CT_small.dcm")
    if path is None:
        pytest.skip("pydicom's test files are not installed (get_testdata_file returned None)")
    volume = read_volume(path)
    assert volume.GetSize() == (128, 128, 1) and is_volume(path)
    hu = sitk.GetArrayFromImage(volume)
    assert (hu.min(), hu.max()) == (-896, 1167)
    slices = slices_of(volume)
    assert slices.shape == (1, 128, 128) and (slices.min(), slices.max()) == (0, 255)
    assert voxel_ml(volume) == pytest.approx(np.prod(volume.GetSpacing()) / 1000)


def test_unreadable_missing_and_multichannel_files_are_one_line(tmp_path):
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not a volume")
    for path in (junk, tmp_path / "missing.nrrd"):
        with pytest.raises(UserError) as err:
            read_volume(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    rgb = write_volume(sitk.Image([4, 4, 2], sitk.sitkVectorUInt8, 3), tmp_path / "rgb.nrrd")
    with pytest.raises(UserError, match="channel"):
        read_volume(rgb)


def test_a_volume_over_the_voxel_budget_is_refused_from_its_header(tmp_path, monkeypatch):
    path, _ = write_nifti(tmp_path, "case")
    monkeypatch.setattr(sitk, "ReadImage", lambda *a, **k: pytest.fail("pixels read before the size check"))
    with pytest.raises(UserError, match=f"{np.prod(SIZE)} voxels"):
        read_volume(path, max_voxels=1000)


def test_is_volume_by_suffix_or_dicom_content(tmp_path):
    dicom = write_dicom_series(tmp_path / "ct", size=(8, 8, 2))
    bare = tmp_path / "IM0001"  # DICOM files often have no suffix
    bare.write_bytes(next(dicom.iterdir()).read_bytes())
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "0.png").write_bytes(b"\x89PNG")
    assert is_volume(bare) and is_volume(dicom) and not is_volume(tmp_path / "pngs")
    assert not is_volume(tmp_path / "pngs" / "0.png") and not is_volume(tmp_path / "absent.nii.gz")
    assert read_volume(bare).GetSize() == (8, 8, 1)


def test_voxel_ml_follows_the_spacing():
    image, _ = phantom_volume()
    assert voxel_ml(image) == pytest.approx(0.7 * 0.7 * 2.5 / 1000)


def test_the_demo_case_is_written_by_the_module_command(tmp_path, capsys):
    from tumorseg.volumes import phantom as phantom3d

    phantom3d.main([str(tmp_path)])
    image, label = read_volume(tmp_path / "images/phantom.nii.gz"), read_volume(tmp_path / "labels/phantom.nii.gz")
    assert_same_geometry(image, label)
    assert image.GetSize() == SIZE and (sitk.GetArrayFromImage(label) == 1).any()
    assert capsys.readouterr().out.split() == [str(tmp_path / "images/phantom.nii.gz"),
                                               str(tmp_path / "labels/phantom.nii.gz")]
