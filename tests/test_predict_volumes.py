"""tumorseg predict on CT volumes: masks on the input's exact grid, the CSV, overlays, DICOM SEG, the viewer page."""

import copy
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from omegaconf import OmegaConf
from pydicom.data import get_testdata_file

from tests.conftest import run_main
from tests.test_viewer import red_pixels, screenshot
from tumorseg.inference import model_file
from tumorseg.inference.segment import segmenter_for
from tumorseg.inference.volume_segment import segment_volume
from tumorseg.scoring.volume_metrics import components
from tumorseg.volumes.io import read_volume, volume_files, voxel_ml, write_volume
from tumorseg.volumes.orientation import slice_stack, slices_of
from tumorseg.volumes.phantom import phantom_volume, write_dicom_series, write_nifti
from tumorseg.writers.dicom_seg import seg_frames

SIZE = (64, 64, 16)
FAST = ["tta=false", "threshold=0.2"]  # the shipped model, one view: a few seconds on 64 x 64 x 16


def predict(*args: str):
    return run_main("tumorseg.predict", *FAST, *args)


def predicted(tmp: Path, source: Path, out: Path, *args: str) -> Path:
    """Run predict on source into out; fail unless it succeeds; out."""
    result = predict(f"input={source}", f"output={out}", f"hydra.run.dir={tmp / 'log' / out.name}", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "volume(s) predicted, 0 failed" in result.stdout
    return out


def refused(tmp: Path, source: Path, *args: str) -> str:
    """Run predict; fail unless it stops with one error line and writes nothing; that line."""
    out = tmp / "refused"
    result = predict(f"input={source}", f"output={out}", f"hydra.run.dir={tmp / 'log-refused'}", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and not out.exists()
    return line


def summary(out: Path) -> list[dict]:
    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def assert_same_grid(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(a, get)(), getattr(b, get)(), rtol=0, atol=1e-6, err_msg=get)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The phantom as NIfTI (stored RAS) and as a DICOM series (stored LPS, as scanners do), each predicted."""
    tmp = tmp_path_factory.mktemp("volumes")
    nifti, _ = write_nifti(tmp / "in", "case", seed=0, size=SIZE)
    dicom = write_dicom_series(tmp / "in" / "series", seed=0, size=SIZE, orientation="LPS")
    return {"tmp": tmp, "nifti": nifti, "dicom": dicom, "nifti_out": predicted(tmp, nifti, tmp / "out-nifti"),
            "dicom_out": predicted(tmp, dicom, tmp / "out-dicom")}


def test_a_nifti_volume_gets_a_mask_on_its_exact_grid_a_summary_and_overlays(runs):
    out, image = runs["nifti_out"], read_volume(runs["nifti"])
    mask = read_volume(out / "case_mask.nii.gz")
    assert_same_grid(mask, image)
    assert mask.GetPixelID() == sitk.sitkUInt8 and set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1}
    masks = slice_stack(mask)
    assert masks.any()  # the page test below needs a slice with tumor
    (row,) = summary(out)
    labels, n = components(masks)
    sizes = np.bincount(labels.ravel())[1:]
    with_tumor = np.flatnonzero(masks.any(axis=(1, 2)))
    assert row["path"] == str(runs["nifti"]) and int(row["slices"]) == SIZE[2]
    assert int(row["tumor_voxels"]) == masks.sum() and int(row["components"]) == n
    assert float(row["tumor_ml"]) == pytest.approx(masks.sum() * voxel_ml(image), abs=1e-4)
    assert float(row["largest_ml"]) == pytest.approx(sizes.max() * voxel_ml(image), abs=1e-4)
    assert (int(row["first_slice"]), int(row["last_slice"])) == (with_tumor[0], with_tumor[-1])
    assert 0.2 < float(row["max_probability"]) <= 1
    assert sorted(int(p.stem) for p in (out / "overlays" / "case").glob("*.png")) == list(with_tumor)


def test_a_dicom_series_stored_otherwise_gets_the_same_masks_and_a_dicom_seg(runs):
    out, image = runs["dicom_out"], read_volume(runs["dicom"])
    mask = read_volume(out / "series_mask.nii.gz")
    assert_same_grid(mask, image)
    assert np.array_equal(slice_stack(mask), slice_stack(read_volume(runs["nifti_out"] / "case_mask.nii.gz")))
    assert not np.array_equal(sitk.GetArrayFromImage(mask),  # stored in another voxel order, the same anatomy
                              sitk.GetArrayFromImage(read_volume(runs["nifti_out"] / "case_mask.nii.gz")))
    files = volume_files(runs["dicom"])
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    seg = pydicom.dcmread(out / "series_seg.dcm")
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID and seg.SeriesInstanceUID != sources[0].SeriesInstanceUID
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "tumor" and segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    frames = seg_frames(out / "series_seg.dcm", [d.SOPInstanceUID for d in sources])
    assert np.array_equal(frames, sitk.GetArrayFromImage(mask))  # frame z: the mask on source file z


def test_the_page_opens_on_a_slice_with_tumor_and_a_slice_without_shows_none(runs):
    out = runs["nifti_out"]
    page = json.loads((out / "index.html").read_text().split('type="application/json">')[1].split("</script>")[0])
    (subject,) = page["subjects"]
    assert subject["name"] == "case" and len(subject["slices"]) == SIZE[2]
    assert all((out / s["image"]).is_file() for s in subject["slices"])
    assert subject["figures"]["tumor mL"] == float(summary(out)[0]["tumor_ml"])
    free = next(s["label"] for s in subject["slices"] if s["pred"] is None)
    assert red_pixels(screenshot(out / "index.html", runs["tmp"])) > 0
    assert red_pixels(screenshot(out / "index.html", runs["tmp"], f"#subject=case&slice={free}")) == 0


def test_a_folder_of_volumes_gives_one_subject_each_with_masks_in_their_format(tmp_path):
    folder = tmp_path / "scans"
    write_nifti(folder, "a", seed=1, size=(32, 32, 4), suffix=".nrrd")
    write_nifti(folder / "more", "b", seed=2, size=(32, 32, 4), suffix=".mha", orientation="LPI")
    for label in folder.rglob("*_label.*"):  # truth belongs in a labels/ folder, which predict leaves alone
        (folder / "labels").mkdir(exist_ok=True)
        label.rename(folder / "labels" / label.name)
    out = predicted(tmp_path, folder, tmp_path / "out")
    assert_same_grid(read_volume(out / "a_mask.nrrd"), read_volume(folder / "a.nrrd"))
    assert_same_grid(read_volume(out / "more/b_mask.mha"), read_volume(folder / "more/b.mha"))
    assert [r["path"] for r in summary(out)] == [str(folder / "a.nrrd"), str(folder / "more/b.mha")]
    again = predict(f"input={folder}", f"output={out}", f"hydra.run.dir={tmp_path / 'log2'}")
    assert again.returncode == 2 and "overwrite=true" in again.stderr


def test_a_bad_volume_is_one_line_naming_it(tmp_path):
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not a volume")
    assert str(junk) in refused(tmp_path, junk)
    two = tmp_path / "two"
    write_dicom_series(two, seed=0, size=(16, 16, 3), description="lung")
    write_dicom_series(two, seed=1, size=(16, 16, 3), description="soft tissue")
    line = refused(tmp_path, two)
    assert str(two) in line and "series=" in line
    nifti, _ = write_nifti(tmp_path / "one", "c", size=(16, 16, 3))
    line = refused(tmp_path, nifti, "max_voxels=100")
    assert str(nifti) in line and "max_voxels=" in line
    assert "series=" in refused(tmp_path, nifti, "series=1.2.3")
    assert "preprocess.window" in refused(tmp_path, nifti, "preprocess.window=[40]")
    mixed = tmp_path / "mixed"
    write_volume(read_volume(nifti), mixed / "c.nii.gz")
    (mixed / "slice.png").write_bytes(b"\x89PNG")
    assert "2D images" in refused(tmp_path, mixed)


def windowed_model(path: Path, window: tuple[float, float]) -> Path:
    """The shipped model as if trained on slices made through a fixed HU window (its run config's data.window)."""
    model = model_file.read(model_file.REFERENCE_MODEL)
    config = copy.deepcopy(model.run_config)
    config["data"]["window"] = list(window)
    return model_file.save(dataclasses.replace(model, run_config=config), path)


def test_a_model_of_windowed_slices_reads_volumes_through_its_window_and_no_other(tmp_path):
    model = windowed_model(tmp_path / "windowed.pt", (-100, 1800))
    assert model_file.read(model).preprocessing.window == (-100, 1800)
    image = phantom_volume(size=SIZE)[0]
    segmenter = segmenter_for(OmegaConf.create({"ckpt_path": str(model), "device": "cpu", "runtime": "pytorch",
                                                "tta": False}))
    slices, _ = segment_volume(segmenter, image, None, "ct.nii.gz")
    assert (slices == slices_of(image, (-100, 1800))).all() and (slices != slices_of(image)).any()
    assert (segment_volume(segmenter, image, (-100, 1800), "ct.nii.gz")[0] == slices).all()  # its own, given: fine
    nifti, _ = write_nifti(tmp_path / "in", "case", size=SIZE)
    line = refused(tmp_path, nifti, f"ckpt_path={model}", "preprocess.window=[-600,1500]")
    assert "preprocess.window=[-600,1500], but windowed.pt was trained on slices made with the window [-100,1800]" \
        in line and "leave preprocess.window out" in line


def test_a_fixed_window_refuses_a_volume_not_in_hounsfield_units(tmp_path):
    nifti, _ = write_nifti(tmp_path / "in", "case", size=(32, 32, 4))
    raw = tmp_path / "raw" / "raw.nii.gz"
    write_volume(sitk.Cast(read_volume(nifti), sitk.sitkInt16) + 1024, raw)  # stored values, the rescale lost
    line = refused(tmp_path, raw, "preprocess.window=[-600,1500]")
    assert f"{raw}: 0.00% of its voxels lie below -500" in line and "not a chest CT in Hounsfield units" in line


def test_the_chest_ct_slice_pydicom_ships_runs_through_predict(tmp_path):
    path = get_testdata_file("CT_small.dcm")
    if path is None:
        pytest.skip("pydicom's test files are not installed (get_testdata_file returned None)")
    out = tmp_path / "out"
    result = run_main("tumorseg.predict", f"input={path}", f"output={out}", f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = summary(out)
    mask = read_volume(out / "CT_small_mask.nii.gz")
    assert_same_grid(mask, read_volume(path))
    assert int(row["tumor_voxels"]) == sitk.GetArrayFromImage(mask).sum()
    assert (out / "CT_small_seg.dcm").is_file()
    # a tumor-free slice: the count is recorded in docs/volumes.md, not asserted to be 0
    print(f"CT_small.dcm: {row['tumor_voxels']} pixels called tumor (max probability {row['max_probability']})")


def test_images_outputs_are_claimed_before_the_model_is_read(tmp_path):
    """predict resolves its job (inputs found, outputs checked and claimed) before it reads the model file."""
    import cv2

    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.zeros((32, 32), np.uint8))
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "bad.pt").write_text("not a model")
    result = predict(f"input={tmp_path / 'in'}", f"output={tmp_path / 'afile'}", f"ckpt_path={tmp_path / 'bad.pt'}",
                     f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert "is a file" in line and "bad.pt" not in line
