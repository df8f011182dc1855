"""tumorseg convert: MSD and nnU-Net v2 task folders into the slice layout, resumable, refusing what it must."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_main
from tumorseg.convert import pick_slices
from tumorseg.data.layout import find_pairs
from tumorseg.volumes.io import read_volume, write_volume
from tumorseg.volumes.orientation import slice_stack, slices_of
from tumorseg.volumes.phantom import SIZE, case_names, write_msd_task, write_nnunet_task

CASES = case_names(3)


@pytest.fixture(scope="module")
def msd(tmp_path_factory) -> Path:
    return write_msd_task(tmp_path_factory.mktemp("tasks") / "Task99_Phantom", cases=3, test_cases=1)


@pytest.fixture
def task(msd, tmp_path) -> Path:
    """A copy of the MSD task this test may spoil."""
    return Path(shutil.copytree(msd, tmp_path / "task"))


def convert(task: Path, out: Path, *options: str):
    return run_main("tumorseg.convert", f"input={task}", f"output={out}", *options)


def converted(task: Path, out: Path, *options: str) -> str:
    """Run convert, fail unless it succeeds; its summary line."""
    result = convert(task, out, *options)
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = result.stdout.strip().splitlines()
    return line


def refused(task: Path, out: Path, *options: str) -> str:
    """Run convert, fail unless it stops with one line; that line."""
    result = convert(task, out, *options)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def label_slices(task: Path, case: str) -> np.ndarray:
    """The case's label volume as slices (K x H x W)."""
    return slice_stack(read_volume(task / "labelsTr" / f"{case}.nii.gz"))


def written(out: Path, part: str, case: str) -> list[int]:
    """Slice indices written for a case, in order."""
    return sorted(int(p.stem) for p in (out / part / "images" / case).glob("*.png"))


def test_msd_task_becomes_the_layout_and_round_trips(msd, tmp_path):
    out = tmp_path / "data"
    line = converted(msd, out, "val_cases=[phantom_003]")
    assert str(out) in line and "3 case(s) converted (2 train, 1 val)" in line
    assert {s.subject for s in find_pairs(out / "train")} == set(CASES[:2])
    assert {s.subject for s in find_pairs(out / "val")} == {"phantom_003"}
    for part, case in (("train", "phantom_001"), ("val", "phantom_003")):
        images = slices_of(read_volume(msd / "imagesTr" / f"{case}.nii.gz"))
        labels = label_slices(msd, case)
        for k in written(out, part, case):
            png = cv2.imread(str(out / part / "images" / case / f"{k}.png"), cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(str(out / part / "masks" / case / f"{k}.png"), cv2.IMREAD_UNCHANGED)
            assert png.dtype == np.uint8 and np.array_equal(png, images[k])
            assert np.array_equal(mask, (labels[k] == 1).astype(np.uint8) * 255)
    assert f"{len(list(out.rglob('*.png'))) // 2} slices written" in line


def test_labeled_plus_n_keeps_every_labeled_slice_and_n_others(msd, tmp_path):
    converted(msd, tmp_path / "five")
    converted(msd, tmp_path / "both", "label=[1,2]", "slices=labeled+2")
    converted(msd, tmp_path / "all", "slices=all")
    for case in CASES:
        labels = label_slices(msd, case)
        tumor = np.flatnonzero((labels == 1).any(axis=(1, 2)))
        either = np.flatnonzero((labels > 0).any(axis=(1, 2)))
        assert len(either) > len(tumor)  # the phantom's node lies on other slices
        five = written(tmp_path / "five", "train", case)
        assert len(five) == len(tumor) + 5 and set(tumor) <= set(five)
        assert len(written(tmp_path / "both", "train", case)) == len(either) + 2
        assert written(tmp_path / "all", "train", case) == list(range(SIZE[2]))
    node_slice = next(k for k in range(SIZE[2]) if (label_slices(msd, "phantom_001")[k] == 2).any())
    mask = cv2.imread(str(tmp_path / "all" / "train" / "masks" / "phantom_001" / f"{node_slice}.png"), 0)
    both = cv2.imread(str(tmp_path / "both" / "train" / "masks" / "phantom_001" / f"{node_slice}.png"), 0)
    assert not (mask[label_slices(msd, "phantom_001")[node_slice] == 2]).any() and both.max() == 255


def test_the_tumor_free_slices_are_the_first_names_in_string_order():
    labeled = np.zeros(30, bool)
    labeled[5:9] = True
    assert pick_slices(labeled, 5) == [0, 1, 5, 6, 7, 8, 10, 11, 12]  # "0" < "1" < "10" < ... < "2"
    assert pick_slices(labeled, 0) == [5, 6, 7, 8]
    assert pick_slices(labeled, None) == list(range(30))


def test_a_window_changes_the_slices_as_slices_of_does(msd, tmp_path):
    converted(msd, tmp_path / "w", "preprocess.window=[-600,1500]", "slices=all")
    images = slices_of(read_volume(msd / "imagesTr" / "phantom_002.nii.gz"), window=(-600, 1500))
    png = cv2.imread(str(tmp_path / "w" / "train" / "images" / "phantom_002" / "7.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(png, images[7]) and not np.array_equal(png, slices_of(
        read_volume(msd / "imagesTr" / "phantom_002.nii.gz"))[7])


def test_nnunet_layout_gives_the_same_slices(msd, tmp_path):
    nnunet = write_nnunet_task(tmp_path / "Dataset099_Phantom", cases=3)
    assert json.loads((nnunet / "dataset.json").read_text())["file_ending"] == ".nii.gz"
    converted(msd, tmp_path / "a", "label=[1,2]")
    converted(nnunet, tmp_path / "b", "label=[1,2]")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_a_rerun_skips_finished_cases_and_redoes_a_half_written_one(msd, tmp_path):
    out = tmp_path / "data"
    converted(msd, out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert "0 case(s) converted" in converted(msd, out) and "3 case(s) already converted" in converted(msd, out)
    record = out / ".convert" / "phantom_002.json"
    state = json.loads(record.read_text())
    record.write_text(json.dumps({**state, "done": False}))  # as if stopped mid-case
    next((out / "train" / "masks" / "phantom_002").iterdir()).unlink()
    assert "1 case(s) converted" in converted(msd, out)
    assert len(find_pairs(out / "train")) == len(stamps) // 2
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if "phantom_002" not in str(p))


def test_other_settings_redo_the_cases_and_remove_their_old_slices(msd, tmp_path):
    out = tmp_path / "data"
    converted(msd, out, "slices=all")
    line = converted(msd, out, "val_cases=[phantom_001]")
    assert "3 case(s) converted (2 train, 1 val)" in line
    assert not (out / "train" / "images" / "phantom_001").exists()
    assert len(written(out, "train", "phantom_002")) < SIZE[2]
    assert len(find_pairs(out / "train")) + len(find_pairs(out / "val")) == len(list(out.rglob("*.png"))) // 2


def test_files_convert_did_not_write_are_kept_unless_overwrite(msd, tmp_path):
    out = tmp_path / "data"
    theirs = out / "train" / "images" / "phantom_001" / "0.png"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"someone else's")
    (out / "notes.txt").write_text("not in the way")
    line = refused(msd, out)
    assert str(theirs) in line and "overwrite=true" in line
    assert theirs.read_bytes() == b"someone else's" and not (out / "train" / "masks").exists()
    converted(msd, out, "overwrite=true")
    assert cv2.imread(str(theirs), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    assert (out / "notes.txt").is_file()


def test_output_inside_the_input_is_refused(msd):
    assert "inside the input" in refused(msd, msd / "slices")


@pytest.mark.parametrize("spoil, named", [
    (lambda t: (t / "dataset.json").write_text("{not json"), "dataset.json"),
    (lambda t: (t / "labelsTr" / "phantom_002.nii.gz").unlink(), "labelsTr/phantom_002.nii.gz"),
    (lambda t: (t / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "tumor"}})),
     "dataset.json"),
])
def test_a_broken_task_is_one_line_naming_the_file(task, tmp_path, spoil, named):
    spoil(task)
    assert named in refused(task, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_a_label_missing_from_dataset_json_is_refused(msd, tmp_path):
    line = refused(msd, tmp_path / "data", "label=3")
    assert "label=3" in line and "dataset.json" in line and "1 tumor" in line
    assert "background" in refused(msd, tmp_path / "data", "label=0")
    assert "slices=labeled+N" in refused(msd, tmp_path / "data", "slices=some")
    assert "val_cases" in refused(msd, tmp_path / "data", "val_cases=[lung_999]")


def test_a_label_on_another_grid_is_refused_naming_it(task, tmp_path):
    path = task / "labelsTr" / "phantom_003.nii.gz"
    label = read_volume(path)
    label.SetSpacing((0.7, 0.7, 5.0))
    write_volume(label, path)
    line = refused(task, tmp_path / "data")
    assert str(path) in line and "grid" in line
    assert not (tmp_path / "data").exists()


def test_convert_is_a_tumorseg_command(msd, tmp_path):
    result = run_main("tumorseg.cli", "convert", f"input={msd}", f"output={tmp_path / 'data'}", "slices=labeled")
    assert result.returncode == 0, result.stderr
    labels = label_slices(msd, "phantom_001")
    assert len(written(tmp_path / "data", "train", "phantom_001")) == int((labels == 1).any(axis=(1, 2)).sum())
    assert "3 case(s) converted" in result.stdout
