"""Scaling out: DDP on CPU, Optuna and launcher sweeps, k-fold cross-validation."""

import json

import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import REPO, TINY, make_cfg, phantom_overrides, report, run_cli

LEARNS = ["model.base_channels=8", "trainer.max_epochs=3", "trainer.limit_train_batches=6", "optimizer.lr=3e-3"]


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


def test_two_trial_optuna_sweep(data_dir, tmp_path):
    sweep = tmp_path / "optuna"
    tiny = [o for o in TINY if not o.startswith("model.base_channels")]  # a value set here is not searched
    result = run_cli("tumorseg.train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
                     "hydra.sweeper.sampler.n_startup_trials=1", *tiny, *phantom_overrides(data_dir),
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert "best_value" in best and set(best["best_params"]) >= {"optimizer.lr", "model.base_channels"}
    assert len(list(sweep.glob("*/metrics.json"))) == 2


def test_parallel_joblib_sweep_and_its_report(data_dir, tmp_path):
    sweep = tmp_path / "joblib"
    result = run_cli("tumorseg.train", "-m", "hydra/launcher=parallel", "approach=split,full", *TINY,
                     *phantom_overrides(data_dir), f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    table = report([sweep])
    assert table.count("\n") == 4 and "| 0 | split" in table and "| 1 | full" in table


@pytest.mark.slow
def test_submitit_local_sweep(data_dir, tmp_path):
    sweep = tmp_path / "submitit"
    result = run_cli("tumorseg.train", "-m", "hydra/launcher=local", "approach=split,full", *TINY,
                     *phantom_overrides(data_dir), f"hydra.sweep.dir={sweep}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(sweep.glob("*/metrics.json"))) == 2
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))


def test_two_fold_cross_validation_with_report(data_dir, tmp_path):
    sweep = tmp_path / "cv"
    result = run_cli("tumorseg.train", "-m", "approach=cv", "approach.k=2", "approach.fold=0,1", *TINY,
                     *phantom_overrides(data_dir), f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    table = report([sweep]).strip().splitlines()
    assert "(fold 0/2)" in table[2] and "(fold 1/2)" in table[3]
    assert table[4].startswith("| mean ± std over 2 folds | cv") and "±" in table[4].split("|")[8]


def test_report_summarizes_each_cross_validated_setting_apart(tmp_path):
    for recipe, ema in (("A", None), ("D", {"_target_": "tumorseg.training.callbacks.EMAWeights"})):
        for fold, dice in enumerate((0.2, 0.4)):
            run = tmp_path / f"cv-{recipe}-{fold}"
            (run / ".hydra").mkdir(parents=True)
            config = {"approach": {"name": "cv", "fold": fold, "k": 2}, "callbacks": {"ema": ema},
                      "model": {"base_channels": 16}, "paths": {"output_dir": str(run)}}
            (run / ".hydra/config.yaml").write_text(json.dumps(config))
            (run / "metrics.json").write_text(json.dumps({"test/dice": dice + (recipe == "D") * 0.1}))
    table = report([tmp_path]).strip().splitlines()
    summaries = [line for line in table if "mean ± std" in line]
    assert [line.split("|")[1].strip() for line in summaries] == ["cv-A: mean ± std over 2 folds",
                                                                  "cv-D: mean ± std over 2 folds"]
    assert "0.3000 ± 0.1414" in summaries[0] and "0.4000 ± 0.1414" in summaries[1]


def test_folds_split_subjects_and_cover_everything():
    from tumorseg.data.splits import fold_indices

    subjects = [f"S{i // 4}" for i in range(40)]
    held = [fold_indices(subjects, 5, f, 42)[1] for f in range(5)]
    assert sorted(i for h in held for i in h) == list(range(40))
    for f in range(5):
        keep, out = fold_indices(subjects, 5, f, 42)
        assert {subjects[i] for i in keep}.isdisjoint({subjects[i] for i in out})
    assert fold_indices(subjects, 5, 0, 42) == fold_indices(subjects, 5, 0, 42)


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


def test_report_of_odd_run_dirs_is_a_table_or_one_line(tmp_path):
    from tests.conftest import run_main

    for name, content in (("0", '{"val/dice": 0.5}'), ("abc", '{"val/dice": 0.6}'), ("10", '{"val/dice": 0.7}'),
                          ("2", '{"val/dice": 0.8}')):
        (tmp_path / "sweep" / name).mkdir(parents=True)
        (tmp_path / "sweep" / name / "metrics.json").write_text(content)
    rows = report([tmp_path / "sweep"]).strip().splitlines()[2:]  # under the header and its rule
    assert [r.split("|")[1].strip().rsplit("/", 1)[-1] for r in rows] == ["0", "2", "10", "abc"]
    result = run_main("tumorseg.report", f"runs={tmp_path / 'sweep'}", f"out={tmp_path}")
    assert result.returncode == 2 and f"out={tmp_path} is a folder" in result.stderr
    (tmp_path / "sweep/abc/metrics.json").write_text("{not json")
    result = run_main("tumorseg.report", f"runs={tmp_path / 'sweep'}")
    assert result.returncode == 2 and "sweep/abc/metrics.json cannot be read as JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
