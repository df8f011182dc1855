"""The train command end to end: fits, overfit check, resume, determinism, DDP, sweeps and cross-validation, how a run
ends (strict metrics.json, refused before it starts), clear errors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import (
    REPO,
    TINY,
    assert_one_error,
    phantom_overrides,
    report,
    run_cli,
    run_main,
    train_run,
)
from tests.test_problems import phantom
from tests.test_problems import train as train_on
from tumorseg.inference.model_file import read
from tumorseg.train import initial_weights, train

AUGMENTS = ["none", "flip", "rotate", "elastic", "all"]
KEYS = {"train/loss", "train/bce", "val/loss", "val/bce", "val/dice", "val/iou", "val/precision",
        "val/recall", "val/dice_best"}


@pytest.mark.trains
@pytest.mark.parametrize("augment", AUGMENTS)
@pytest.mark.parametrize("approach", ["split", "full"])
def test_short_fit_writes_checkpoints_curves_and_metrics(tiny_cfg, tmp_path, approach, augment):
    metrics = train(tiny_cfg(f"approach={approach}", f"augment={augment}"))
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text()) == pytest.approx(metrics)
    assert KEYS <= set(metrics)
    test_keys = {k.replace("val/", "test/") for k in KEYS if k != "val/dice_best"}
    assert (test_keys <= set(metrics)) == (approach == "split")
    assert not any(k.startswith("test/") for k in metrics) or approach == "split"
    assert (run / "checkpoints/last.ckpt").is_file()
    assert list((run / "checkpoints").glob("epoch_*.ckpt"))
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert 0.0 <= metrics["val/dice"] <= 1.0


@pytest.mark.trains
def test_overfit_a_few_batches(tiny_cfg):
    """Dice rises well above 0 on the same few phantom batches: the whole loop learns."""
    metrics = train(tiny_cfg("debug=overfit", "model.base_channels=8", "trainer.max_epochs=60",
                             "optimizer.lr=3e-3", "scheduler=none"))
    assert metrics["train/dice"] > 0.7, metrics


@pytest.mark.trains
def test_resume_from_last_checkpoint(tiny_cfg, tmp_path):
    first = train(tiny_cfg("trainer.max_epochs=2", out="first"))
    last = tmp_path / "first/checkpoints/last.ckpt"
    assert first["epochs"] == 2
    resumed = train(tiny_cfg("trainer.max_epochs=3", f"ckpt_path={last}", out="resumed"))
    assert resumed["epochs"] == 3
    ckpt = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 3 * 2
    # The best Dice so far travels in the checkpoint, so resuming never forgets it.
    assert resumed["val/dice_best"] >= first["val/dice_best"]


@pytest.mark.trains
def test_checkpoints_load_without_pickled_code(tiny_cfg, tmp_path):
    train(tiny_cfg())
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["run_config"]["model"]["base_channels"] == 4


def test_missing_data_root_is_one_clear_line(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_main("tumorseg.train", f"data.root={missing}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, str(missing), "data.root=", "data=phantom")
    assert not (tmp_path / "run/checkpoints").exists()


def test_full_without_val_is_one_clear_line(data_dir, tmp_path):
    (tmp_path / "only_train").mkdir()
    (tmp_path / "only_train/train").symlink_to(data_dir / "phantom/train")
    result = run_main("tumorseg.train", "approach=full", f"data.root={tmp_path / 'only_train'}",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "approach=full", "val", "approach=split")


def test_image_size_the_model_cannot_take_is_one_clear_line(data_dir, tmp_path):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "data.image_size=100",
                     "model.depth=3", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "data.image_size=100", "model.depth", "96 or 104")


def test_missing_checkpoint_is_one_clear_line(data_dir, tmp_path):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"ckpt_path={tmp_path / 'x.ckpt'}",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "ckpt_path=", "last.ckpt")


@pytest.mark.trains
def test_resume_after_the_last_epoch_still_reports_train_figures(tiny_cfg, tmp_path):
    first = train(tiny_cfg("trainer.max_epochs=2", out="done"))
    again = train(tiny_cfg("trainer.max_epochs=2", f"ckpt_path={tmp_path / 'done/checkpoints/last.ckpt'}",
                           out="again"))
    assert again["train/loss"] == first["train/loss"] and again["val/dice_best"] == first["val/dice_best"]


@pytest.mark.trains
@pytest.mark.parametrize("choice", [("loss=focal_dice", "scheduler=poly"), ("loss=tversky", "scheduler=onecycle"),
                                    ("loss=bce", "data.tumor_share=0.9"), ("augment=all", "data.train_crop=32")])
def test_recipe_options_train(tiny_cfg, choice):
    metrics = train(tiny_cfg(*choice))
    assert metrics["train/loss"] == metrics["train/loss"]  # finite, not NaN


@pytest.mark.trains
@pytest.mark.slow
def test_compiled_training_matches_and_its_checkpoint_loads_uncompiled(tiny_cfg, tmp_path):
    """module.compile=true trains the same net (loss within float noise) and leaves plain state_dict keys."""
    from tumorseg.inference.model_file import read

    # one level: the C++ build of each generated kernel is most of the time, and a level adds a dozen
    small = ("trainer.deterministic=true", "model.depth=1", "trainer.limit_val_batches=1")
    plain = train(tiny_cfg(*small, out="plain"))
    compiled = train(tiny_cfg(*small, "module.compile=true", out="compiled"))
    assert compiled["train/loss"] == pytest.approx(plain["train/loss"], rel=1e-3)
    net = read(tmp_path / "compiled/checkpoints/last.ckpt").net()
    keys = set(torch.load(tmp_path / "compiled/checkpoints/last.ckpt", weights_only=True)["state_dict"])
    assert not any("_orig_mod" in k for k in keys) and net.training is False


def test_module_compile_compiles_the_net_in_place(tiny_cfg):
    from hydra.utils import instantiate

    for flag in (False, True):
        module = instantiate(tiny_cfg(f"module.compile={flag}").module)
        assert (module.net._compiled_call_impl is not None) == flag  # set by nn.Module.compile()


def test_compile_without_a_compiler_is_a_clear_error(tiny_cfg, tmp_path, monkeypatch):
    from tumorseg.errors import UserError

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UserError, match=r"module.compile=true needs a C\+\+ compiler.*module.compile=false"):
        train(tiny_cfg("module.compile=true"))
    assert not (tmp_path / "run/checkpoints").exists()


@pytest.mark.trains
def test_init_from_starts_a_new_schedule_from_the_weights(tiny_cfg, tmp_path):
    train(tiny_cfg("trainer.max_epochs=2", out="first"))
    source = tmp_path / "first/checkpoints/last.ckpt"
    cfg = tiny_cfg(f"init_from={source}", out="tuned")
    module = instantiate(cfg.module, _partial_=True)(run_config=OmegaConf.to_container(cfg, resolve=True))
    saved = {k.removeprefix("net."): v for k, v in torch.load(source, weights_only=True)["state_dict"].items()
             if k.startswith("net.")}
    assert not all(torch.equal(v, saved[k]) for k, v in module.net.state_dict().items())  # a fresh net differs
    module.net.load_state_dict(initial_weights(cfg))
    assert all(torch.equal(v, saved[k]) for k, v in module.net.state_dict().items())
    # The run itself: epochs and steps count from 0 again (a new schedule), unlike ckpt_path=.
    tuned = train(cfg)
    assert tuned["epochs"] == 1
    assert torch.load(tmp_path / "tuned/checkpoints/last.ckpt", weights_only=True)["global_step"] == 2


def test_init_from_a_different_net_is_one_clear_line(trained_run, data_dir, tmp_path):
    source = trained_run / "checkpoints/last.ckpt"
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"init_from={source}",
                     "model.base_channels=4", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "init_from=", "model.base_channels=8")  # the trained run's width
    assert not (tmp_path / "run/checkpoints").exists()
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"init_from={source}",
                     f"ckpt_path={source}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "init_from=", "ckpt_path=")
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"init_from={tmp_path / 'none.ckpt'}",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, f"init_from={tmp_path / 'none.ckpt'}", "reference")


@pytest.mark.trains
def test_training_above_the_native_size_upsamples_and_evaluates_at_the_files_size(data_dir, tmp_path):
    run, metrics = train_run(data_dir, tmp_path, "data.image_size=128")  # phantom slices: 64x64
    assert metrics["val/dice"] is not None
    model = read(run / "checkpoints" / "last.ckpt")
    assert model.preprocessing.image_size == 128
    result = run_main("tumorseg.evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                      f"data_dir={data_dir / 'phantom' / 'val'}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr[-2000:]
    scored = json.loads(result.stdout.strip().splitlines()[-1])
    assert scored["n_images"] == len(list((data_dir / "phantom" / "val" / "images").rglob("*.png")))


# Long enough to be killed in the middle of an epoch; augment=all exercises seeded augmentation.
RESUMABLE = ["trainer.max_epochs=6", "trainer.limit_train_batches=6", "augment=all", "model.base_channels=8",
             "scheduler=cosine"]


def figures(metrics: dict) -> dict:
    """The metrics without the wall-clock time, which no seed repeats."""
    return {k: v for k, v in metrics.items() if k != "fit_minutes"}


def metrics_of(run):
    return figures(json.loads((run / "metrics.json").read_text()))


@pytest.mark.trains
def test_same_seed_same_metrics_with_or_without_workers(tiny_cfg, tmp_path):
    first = train(tiny_cfg("augment=all", "trainer.max_epochs=2", out="a"))
    second = train(tiny_cfg("augment=all", "trainer.max_epochs=2", out="b"))
    workers = train(tiny_cfg("augment=all", "trainer.max_epochs=2", "data.num_workers=2", out="c"))
    assert metrics_of(tmp_path / "a") == metrics_of(tmp_path / "b") == metrics_of(tmp_path / "c")
    assert figures(first) == figures(second) == figures(workers)
    other = train(tiny_cfg("augment=all", "trainer.max_epochs=2", "seed=7", out="d"))
    assert figures(other) != figures(first)


@pytest.mark.trains
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
    assert_one_error(result, "is not a run dir (no checkpoints/last.ckpt in it)")


def test_resume_at_a_data_folder_writes_nothing_into_it(data_dir, tmp_path):
    import shutil

    folder = tmp_path / "val"
    shutil.copytree(data_dir / "phantom/val", folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"resume={folder}")
    assert_one_error(result, f"resume={folder} is not a run dir")
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_checkpoint_with_pickled_code_is_refused_for_resume(data_dir, tmp_path):
    from tests.test_commands import Evil

    evil = tmp_path / "evil.ckpt"
    torch.save({"payload": Evil()}, evil)
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"ckpt_path={evil}",
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "refused")
    assert "pwned" not in result.stdout


@pytest.mark.parametrize(("override", "message"), [
    ("data.batch_size=abc", "data.batch_size='abc' must be an int > 0"),
    ("optimizer.lr=-1", "optimizer.lr=-1 must be a float > 0"),
    ("model.depth=0", "model.depth=0 must be an int >= 1"),
    ("model.flat_steps=-1", "model.flat_steps=-1 must be an int >= 0"),
    ("threshold=2", "threshold=2 must be a float between 0 and 1"),
])
def test_wrong_types_and_ranges_fail_before_training(data_dir, tmp_path, override, message):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), override, f"hydra.run.dir={tmp_path}")
    assert_one_error(result, message)
    assert not (tmp_path / "checkpoints").exists()


def test_unwritable_output_dir_fails_before_training(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"hydra.run.dir={blocker / 'run'}")
    assert_one_error(result, f"output dir {blocker / 'run'} cannot be written")


def test_unknown_option_is_refused_by_hydra_without_traceback(tmp_path):
    result = run_main("tumorseg.train", "data=phantom", "model.base_chanels=8", f"hydra.run.dir={tmp_path}")
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
    assert_one_error(result, "was trained with model.base_channels=8, this command says model.base_channels=16")
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
    assert_one_error(result, "holds a different net (model.base_channels=8 (this run: 16))")


def test_a_run_that_cannot_train_is_refused_before_it_starts(tmp_path):
    from tests.conftest import run_main
    from tumorseg.data.phantom import generate_phantom

    generate_phantom(tmp_path / "three", train_subjects=3, val_subjects=0, slices=1, size=64, seed=0)
    result = run_main("tumorseg.train", f"data.root={tmp_path / 'three'}", "data.image_size=64", "model.depth=2",
                      "data.num_workers=0", "callbacks.progress_bar=null", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "nothing to train on")
    assert not (tmp_path / "run/metrics.json").exists() and not (tmp_path / "run/checkpoints").exists()


def test_metrics_json_is_strict_json():
    import json

    from tumorseg.train import strict_json

    text = strict_json({"val/dice_best": float("-inf"), "val/dice": float("nan"), "epochs": 3, "test/dice": 0.5})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == {
        "val/dice_best": None, "val/dice": None, "epochs": 3, "test/dice": 0.5}


LEARNS = ["model.base_channels=8", "trainer.max_epochs=3", "trainer.limit_train_batches=6", "optimizer.lr=3e-3"]


@pytest.mark.trains
def test_ddp_on_cpu_gives_one_run_dir_and_whole_split_metrics(data_dir, tmp_path):
    from tumorseg.evaluate import evaluate

    logs = tmp_path / "outputs"
    run = logs / "ddp"
    result = run_cli("tumorseg.train", "trainer=ddp_cpu", *TINY, *phantom_overrides(data_dir), *LEARNS,
                     f"paths.log_dir={logs}", f"hydra.run.dir={run}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in logs.iterdir()] == ["ddp"]  # no second Hydra output dir from rank 1
    assert (run / ".hydra/config.yaml").is_file() and (run / "checkpoints/last.ckpt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    best = next((run / "checkpoints").glob("epoch_*.ckpt"))
    cfg = OmegaConf.create(dict(ckpt_path=str(best), data_dir=str(data_dir / "phantom/val"), split=None,
                                threshold=0.5, tta=False, postprocess={"min_size": 0}, batch_size=4,
                                paths={"output_dir": str(tmp_path / "eval")}))
    single = evaluate(cfg)
    # Synced torchmetrics states over the whole split, no item counted twice: the same figures.
    for key in ("dice", "iou", "dice_per_subject", "precision", "recall"):
        assert metrics[f"val/{key}"] == pytest.approx(single[key], abs=1e-6), key
    assert single["n_images"] == 16


@pytest.mark.trains
def test_two_trial_optuna_sweep(data_dir, tmp_path):
    sweep = tmp_path / "optuna"
    tiny = [o for o in TINY if not o.startswith("model.base_channels")]  # a value set here is not searched
    result = run_main("tumorseg.train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
                      "hydra.sweeper.sampler.n_startup_trials=1", *tiny, *phantom_overrides(data_dir),
                      f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert "best_value" in best and set(best["best_params"]) >= {"optimizer.lr", "model.base_channels"}
    assert len(list(sweep.glob("*/metrics.json"))) == 2


@pytest.mark.trains
def test_parallel_joblib_sweep_and_its_report(data_dir, tmp_path):
    sweep = tmp_path / "joblib"
    result = run_main("tumorseg.train", "-m", "hydra/launcher=parallel", "approach=split,full", *TINY,
                      *phantom_overrides(data_dir), f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    # a sweep's jobs (Hydra's basic launcher: test_two_fold_cross_validation_with_report): one run dir each
    for job, approach in (("0", "split"), ("1", "full")):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert ("test/dice" in metrics) == (approach == "split")
        assert f"approach={approach}" in (sweep / job / ".hydra/overrides.yaml").read_text()
    assert (sweep / "multirun.yaml").is_file()
    table = report([sweep])
    assert table.count("\n") == 4 and "| 0 | split" in table and "| 1 | full" in table


@pytest.mark.trains
@pytest.mark.slow
def test_submitit_local_sweep(data_dir, tmp_path):
    sweep = tmp_path / "submitit"
    # one job: what is submitit's own is the job run through its executor and its pickled result (two jobs of a
    # sweep: the joblib and CV sweep tests)
    result = run_main("tumorseg.train", "-m", "hydra/launcher=local", "approach=split", *TINY,
                      *phantom_overrides(data_dir), f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(sweep.glob("*/metrics.json"))) == 1
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))


@pytest.mark.trains
def test_two_fold_cross_validation_with_report(data_dir, tmp_path):
    sweep = tmp_path / "cv"
    result = run_main("tumorseg.train", "-m", "approach=cv", "approach.k=2", "approach.fold=0,1", *TINY,
                      *phantom_overrides(data_dir), f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    table = report([sweep]).strip().splitlines()
    assert "(fold 0/2)" in table[2] and "(fold 1/2)" in table[3]
    assert table[4].startswith("| mean ± std over 2 folds | cv") and "±" in table[4].split("|")[8]


@pytest.mark.trains
def test_a_run_without_a_logger_trains(tmp_path):
    root = phantom(tmp_path / "d")
    result = train_on(root, tmp_path, "logger=none")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run/metrics.json").is_file()
