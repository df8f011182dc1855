"""Crashes, resumes, determinism, numerical faults and config faults."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO, TINY, phantom_overrides, run_cli, run_main
from tumorseg.train import train
from tumorseg.training.guards import NumericalFault
from tumorseg.training.losses import DiceBCELoss

# Long enough to be killed in the middle of an epoch; augment=all exercises seeded augmentation.
RESUMABLE = ["trainer.max_epochs=6", "trainer.limit_train_batches=6", "augment=all", "model.base_channels=8",
             "scheduler=cosine"]


class NaNLoss(DiceBCELoss):
    """Dice+BCE that returns NaN from the `after`-th training call on (a fault injected on purpose)."""

    def __init__(self, after: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.after, self.calls = after, 0

    def forward(self, logits, target):
        loss = super().forward(logits, target)
        if self.training:
            self.calls += 1
            if self.calls >= self.after:
                return loss * float("nan")
        return loss


def figures(metrics: dict) -> dict:
    """The metrics without the wall-clock time, which no seed repeats."""
    return {k: v for k, v in metrics.items() if k != "fit_minutes"}


def metrics_of(run):
    return figures(json.loads((run / "metrics.json").read_text()))


def test_same_seed_same_metrics_with_or_without_workers(tiny_cfg, tmp_path):
    first = train(tiny_cfg("augment=all", "trainer.max_epochs=2", out="a"))
    second = train(tiny_cfg("augment=all", "trainer.max_epochs=2", out="b"))
    workers = train(tiny_cfg("augment=all", "trainer.max_epochs=2", "data.num_workers=2", out="c"))
    assert metrics_of(tmp_path / "a") == metrics_of(tmp_path / "b") == metrics_of(tmp_path / "c")
    assert figures(first) == figures(second) == figures(workers)
    other = train(tiny_cfg("augment=all", "trainer.max_epochs=2", "seed=7", out="d"))
    assert figures(other) != figures(first)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(data_dir, tmp_path):
    args = [*TINY, *phantom_overrides(data_dir), *RESUMABLE]
    full = tmp_path / "uninterrupted"
    assert run_main("tumorseg.train", *args, f"hydra.run.dir={full}").returncode == 0
    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "tumorseg.train", *args, f"hydra.run.dir={run}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints/last.ckpt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if last.is_file() and torch.load(last, weights_only=True)["epoch"] >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # somewhere in epoch 2 or 3 of 6
    proc.wait()
    assert not (run / "metrics.json").exists(), "the run ended before it could be killed"
    killed_at = torch.load(last, weights_only=True)["epoch"]  # whatever the moment, last.ckpt is whole
    assert killed_at < 5
    resumed = run_cli("tumorseg.train", *args, f"resume={run}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics_of(run) == metrics_of(full)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) >= 2  # same TensorBoard run, continued


def test_resume_needs_a_finished_epoch(data_dir, tmp_path):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"resume={tmp_path / 'empty'}")
    assert result.returncode == 2 and "is not a run dir (no checkpoints/last.ckpt in it)" in result.stderr


def test_resume_at_a_data_folder_writes_nothing_into_it(data_dir, tmp_path):
    import shutil

    folder = tmp_path / "val"
    shutil.copytree(data_dir / "phantom/val", folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"resume={folder}")
    assert result.returncode == 2 and f"resume={folder} is not a run dir" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_nan_loss_stops_with_epoch_step_and_last_good_checkpoint(data_dir, tmp_path):
    run = tmp_path / "nan"
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "trainer.max_epochs=3",
                      "loss._target_=tests.test_reliability.NaNLoss", "+loss.after=4", f"hydra.run.dir={run}")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "became nan at epoch 1, step 3" in line
    assert str(run / "checkpoints") in line
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not (run / "metrics.json").exists()


def test_nan_guard_raises_a_numerical_fault(tiny_cfg):
    with pytest.raises(NumericalFault, match="epoch 0, step 0"):
        train(tiny_cfg("loss._target_=tests.test_reliability.NaNLoss", "+loss.after=1"))


def test_checkpoint_with_pickled_code_is_refused_for_resume(data_dir, tmp_path):
    from tests.test_commands import Evil

    evil = tmp_path / "evil.ckpt"
    torch.save({"payload": Evil()}, evil)
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"ckpt_path={evil}",
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "refused" in result.stderr and "pwned" not in result.stdout


@pytest.mark.parametrize(("override", "message"), [
    ("data.batch_size=abc", "data.batch_size='abc' must be an int > 0"),
    ("optimizer.lr=-1", "optimizer.lr=-1 must be a float > 0"),
    ("model.depth=0", "model.depth=0 must be an int >= 1"),
    ("model.flat_steps=-1", "model.flat_steps=-1 must be an int >= 0"),
    ("threshold=2", "threshold=2 must be a float between 0 and 1"),
])
def test_wrong_types_and_ranges_fail_before_training(data_dir, tmp_path, override, message):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), override, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_unwritable_output_dir_fails_before_training(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"hydra.run.dir={blocker / 'run'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"output dir {blocker / 'run'} cannot be written" in result.stderr


def test_unknown_option_is_refused_by_hydra_without_traceback(tmp_path):
    result = run_cli("tumorseg.train", "data=phantom", "model.base_chanels=8", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "model.base_chanels" in result.stderr


def files_of(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_resume_that_changes_the_net_is_refused_before_anything_is_written(trained_run, data_dir, tmp_path):
    import shutil

    run = tmp_path / "unfinished"
    shutil.copytree(trained_run, run)
    (run / "metrics.json").unlink()  # a run that stopped before its end
    before = files_of(run)
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "trainer.max_epochs=6",
                      "trainer.limit_train_batches=8", "trainer.limit_val_batches=1.0", "optimizer.lr=3e-3",
                      "model.base_channels=16", f"resume={run}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "was trained with model.base_channels=8, this command says model.base_channels=16" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert files_of(run) == before


def test_resuming_a_finished_run_says_so_and_changes_nothing(trained_run, data_dir, tmp_path):
    import shutil

    run = tmp_path / "finished"
    shutil.copytree(trained_run, run)
    before = files_of(run)
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"resume={run}")
    assert result.returncode == 0 and "is a finished run" in result.stdout, result.stderr[-1000:]
    assert files_of(run) == before


def test_ckpt_path_of_another_net_is_one_line(trained_run, data_dir, tmp_path):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "model.base_channels=16",
                      f"ckpt_path={trained_run / 'checkpoints/last.ckpt'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-800:]
    assert "holds a different net (model.base_channels=8 (this run: 16))" in result.stderr, result.stderr[-800:]
    assert len(result.stderr.strip().splitlines()) == 1
