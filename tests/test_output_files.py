"""predict never destroys data: not into its input, not over files it did not write, not through a symlink below
its output, and a failed write names the file and leaves no part of one. Every file that existed before a refused
command is byte-identical after."""

import errno
import functools
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from tests.conftest import assert_one_error, run_main
from tumorseg.errors import UserError
from tumorseg.files.output_files import OutputFiles, is_temp, temp_path
from tumorseg.writers.volume_outputs import VolumeFiles


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture
def part(data_dir, tmp_path):
    """A copy of the phantom val part (images/ and masks/) in tmp_path/D/val."""
    dest = tmp_path / "D/val"
    shutil.copytree(data_dir / "phantom/val", dest)
    return dest


def predict(trained_run, *args):
    return run_main("tumorseg.predict", f"ckpt_path={trained_run / 'checkpoints/last.ckpt'}", *args)


@pytest.mark.parametrize("where", ["the input", "inside the input", "holding the input"])
def test_predict_refuses_an_output_that_overlaps_its_input(where, part, trained_run, tmp_path):
    output = {"the input": part, "inside the input": part / "masks", "holding the input": tmp_path / "D"}[where]
    before = snapshot(tmp_path / "D")
    result = predict(trained_run, f"input={part}", f"output={output}", f"hydra.run.dir={tmp_path / 'log'}")
    assert_one_error(result, f"output={output}")
    assert snapshot(tmp_path / "D") == before


def test_predict_keeps_files_it_did_not_write_unless_told(part, trained_run, tmp_path):
    out = tmp_path / "out"
    first = predict(trained_run, f"input={part}", f"output={out}", f"hydra.run.dir={tmp_path / 'log'}")
    assert first.returncode == 0, first.stderr[-1500:]
    before = snapshot(out)
    again = predict(trained_run, f"input={part}", f"output={out}", f"hydra.run.dir={tmp_path / 'log2'}")
    assert_one_error(again, "exists and was not written by this run", "overwrite=true")
    assert snapshot(out) == before
    told = predict(trained_run, f"input={part}", f"output={out}", "overwrite=true",
                   f"hydra.run.dir={tmp_path / 'log3'}")
    assert told.returncode == 0, told.stderr[-1500:]


def test_predict_does_not_write_through_a_symlink(part, trained_run, tmp_path):
    out, precious = tmp_path / "out", tmp_path / "precious.png"
    precious.write_bytes(b"not to be replaced")
    first_image = sorted((part / "images").rglob("*.png"))[0].relative_to(part / "images")
    (out / "masks" / first_image).parent.mkdir(parents=True)
    (out / "masks" / first_image).symlink_to(precious)
    result = predict(trained_run, f"input={part}", f"output={out}", "overwrite=true", f"hydra.run.dir={tmp_path / 'l'}")
    assert result.returncode == 2 and "is a symbolic link" in result.stderr
    assert precious.read_bytes() == b"not to be replaced"


def test_a_failed_write_is_an_error_naming_the_file(part, trained_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").symlink_to("/dev/full")  # refused as a link before any write
    result = predict(trained_run, f"input={part}", f"output={out}", f"hydra.run.dir={tmp_path / 'l'}")
    assert result.returncode == 2 and f"{out / 'summary.csv'} is a symbolic link" in result.stderr


def full_disk(path, *args, **kwargs):
    """A writer on a full disk: part of the file, then ENOSPC."""
    Path(path).write_bytes(b"the part that fitted")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("kind", ["text", "image", "volume"])
def test_a_full_disk_leaves_the_old_file_whole_and_no_temporary_file(tmp_path, monkeypatch, kind):
    path = tmp_path / {"text": "summary.csv", "image": "0.png", "volume": "case_mask.nii.gz"}[kind]
    path.write_bytes(b"the old file")
    files = VolumeFiles(tmp_path, overwrite=True)
    files.claim([path])
    if kind == "text":
        monkeypatch.setattr("tumorseg.files.output_files.open", lambda p, *a, **k: full_disk(p), raising=False)
        write = functools.partial(files.text, path, "path,tumor_pixels\n")
    elif kind == "image":
        monkeypatch.setattr(cv2, "imwrite", full_disk)
        write = functools.partial(files.image, path, np.zeros((4, 4), np.uint8))
    else:
        def itk_full_disk(image, path, *args, **kwargs):  # as SimpleITK fails: a RuntimeError
            Path(path).write_bytes(b"the part that fitted")
            raise RuntimeError("ImageIO: No space left on device")

        monkeypatch.setattr(sitk, "WriteImage", itk_full_disk)
        write = functools.partial(files.volume, path, sitk.Image(4, 4, 4, sitk.sitkUInt8))
    with pytest.raises(UserError, match=f"^{path} could not be written"):
        write()
    assert path.read_bytes() == b"the old file" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_write_that_leaves_an_empty_file_is_refused(tmp_path, monkeypatch):
    files = OutputFiles(tmp_path)
    files.claim([tmp_path / "0.png"])
    monkeypatch.setattr(cv2, "imwrite", lambda path, pixels: Path(path).write_bytes(b"") == 0)  # "written"
    with pytest.raises(UserError, match="0.png could not be written"):
        files.image(tmp_path / "0.png", np.zeros((4, 4), np.uint8))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("link", ["overlays", "overlays/case", "overlays/case/3.png"])
def test_a_link_at_any_depth_below_the_output_is_refused_at_the_claim(tmp_path, link):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / link).parent.mkdir(parents=True)
    (out / link).symlink_to(elsewhere)
    with pytest.raises(UserError, match=f"^{out / link} is a symbolic link"):
        OutputFiles(out, overwrite=True).claim([out / "case_mask.nii.gz", out / "overlays/case/3.png"])


def test_the_output_may_be_reached_through_a_link_and_files_take_their_names_in_one_step(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "scratch").symlink_to(tmp_path / "real")
    out = tmp_path / "scratch" / "out"
    files = OutputFiles(out)
    files.claim([out / "a/b/summary.csv", out / "masks/0.png"])
    files.text(out / "a/b/summary.csv", "x\n")
    files.image(out / "masks/0.png", np.zeros((4, 4), np.uint8))
    assert (tmp_path / "real/out/a/b/summary.csv").read_text() == "x\n"
    assert sorted(p.name for p in (tmp_path / "real/out").rglob("*")) == ["0.png", "a", "b", "masks", "summary.csv"]
    (out / "a").rename(out / "c")
    (out / "a").symlink_to(out / "c")  # a link that appeared after the claim
    with pytest.raises(UserError, match="is a symbolic link"):
        files.text(out / "a/b/summary.csv", "y\n")
    assert (out / "c/b/summary.csv").read_text() == "x\n"


def test_a_file_where_a_folder_goes_is_refused_at_the_claim(tmp_path):
    (tmp_path / "overlays").write_text("mine")
    with pytest.raises(UserError, match="overlays is a file where a folder goes"):
        OutputFiles(tmp_path).claim([tmp_path / "overlays/case/0.png"])


def test_temporary_names_are_hidden_and_keep_the_format_suffix():
    assert temp_path(Path("o/case_mask.nii.gz")).name == f".case_mask.nii.gz.tmp-{os.getpid()}.nii.gz"
    assert temp_path(Path("o/3.pred.png")).name == f".3.pred.png.tmp-{os.getpid()}.png"
    assert is_temp(temp_path(Path("o/seg.dcm"))) and not is_temp(Path("o/seg.dcm"))
    assert not is_temp(Path(".hidden.png"))


def test_predict_output_that_is_a_file_is_one_line(part, trained_run, tmp_path):
    (tmp_path / "afile").write_text("mine")
    result = predict(trained_run, f"input={part}", f"output={tmp_path / 'afile'}", f"hydra.run.dir={tmp_path / 'l'}")
    assert result.returncode == 2 and "is a file" in result.stderr
    assert (tmp_path / "afile").read_text() == "mine"
