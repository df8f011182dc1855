"""predict never destroys data: not into its input, not over files it did not write, not through a symlink,
and a failed write names the file. Every file that existed before a refused command is byte-identical after."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_main
from tumorseg.errors import UserError
from tumorseg.output_files import OutputFiles


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
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and f"output={output}" in result.stderr
    assert snapshot(tmp_path / "D") == before


def test_predict_keeps_files_it_did_not_write_unless_told(part, trained_run, tmp_path):
    out = tmp_path / "out"
    first = predict(trained_run, f"input={part}", f"output={out}", f"hydra.run.dir={tmp_path / 'log'}")
    assert first.returncode == 0, first.stderr[-1500:]
    before = snapshot(out)
    again = predict(trained_run, f"input={part}", f"output={out}", f"hydra.run.dir={tmp_path / 'log2'}")
    assert again.returncode == 2 and "exists and was not written by this run" in again.stderr
    assert "overwrite=true" in again.stderr and len(again.stderr.strip().splitlines()) == 1
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
    # a full disk: /dev/full takes the open and refuses every byte (claimed with overwrite=true, as it exists)
    full = OutputFiles(overwrite=True)
    full.claim([Path("/dev/full")])
    with pytest.raises(UserError, match="/dev/full could not be written"):
        full.text(Path("/dev/full"), "path,tumor_pixels\n")
    with pytest.raises(UserError, match="/dev/full could not be written"):
        full.image(Path("/dev/full"), np.zeros((4, 4), np.uint8))


def test_predict_output_that_is_a_file_is_one_line(part, trained_run, tmp_path):
    (tmp_path / "afile").write_text("mine")
    result = predict(trained_run, f"input={part}", f"output={tmp_path / 'afile'}", f"hydra.run.dir={tmp_path / 'l'}")
    assert result.returncode == 2 and "is a file" in result.stderr
    assert (tmp_path / "afile").read_text() == "mine"
