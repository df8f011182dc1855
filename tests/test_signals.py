"""Ctrl+C and SIGTERM end a command with one line (`interrupted: ...`), exit 130 and 143, and no temporary file."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, TINY, phantom_overrides
from tumorseg.volumes.phantom import write_msd_task, write_nifti

SIZE = (64, 64, 24)
SIGNALS = [(signal.SIGINT, 130, "Ctrl+C"), (signal.SIGTERM, 143, "SIGTERM")]


def default_sigint() -> None:
    """In the child: Ctrl+C's default disposition (a shell that starts a job in the background ignores SIGINT in it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stopped(args: list[str], out: Path, pattern: str, sig: signal.Signals) -> tuple[int, str]:
    """Start `python -m args`, send sig once a file matching pattern is written below out; (its status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (out.is_dir() and any(out.rglob(pattern))):
        time.sleep(0.01)
    assert proc.poll() is None, "the command ended before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def assert_one_line(status: int, err: str, command: str, wanted: int, why: str, out: Path) -> None:
    assert status == wanted, (status, err[-2000:])
    assert err.strip().splitlines() == [f"interrupted: {command} stopped ({why}); no partial file left"], err[-2000:]
    assert not [p for p in out.rglob(".*") if "tmp" in p.name], "a temporary file was left"


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Path:
    return write_msd_task(tmp_path_factory.mktemp("task") / "Task99_Phantom", cases=6, test_cases=0, size=SIZE)


@pytest.mark.parametrize("sig, status, why", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_convert_stopped_by_a_signal_says_so_in_one_line(sig, status, why, task, tmp_path):
    out = tmp_path / "slices"
    code, err = stopped(["tumorseg.convert", f"input={task}", f"output={out}", "slices=all"], out, "*.png", sig)
    assert_one_line(code, err, "convert", status, why, out)


@pytest.mark.slow
@pytest.mark.parametrize("sig, status, why", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_predict_stopped_by_a_signal_says_so_in_one_line(sig, status, why, tmp_path):
    volumes, out = tmp_path / "volumes", tmp_path / "out"
    for seed in range(4):
        write_nifti(volumes, f"case{seed}", seed=seed, size=(64, 64, 8))
    code, err = stopped(["tumorseg.predict", f"input={volumes}", f"output={out}", "viewer=false", "tta=false",
                         f"hydra.run.dir={tmp_path / 'run'}"], out, "*_mask.nii.gz", sig)
    assert_one_line(code, err, "predict", status, why, out)
    assert not (out / "summary.csv").exists()  # the run did not finish


@pytest.mark.trains
@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_leaves_interrupted_ckpt_and_a_non_zero_status(sig, status, data_dir, tmp_path):
    run = tmp_path / "run"
    args = [*TINY, *phantom_overrides(data_dir), "trainer.max_epochs=50", "trainer.limit_train_batches=6",
            "model.base_channels=8", f"hydra.run.dir={run}"]
    proc = subprocess.Popen([sys.executable, "-m", "tumorseg.train", *args], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)
    last, deadline = run / "checkpoints/last.ckpt", time.time() + 240
    while time.time() < deadline and proc.poll() is None and not last.is_file():
        time.sleep(0.05)
    assert proc.poll() is None, ("the run ended before the signal", proc.returncode, proc.communicate()[1][-3000:])
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, (proc.returncode, err[-2000:])
    assert (run / "checkpoints/interrupted.ckpt").is_file()
    assert torch.load(run / "checkpoints/interrupted.ckpt", weights_only=True)["state_dict"]
    assert "Traceback" not in err, err[-3000:]
    assert f"resume={run}" in out + err  # the way on, as the log says it
    assert not (run / "metrics.json").exists() or json.loads((run / "metrics.json").read_text())


def test_ctrl_c_while_a_command_loads_is_the_same_one_line():
    """`python -m tumorseg.train` stopped while its imports load (torch, then Lightning: seconds), before its main
    can catch Ctrl+C: the one line and status of a running command, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "tumorseg.train", "--help"], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.time() + 60
    while time.time() < deadline and proc.poll() is None and "libtorch_cpu" not in maps.read_text():
        time.sleep(0.005)  # torch's library mapped: Lightning, Hydra and the rest still to load
    assert proc.poll() is None, "the command ended before the signal"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert err.strip().splitlines() == ["interrupted: train stopped (Ctrl+C); no partial file left"], err[-2000:]
    assert "usage" not in out.lower()  # stopped before its main
