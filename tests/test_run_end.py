"""A run ends as it should: interrupted (interrupted.ckpt; exit 143 or 130), impossible (refused first),
finished (strict JSON)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO, TINY, phantom_overrides


def default_sigint() -> None:
    """In the child: Ctrl+C's default disposition (a shell that starts a job in the background ignores SIGINT in it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, (proc.returncode, err[-2000:])
    assert (run / "checkpoints/interrupted.ckpt").is_file()
    assert torch.load(run / "checkpoints/interrupted.ckpt", weights_only=True)["state_dict"]
    assert "Traceback" not in err, err[-3000:]
    assert f"resume={run}" in out + err  # the way on, as the log says it
    assert not (run / "metrics.json").exists() or json.loads((run / "metrics.json").read_text())


def test_a_run_that_cannot_train_is_refused_before_it_starts(tmp_path):
    from tests.conftest import run_main
    from tumorseg.data.phantom import generate_phantom

    generate_phantom(tmp_path / "three", train_subjects=3, val_subjects=0, slices=1, size=64, seed=0)
    result = run_main("tumorseg.train", f"data.root={tmp_path / 'three'}", "data.image_size=64", "model.depth=2",
                      "data.num_workers=0", "callbacks.progress_bar=null", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "nothing to train on" in result.stderr, result.stderr[-1500:]
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run/metrics.json").exists() and not (tmp_path / "run/checkpoints").exists()


def test_metrics_json_is_strict_json():
    import json

    from tumorseg.train import strict_json

    text = strict_json({"val/dice_best": float("-inf"), "val/dice": float("nan"), "epochs": 3, "test/dice": 0.5})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == {
        "val/dice_best": None, "val/dice": None, "epochs": 3, "test/dice": 0.5}
