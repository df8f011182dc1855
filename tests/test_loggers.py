"""tumorseg.training.trackers and the logger group (tensorboard, csv, mlflow): each tracker records a run's figures,
choices and checkpoint; MLflow is an optional extra, refused in one line when missing; a resumed run continues its
records and may change its trackers."""

import csv
import sys
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

import tumorseg.train
from tests.conftest import TINY, assert_one_error, make_cfg, phantom_overrides, run_main, train_run
from tests.test_run_dir import recorded_run
from tumorseg.errors import UserError
from tumorseg.settings.run_dir import resume_verdict
from tumorseg.training.trackers import check_trackers, loggers_for

EVERY = "logger=[tensorboard,csv,mlflow]"


def mlflow_record(run: Path):
    """(client, the one MLflow run) of a run dir's local store, read back through MLflow's client API."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run}/mlflow.db")
    experiment = client.get_experiment_by_name("tumorseg")
    (record,) = client.search_runs([experiment.experiment_id])
    return client, record


def csv_rows(run: Path, version: int = 0) -> list[dict]:
    """The rows of a run dir's csv/version_N/metrics.csv."""
    with open(run / f"csv/version_{version}/metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_the_trackers_compose_alone_and_together(tmp_path):
    cfg = make_cfg([EVERY], tmp_path)
    assert [node._target_ for node in cfg.logger.values()] == [
        f"lightning.pytorch.loggers.{name}" for name in ("TensorBoardLogger", "CSVLogger", "MLFlowLogger")]
    assert cfg.logger.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"  # the run dir's own store
    assert cfg.logger.mlflow.tags.run_dir == str(tmp_path)
    # MLflow's logger builds its store as it is made (about 10 s for a new one): the trainings below make one
    csv_only = loggers_for(make_cfg(["logger=[tensorboard,csv]"], tmp_path))
    assert [type(lg) for lg in csv_only] == [TensorBoardLogger, CSVLogger]
    assert csv_only[1].log_dir == str(tmp_path / "csv" / "version_0")
    assert not make_cfg(["logger=none"], tmp_path).logger


@pytest.mark.trains
def test_every_tracker_records_the_figures_the_choices_and_the_checkpoint(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run, metrics = train_run(data_dir, tmp_path, EVERY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written beside the run dir
    (best,) = (run / "checkpoints").glob("epoch_*.ckpt")

    rows = csv_rows(run)
    assert [r for r in rows if r["val/dice"]] and float(rows[-1]["val/dice"]) == pytest.approx(metrics["val/dice"])
    assert float(rows[-1]["val/dice_best"]) == pytest.approx(metrics["val/dice_best"])
    hparams = yaml.safe_load((run / "csv/version_0/hparams.yaml").read_text())
    assert hparams["checkpoint"] == str(best) and hparams["model/base_channels"] == 4 and hparams["lr"] == 1e-3

    client, record = mlflow_record(run)
    assert record.info.status == "FINISHED"
    assert record.data.metrics["val/dice"] == pytest.approx(metrics["val/dice"])
    assert record.data.metrics["val/dice_best"] == pytest.approx(metrics["val/dice_best"])
    assert record.data.params["checkpoint"] == record.data.tags["checkpoint"] == str(best)
    assert record.data.params["model/base_channels"] == "4" and record.data.tags["run_dir"] == str(run)
    assert len(client.get_metric_history(record.info.run_id, "train/loss")) == 2  # the epoch's and the final one

    events = b"".join(p.read_bytes() for p in (run / "tensorboard").glob("events.out.tfevents.*"))
    assert str(best).encode() in events  # TensorBoard's HParams tab has the same checkpoint


@pytest.mark.trains
def test_a_resumed_run_continues_its_mlflow_run_and_keeps_its_earlier_csv(data_dir, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise RuntimeError("killed after fit")

    trackers = "logger=[csv,mlflow]"
    with monkeypatch.context() as patch:
        patch.setattr(tumorseg.train, "evaluate_best", killed)  # the process dies after its epoch, before the end
        with pytest.raises(RuntimeError, match="killed after fit"):
            train_run(data_dir, tmp_path, trackers)
    run = tmp_path / "run"
    first = csv_rows(run)
    train_run(data_dir, tmp_path, trackers, "trainer.max_epochs=2", f"resume={run}")
    client, record = mlflow_record(run)  # one MLflow run: the resumed part went on in it
    assert {m.value for m in client.get_metric_history(record.info.run_id, "epoch")} >= {0, 1}
    assert "checkpoint" in record.data.params
    assert csv_rows(run, 0) == first  # the first part's rows kept; the resumed part's in version_1
    assert [r["epoch"] for r in csv_rows(run, 1) if r["val/dice"]][0] == "1"


def test_a_resume_may_change_its_trackers(tmp_path):
    """A tracker is where figures go, not what the net learns: resume= may add, drop or change one."""
    run = recorded_run(tmp_path, make_cfg(["data=phantom"], tmp_path / "out"))
    assert resume_verdict(make_cfg(["data=phantom", "logger=mlflow"], tmp_path / "out"), run) is None
    assert resume_verdict(make_cfg(["data=phantom", "logger=none"], tmp_path / "out"), run) is None


@pytest.mark.parametrize("module", ["mlflow", "sqlalchemy"])
def test_mlflow_without_its_extra_is_one_line_before_any_training(data_dir, tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    run = tmp_path / "run"
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "logger=mlflow", f"hydra.run.dir={run}")
    assert_one_error(result, f"logger=mlflow needs MLflow, an optional extra ({module} not installed)",
                     "pip install 'tumorseg[mlflow]'")
    assert not (run / "checkpoints").exists() and not (run / "mlflow.db").exists()


def test_a_tracking_server_needs_no_database_modules(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    check_trackers(make_cfg(["logger=mlflow", "logger.mlflow.tracking_uri=http://localhost:5000"], tmp_path))
    with pytest.raises(UserError, match="sqlalchemy not installed"):
        check_trackers(make_cfg(["logger=mlflow"], tmp_path))


@pytest.mark.parametrize("uri, words", [
    ("http://127.0.0.1:9", "cannot be used"),  # nothing listens on port 9 (discard): refused at once, no retries
    ("databricks", "cannot be used"),  # no credentials, no databricks-sdk
    ("nope://x", "cannot be used"),  # a scheme MLflow does not know
])
def test_a_tracking_store_that_cannot_be_used_is_one_line_before_any_training(data_dir, tmp_path, uri, words):
    run = tmp_path / "run"
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "logger=mlflow",
                      f"logger.mlflow.tracking_uri={uri}", f"hydra.run.dir={run}")
    assert_one_error(result, f"logger.mlflow.tracking_uri={uri} {words}", "sqlite:///<run dir>/mlflow.db")
    assert not (run / "checkpoints").exists()
