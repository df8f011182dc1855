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
    shipped = shipped_run_config()
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


def numeric_leaves(cfg) -> dict:
    """{dotted key: value} of every number (or list holding numbers) a config sets, bools aside; interpolations
    (a copy of another key) left out."""
    from tumorseg.settings.run_dir import leaves

    def numeric(v):
        return (isinstance(v, (int, float)) and not isinstance(v, bool)) or (
            isinstance(v, list) and any(numeric(x) for x in v))

    plain = OmegaConf.to_container(cfg, resolve=False)
    return {k: v for k, v in leaves(plain).items() if numeric(v)}


# Numbers that are not the commands' options: Hydra's own, and albumentations' transforms (it checks their values);
# augment_ranges.* are checked where they go: albumentations' transforms and module.device_augment.*'s rules.
NOT_OPTIONS = ("hydra.", "augment.transforms", "augment_ranges.")
COMMAND_CONFIGS = ["bench", "check", "compare", "convert", "evaluate", "export", "fetch",
                   "predict", "report", "serve", "ship", "train"]


def test_every_numeric_option_of_every_command_has_a_rule(tmp_path):
    from hydra import compose, initialize_config_module

    from tumorseg.cli import COMMANDS
    from tumorseg.settings.rules import RULES, check_config

    assert sorted(COMMAND_CONFIGS) == sorted(COMMANDS)
    configs = []
    with initialize_config_module(config_module="tumorseg.conf", version_base="1.3"):
        # paths.root_dir pinned where a config has it (data.root, a checked path, is under it)
        configs += [compose(name, overrides=[f"paths.root_dir={REPO}"] if "paths: default" in
                            (CONF / f"{name}.yaml").read_text() else []) for name in COMMAND_CONFIGS]
    configs += [make_cfg([f"{group}={option}"], tmp_path) for group, option in OPTIONS]
    found = {}
    for cfg in configs:
        check_config(cfg)  # every shipped default passes its rules
        found.update(numeric_leaves(cfg))
    unruled = sorted(k for k in found if not k.startswith(NOT_OPTIONS) and k not in RULES)
    # max_extract_bytes: fetch's own check (it takes 1e9 too)
    assert unruled == ["max_extract_bytes"], unruled


def test_every_command_checks_its_config_in_its_main():
    """Every command's main runs through exit_on_user_error, which checks the composed config (check_config)."""
    import ast

    from tumorseg.cli import COMMANDS

    for module in COMMANDS.values():
        tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text())
        main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
        assert "exit_on_user_error" in [ast.unparse(d) for d in main.decorator_list], module


def shipped_run_config() -> dict:
    import torch

    from tumorseg.inference.model_file import REFERENCE_MODEL

    shipped = torch.load(REFERENCE_MODEL, weights_only=True)["hyper_parameters"]["run_config"]
    shipped["model"].setdefault("flat_steps", 0)  # an option added after it was trained, at its value then
    return today_targets(shipped)


def today_targets(node):
    """A recorded config with its class paths (_target_) as today's code names them (settings.run_dir.today)."""
    from tumorseg.settings.run_dir import today

    if isinstance(node, dict):
        return {k: today_targets(v) for k, v in node.items()}
    if isinstance(node, list):
        return [today_targets(v) for v in node]
    return today(node)


def test_train_defaults_are_the_shipped_recipe(tmp_path):
    """`tumorseg train approach=full`, no experiment: the shipped model's loss, augmentation, schedule, batch,
    epochs (approach stays the user's: split by default)."""
    shipped = shipped_run_config()
    assert make_cfg([], tmp_path).approach.name == "split"
    cfg = OmegaConf.to_container(make_cfg(["approach=full"], tmp_path), resolve=True)
    for group in ("approach", "augment", "loss", "scheduler", "optimizer", "model"):
        assert cfg[group] == shipped[group], group
    assert (cfg["loss"]["alpha"], cfg["loss"]["beta"]) == (0.2, 0.8)
    assert cfg["scheduler"]["_target_"] == "torch.optim.lr_scheduler.OneCycleLR"
    assert len(cfg["augment"]["transforms"]) == 4
    assert cfg["trainer"]["max_epochs"] == shipped["trainer"]["max_epochs"] == 16
    assert cfg["data"]["batch_size"] == shipped["data"]["batch_size"] == 16
    assert (cfg["data"]["context_slices"], cfg["seed"]) == (shipped["data"]["context_slices"], shipped["seed"])


def test_lung_reference_is_the_defaults_with_approach_full(tmp_path):
    defaults = OmegaConf.to_container(make_cfg(["approach=full"], tmp_path), resolve=True)
    reference = OmegaConf.to_container(make_cfg(["experiment=lung_reference"], tmp_path), resolve=True)
    assert reference.pop("task_name") == "lung_reference" and defaults.pop("task_name") == "train"
    assert reference == defaults


def test_evaluate_and_predict_share_one_inference_block():
    """The options of the model and how it runs are said once (conf/inference/default.yaml): both commands
    compose them at the top of their config, and neither file states one of them itself."""
    import yaml
    from hydra import compose, initialize_config_module

    shared = yaml.safe_load((CONF / "inference/default.yaml").read_text())
    assert {"ckpt_path", "threshold", "tta", "precision", "device", "runtime", "postprocess", "batch_size",
            "max_pixels", "max_voxels", "preprocess", "viewer"} <= set(shared)
    with initialize_config_module(config_module="tumorseg.conf", version_base="1.3"):
        composed = {name: OmegaConf.to_container(compose(name, overrides=[f"paths.root_dir={REPO}"]))
                    for name in ("evaluate", "predict")}
    for name, cfg in composed.items():
        assert {key: cfg[key] for key in shared} == shared, name
        own = yaml.safe_load((CONF / f"{name}.yaml").read_text())
        assert {"inference": "default"} in own["defaults"], name
        assert not set(own) & set(shared), name


def test_augment_ranges_are_said_once(tmp_path):
    """augment=rotate, elastic, flip, all (albumentations) and device_all read their probabilities and ranges from
    augment_ranges; the files state no number of their own."""
    import yaml

    for option in ("flip", "rotate", "elastic", "all", "device_all"):
        text = (CONF / f"augment/{option}.yaml").read_text()
        numbers = [line for line in text.splitlines() if re.search(r"^\s+(p|rotate|scale|translate\w*|alpha|sigma|"
                                                                   r"\w+_limit|\w+_p|brightness|contrast): [-\d\[]",
                                                                   line)]
        assert numbers == [], (option, numbers)
    ranges = yaml.safe_load((CONF / "augment_ranges/default.yaml").read_text())
    cpu = OmegaConf.to_container(make_cfg(["augment=all"], tmp_path).augment, resolve=True)["transforms"]
    device = OmegaConf.to_container(make_cfg(["augment=device_all"], tmp_path).module.device_augment, resolve=True)
    flip, affine, elastic, light = cpu
    assert flip["p"] == device["flip_p"] == ranges["flip_p"]
    assert (affine["rotate"], affine["scale"], affine["translate_percent"], affine["p"]) == (
        [-device["rotate"], device["rotate"]], device["scale"], [-device["translate"], device["translate"]],
        device["affine_p"])
    assert (elastic["alpha"], elastic["sigma"], elastic["p"]) == (
        device["elastic_alpha"], device["elastic_sigma"], device["elastic_p"])
    assert (light["brightness_limit"], light["contrast_limit"], light["p"]) == (
        device["brightness"], device["contrast"], device["brightness_p"])
    # one override moves both
    moved = make_cfg(["augment=device_all", "augment_ranges.rotate=[-20,20]"], tmp_path).module.device_augment
    assert moved.rotate == 20


def test_trainer_options_are_written_alike():
    """Every trainer option is a global config setting trainer.* (and data.* where needed)."""
    import yaml

    for path in sorted((CONF / "trainer").glob("*.yaml")):
        text = path.read_text()
        assert text.startswith("# @package _global_\n"), path.name
        assert set(yaml.safe_load(text)) - {"defaults"} <= {"trainer", "data"}, path.name


def test_gpu_config_is_bf16_with_workers_the_machine_has(monkeypatch):
    import os

    for cores, workers in ((16, 12), (8, 7), (1, 0)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        gpu = make_cfg(["trainer=gpu"])
        assert (gpu.trainer.accelerator, gpu.trainer.precision, gpu.trainer.benchmark) == ("gpu", "bf16-mixed", True)
        assert (gpu.data.num_workers, gpu.data.batch_size, gpu.data.pin_memory) == (workers, 32, True)


def test_multi_gpu_and_cluster_configs_compose():
    ddp = make_cfg(["trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2"])
    assert (ddp.trainer.strategy, ddp.trainer.accelerator, ddp.trainer.num_nodes) == ("ddp", "gpu", 2)
    assert ddp.trainer.sync_batchnorm and ddp.trainer.use_distributed_sampler is False
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="tumorseg.conf", version_base="1.3"):
        slurm = compose("train", overrides=[f"paths.root_dir={REPO}", "hydra/launcher=slurm"], return_hydra_config=True)
    launcher = slurm.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.cpus_per_task, launcher.timeout_min) == (1, 8, 240)
