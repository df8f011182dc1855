"""End-to-end runs on the phantom data: fits, overfit check, resume, sweeps, clear errors."""

import json

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import TINY, phantom_overrides, run_cli, run_main
from tumorseg.train import initial_weights, train

AUGMENTS = ["none", "flip", "rotate", "elastic", "all"]
KEYS = {"train/loss", "train/bce", "val/loss", "val/bce", "val/dice", "val/iou", "val/precision",
        "val/recall", "val/dice_best"}


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


def test_overfit_a_few_batches(tiny_cfg):
    """Dice rises well above 0 on the same few phantom batches: the whole loop learns."""
    metrics = train(tiny_cfg("debug=overfit", "model.base_channels=8", "trainer.max_epochs=60",
                             "optimizer.lr=3e-3", "scheduler=none"))
    assert metrics["train/dice"] > 0.7, metrics


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


def test_checkpoints_load_without_pickled_code(tiny_cfg, tmp_path):
    train(tiny_cfg())
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["run_config"]["model"]["base_channels"] == 4


def test_multirun_of_two_jobs(data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("tumorseg.train", "-m", "approach=split,full", *TINY, *phantom_overrides(data_dir),
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    for job, approach in (("0", "split"), ("1", "full")):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert ("test/dice" in metrics) == (approach == "split")
        assert f"approach={approach}" in (sweep / job / ".hydra/overrides.yaml").read_text()
    assert (sweep / "multirun.yaml").is_file()


def assert_clear_error(result, *fragments):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_data_root_is_one_clear_line(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_main("tumorseg.train", f"data.root={missing}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_clear_error(result, str(missing), "data.root=", "data=phantom")
    assert not (tmp_path / "run/checkpoints").exists()


def test_full_without_val_is_one_clear_line(data_dir, tmp_path):
    (tmp_path / "only_train").mkdir()
    (tmp_path / "only_train/train").symlink_to(data_dir / "phantom/train")
    result = run_main("tumorseg.train", "approach=full", f"data.root={tmp_path / 'only_train'}",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert_clear_error(result, "approach=full", "val", "approach=split")


def test_image_size_the_model_cannot_take_is_one_clear_line(data_dir, tmp_path):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "data.image_size=100",
                     "model.depth=3", f"hydra.run.dir={tmp_path / 'run'}")
    assert_clear_error(result, "data.image_size=100", "model.depth", "96 or 104")


def test_missing_checkpoint_is_one_clear_line(data_dir, tmp_path):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"ckpt_path={tmp_path / 'x.ckpt'}",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert_clear_error(result, "ckpt_path=", "last.ckpt")


def test_resume_after_the_last_epoch_still_reports_train_figures(tiny_cfg, tmp_path):
    first = train(tiny_cfg("trainer.max_epochs=2", out="done"))
    again = train(tiny_cfg("trainer.max_epochs=2", f"ckpt_path={tmp_path / 'done/checkpoints/last.ckpt'}",
                           out="again"))
    assert again["train/loss"] == first["train/loss"] and again["val/dice_best"] == first["val/dice_best"]


@pytest.mark.parametrize("choice", [("loss=focal_dice", "scheduler=poly"), ("loss=tversky", "scheduler=onecycle"),
                                    ("loss=bce", "data.tumor_share=0.9"), ("augment=all", "data.train_crop=32")])
def test_recipe_options_train(tiny_cfg, choice):
    metrics = train(tiny_cfg(*choice))
    assert metrics["train/loss"] == metrics["train/loss"]  # finite, not NaN


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
    assert_clear_error(result, "init_from=", "model.base_channels=8")  # the trained run's width
    assert not (tmp_path / "run/checkpoints").exists()
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"init_from={source}",
                     f"ckpt_path={source}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_clear_error(result, "init_from=", "ckpt_path=")
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), f"init_from={tmp_path / 'none.ckpt'}",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert_clear_error(result, f"init_from={tmp_path / 'none.ckpt'}", "reference")
