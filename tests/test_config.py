"""Every option of every config group composes, and the objects it names can be built."""

import re

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF, REPO, make_cfg

GROUPS = ["data", "model", "approach", "augment", "loss", "optimizer", "scheduler", "callbacks", "logger",
          "trainer", "paths", "experiment", "debug"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def test_every_documented_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes(tmp_path, group, option):
    # a net that mixes a stack of slices composes with the 2.5D input it needs
    needs = ["data.context_slices=1"] if (group, option) == ("model", "stack_unet") else []
    cfg = make_cfg([f"{group}={option}", *needs], tmp_path)
    if group in ("model", "loss", "augment"):
        instantiate(cfg[group])
    if group == "optimizer":
        instantiate(cfg.optimizer)(params=instantiate(cfg.model).parameters())
    if group in ("callbacks", "logger"):
        [instantiate(node) for node in (cfg[group] or {}).values() if node]


def test_defaults_are_the_documented_ones():
    cfg = make_cfg([])
    assert cfg.data.root.endswith("lung-ct-slices") and cfg.data.image_size == 256
    assert cfg.model.base_channels == 16 and cfg.model.norm == "batch"
    assert cfg.approach.name == "split" and cfg.approach.group_by == "subject"
    assert cfg.approach.random_state == 42
    assert cfg.optimized_metric == "val/dice_best"
    assert cfg.callbacks.model_checkpoint.monitor == "val/dice"


def test_data_root_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TUMORSEG_DATA", "/somewhere/lung")
    assert make_cfg([]).data.root == "/somewhere/lung"
    assert make_cfg(["data.root=/elsewhere"]).data.root == "/elsewhere"


@pytest.mark.parametrize("experiment", ["seed_split", "seed_full"])
def test_original_study_experiments(experiment):
    cfg = make_cfg([f"experiment={experiment}"])
    assert cfg.model.base_channels == 64 and cfg.model.norm == "none" and cfg.model.up == "transpose"
    assert cfg.loss._target_ == "torch.nn.BCEWithLogitsLoss"
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-3
    assert cfg.data.batch_size == 32 and not cfg.augment and not cfg.scheduler
    assert cfg.approach.name == experiment.removeprefix("seed_")
    if experiment == "seed_split":
        assert cfg.approach.group_by is None


def test_lung_reference_experiment_is_the_shipped_models_recipe(tmp_path):
    import torch

    from tumorseg.model_file import REFERENCE_MODEL

    shipped = torch.load(REFERENCE_MODEL, weights_only=True)["hyper_parameters"]["run_config"]
    shipped["model"].setdefault("flat_steps", 0)  # an option added after it was trained, at its value then
    cfg = OmegaConf.to_container(make_cfg(["experiment=lung_reference"], tmp_path), resolve=True)
    for group in ("approach", "augment", "loss", "scheduler", "optimizer", "model"):
        assert cfg[group] == shipped[group], group
    assert cfg["trainer"]["max_epochs"] == shipped["trainer"]["max_epochs"] == 16
    assert (cfg["data"]["batch_size"], cfg["data"]["context_slices"], cfg["seed"]) == (
        shipped["data"]["batch_size"], shipped["data"]["context_slices"], shipped["seed"])


def test_lung_finetune_is_the_reference_recipe_from_the_shipped_weights(tmp_path):
    def flat(cfg, prefix=""):
        for key, value in cfg.items():
            yield from flat(value, f"{prefix}{key}.") if isinstance(value, dict) else [(f"{prefix}{key}", value)]

    reference = dict(flat(OmegaConf.to_container(make_cfg(["experiment=lung_reference"], tmp_path), resolve=True)))
    tuned = dict(flat(OmegaConf.to_container(make_cfg(["experiment=lung_finetune"], tmp_path), resolve=True)))
    changed = {k: tuned[k] for k in tuned if tuned[k] != reference.get(k)}
    # Five choices; the rest of the list are copies that the config interpolates from them.
    assert changed == {"init_from": "reference", "seed": 43, "optimizer.lr": 3e-4, "trainer.max_epochs": 4,
                       "task_name": "lung_finetune", "scheduler.max_lr": 3e-4, "data.seed": 43, "module.seed": 43,
                       "module.optimizer.lr": 3e-4, "module.scheduler.max_lr": 3e-4}


def test_overrides_that_tests_and_benchmarks_rely_on(tmp_path):
    keys = {
        "data.root": "/x", "data.image_size": 64, "data.batch_size": 3, "data.num_workers": 1,
        "model.base_channels": 8, "model.depth": 3, "trainer.max_epochs": 2,
        "trainer.limit_train_batches": 5, "trainer.limit_val_batches": 4, "seed": 7,
        "paths.data_dir": str(tmp_path),
    }
    cfg = make_cfg([f"{k}={v}" for k, v in keys.items()])
    for key, value in keys.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == value


def test_runs_and_sweeps_go_under_outputs():
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="tumorseg.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.root_dir={REPO}"], return_hydra_config=True)
    stamp = r"\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-\d{6}"  # microseconds: two launches in a second differ
    assert re.fullmatch(f"{REPO}/outputs/{stamp}", cfg.hydra.run.dir)
    assert re.fullmatch(f"{REPO}/outputs/multirun/{stamp}", cfg.hydra.sweep.dir)
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "${hydra.job.num}"
