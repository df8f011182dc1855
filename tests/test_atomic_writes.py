"""Every file a command writes takes its name in one step (a hidden temporary file renamed into place), and no write
or removal passes a symbolic link below the output folder: an interrupt or a full disk leaves no part of a file,
overwrite=true replaces a file (never writes into it), and files outside the output stay byte-identical."""

import errno
import json
import os
import shutil
from pathlib import Path

import cv2
import pydicom
import pytest
import SimpleITK as sitk

from tests.conftest import assert_one_error, run_main
from tumorseg.files.output_files import is_temp
from tumorseg.volumes.io import read_volume
from tumorseg.volumes.phantom import write_dicom_series, write_msd_task, write_nifti
from tumorseg.writers import volume_outputs

SIZE = (64, 64, 16)
FAST = ["tta=false", "threshold=0.2"]  # the shipped model, one view: a few seconds on 64 x 64 x 16


def snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def files_in(root: Path) -> list[Path]:
    """Every file below root, not following links."""
    return [Path(folder) / name for folder, _, names in os.walk(root) for name in names]


def temps(root: Path) -> list[Path]:
    return [p for p in files_in(root) if is_temp(p)]


def predict(tmp: Path, source: Path, out: Path, *args: str):
    return run_main("tumorseg.predict", *FAST, f"input={source}", f"output={out}",
                    f"hydra.run.dir={tmp / 'log' / str(len(list(tmp.glob('log/*'))))}", *args)


def one_error(result) -> str:
    """The one `error:` line of a command that stopped with exit 2."""
    assert_one_error(result)
    return result.stderr.strip()


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    """The phantom CT as NIfTI (its label beside it in labels/, where predict leaves it)."""
    image, label = write_nifti(tmp_path_factory.mktemp("in"), "case", seed=0, size=SIZE)
    (image.parent / "labels").mkdir()
    label.rename(image.parent / "labels" / label.name)
    return image


def test_overwrite_replaces_a_hard_link_of_the_input_instead_of_writing_through_it(volume, tmp_path):
    volume = Path(shutil.copy(volume, tmp_path / volume.name))  # the others' input stays whatever happens here
    out, before = tmp_path / "out", volume.read_bytes()
    out.mkdir()
    os.link(volume, out / "case_mask.nii.gz")  # the CT scan under the mask's name
    result = predict(tmp_path, volume, out, "overwrite=true")
    assert result.returncode == 0, result.stderr[-2000:]
    assert volume.read_bytes() == before
    mask = read_volume(out / "case_mask.nii.gz")
    assert mask.GetPixelID() == sitk.sitkUInt8 and sitk.GetArrayFromImage(mask).max() <= 1


@pytest.mark.parametrize("link", ["overlays", "overlays/case", "viewer/case"])
def test_a_linked_folder_inside_the_output_is_refused_before_anything_is_written(volume, tmp_path, link):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    for k in range(SIZE[2]):  # what the overlays of every slice would replace, were the link followed
        for name in (f"case/{k}.png", f"{k}.png", f"{k}.pred.png"):
            (elsewhere / name).parent.mkdir(parents=True, exist_ok=True)
            (elsewhere / name).write_bytes(b"not predict's")
    (out / link).parent.mkdir(parents=True)
    (out / link).symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    line = one_error(predict(tmp_path, volume, out, "overwrite=true"))
    assert f"{out / link} is a symbolic link" in line
    assert snapshot(elsewhere) == before and not (out / "case_mask.nii.gz").exists()


def test_an_output_reached_through_a_link_is_the_users_choice(volume, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "scratch").symlink_to(tmp_path / "real", target_is_directory=True)  # as a cluster's /scratch
    result = predict(tmp_path, volume, tmp_path / "scratch" / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "real" / "out" / "case_mask.nii.gz").is_file()


def test_a_sigterm_during_the_mask_write_leaves_no_mask_and_the_rerun_goes_ahead(volume, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def killed(image, path):
        Path(path).write_bytes(b"")  # the writer had opened its file
        raise SystemExit(143)  # as the SIGTERM handler ends a command

    monkeypatch.setattr(volume_outputs, "write_volume", killed)
    assert predict(tmp_path, volume, out).returncode == 143
    assert not (out / "case_mask.nii.gz").exists() and not temps(out)
    monkeypatch.undo()
    again = predict(tmp_path, volume, out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert read_volume(out / "case_mask.nii.gz").GetSize() == SIZE


def test_ctrl_c_during_an_overlay_write_leaves_neither_the_overlay_nor_a_temporary_file(volume, tmp_path,
                                                                                       monkeypatch):
    out, real = tmp_path / "out", cv2.imwrite

    def interrupted(path, pixels):
        if "overlays" in str(Path(path).parent):
            Path(path).write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt
        return real(path, pixels)

    monkeypatch.setattr(cv2, "imwrite", interrupted)
    try:
        assert predict(tmp_path, volume, out).returncode == 130  # the command reports Ctrl+C
    except KeyboardInterrupt:
        pass  # or lets it through
    assert (out / "case_mask.nii.gz").is_file()
    assert not list((out / "overlays").rglob("*.png")) and not temps(out)


def test_a_full_disk_leaves_no_part_of_a_file_and_one_error_line(tmp_path, monkeypatch):
    series = write_dicom_series(tmp_path / "in" / "series", seed=0, size=SIZE, orientation="LPS")
    out = tmp_path / "out"

    def full_disk(self, path, *args, **kwargs):
        Path(path).write_bytes(b"\0" * 128 + b"DICM")  # the part that fitted
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def nothing_written(path, pixels):
        Path(path).write_bytes(b"")
        return False

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", full_disk)
    monkeypatch.setattr(cv2, "imwrite", nothing_written)
    line = one_error(predict(tmp_path, series, out))
    assert f"{out / 'series_seg.dcm'} could not be written (No space left on device)" in line
    assert not (out / "series_seg.dcm").exists() and not temps(out)
    assert all(p.stat().st_size > 0 for p in files_in(out))


@pytest.fixture(scope="module")
def msd(tmp_path_factory) -> Path:
    return write_msd_task(tmp_path_factory.mktemp("tasks") / "Task99_Phantom", cases=2)


@pytest.mark.parametrize("link", ["train", "train/images", "train/images/phantom_001", "train/masks/phantom_002",
                                  ".convert"])
def test_convert_overwrite_removes_and_writes_nothing_through_a_linked_folder(msd, tmp_path, link):
    out, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    for name in ("images/phantom_001/0.png", "masks/phantom_002/0.png", "phantom_001/0.png", "0.png", "mine.txt"):
        (elsewhere / name).parent.mkdir(parents=True, exist_ok=True)
        (elsewhere / name).write_bytes(b"not convert's")
    (out / link).parent.mkdir(parents=True)
    (out / link).symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    line = one_error(run_main("tumorseg.convert", f"input={msd}", f"output={out}", "overwrite=true"))
    assert f"{out / link} is a symbolic link" in line
    assert snapshot(elsewhere) == before and not [p for p in files_in(out) if p.suffix == ".png"]


def test_convert_reruns_past_a_killed_runs_temporary_file(msd, tmp_path):
    out = tmp_path / "data"
    first = run_main("tumorseg.convert", f"input={msd}", f"output={out}")
    assert first.returncode == 0, first.stderr[-2000:]
    record = out / ".convert" / "phantom_001.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "done": False}))  # killed mid-case
    (out / "train/images/phantom_001/.3.png.tmp-4242.png").write_bytes(b"\x89PNG half")
    again = run_main("tumorseg.convert", f"input={msd}", f"output={out}")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 case(s) converted" in again.stdout and not temps(out)


def test_evaluate_writes_nothing_through_a_linked_folder_in_its_run_dir(msd, tmp_path):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    (elsewhere / "phantom_001").mkdir(parents=True)
    (elsewhere / "phantom_001" / "0.png").write_bytes(b"not evaluate's")
    run.mkdir()
    (run / "viewer").symlink_to(elsewhere, target_is_directory=True)
    result = run_main("tumorseg.evaluate", *FAST, f"data_dir={msd}", f"hydra.run.dir={run}")
    assert f"{run / 'viewer'} is a symbolic link" in one_error(result)
    assert (elsewhere / "phantom_001" / "0.png").read_bytes() == b"not evaluate's"
    assert not (run / "metrics.json").exists()


def test_report_replaces_its_own_file_and_refuses_another_unless_told(tmp_path):
    """report.md is replaced when an earlier report wrote it; a file it did not write (here a hard link of another
    file) is refused, and with overwrite=true replaced by rename, never written through."""
    from tumorseg.report import MARK

    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"epochs": 1, "val/dice": 0.5}))
    precious = tmp_path / "precious.md"
    precious.write_text("mine")
    os.link(precious, run / "report.md")  # report.md goes into the folder common to the runs
    assert_one_error(run_main("tumorseg.report", f"runs={tmp_path / 'runs'}"),
                     "was not written by tumorseg report: choose another out=, or add overwrite=true")
    assert precious.read_text() == "mine" and (run / "report.md").read_text() == "mine"
    result = run_main("tumorseg.report", f"runs={tmp_path / 'runs'}", "overwrite=true")
    assert result.returncode == 0, result.stderr[-2000:]
    assert precious.read_text() == "mine" and (run / "report.md").read_text().startswith(MARK)
    (run / "metrics.json").write_text(json.dumps({"epochs": 2, "val/dice": 0.75}))
    result = run_main("tumorseg.report", f"runs={tmp_path / 'runs'}")  # its own file: replaced, no overwrite needed
    assert result.returncode == 0, result.stderr[-2000:]
    assert "0.7500" in (run / "report.md").read_text()


def test_every_file_of_a_run_is_whole_and_no_temporary_file_is_left(volume, tmp_path):
    out = tmp_path / "out"
    result = predict(tmp_path, volume, out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not temps(out) and all(p.stat().st_size > 0 for p in files_in(out))
    assert cv2.imread(str(next((out / "overlays").rglob("*.png")))).shape == (SIZE[1], SIZE[0], 3)
