"""Experiment trackers (the `logger` group: TensorBoard, CSV, MLflow): what a chosen tracker needs installed, the
MLflow run a resumed run continues, and what every tracker records of a finished run (its choices, the checkpoint
path and the final figures)."""

import importlib.util
import logging
import os

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger
from omegaconf import DictConfig

from tumorseg.errors import UserError

# A run tracked in a local store must not reach out to the network: MLflow's usage reports are off unless the user
# turns them on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

MLFLOW = "lightning.pytorch.loggers.MLFlowLogger"
# The modules an MLflow store needs: a database store (sqlite:, the default) goes through SQLAlchemy and Alembic.
MLFLOW_MODULES = ("mlflow",)
DATABASE_MODULES = ("sqlalchemy", "alembic")
# One try of a few seconds when a store is checked (MLflow's defaults: 7 retries with backoff, 120 s a request).
STORE_CHECK = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def installed(module: str) -> bool:
    """Whether module can be imported (found without importing it)."""
    return importlib.util.find_spec(module) is not None


def check_trackers(cfg: DictConfig) -> None:
    """Refuse, before any work, a chosen tracker whose optional packages are not installed."""
    for name, node in (cfg.get("logger") or {}).items():
        if not node or node.get("_target_") != MLFLOW:
            continue
        database = str(node.get("tracking_uri") or "").startswith("sqlite:")
        missing = [m for m in MLFLOW_MODULES + (DATABASE_MODULES if database else ()) if not installed(m)]
        if missing:
            raise UserError(f"logger={name} needs MLflow, an optional extra ({', '.join(missing)} not installed): "
                            f"pip install 'tumorseg[mlflow]', or choose logger=tensorboard, csv or none")


def check_stores(cfg: DictConfig) -> None:
    """Open each chosen MLflow store other than the run's own SQLite file once before any work, without MLflow's
    retries (minutes of backoff against a server that is down): a scheme MLflow does not know, a database driver not
    installed, credentials missing or a server that cannot be reached is one line naming the setting."""
    for name, node in (cfg.get("logger") or {}).items():
        uri = str(node.get("tracking_uri") or "") if node and node.get("_target_") == MLFLOW else ""
        if not uri or uri.startswith("sqlite:"):
            continue
        from mlflow.tracking import MlflowClient

        saved, quiet = {key: os.environ.get(key) for key in STORE_CHECK}, logging.getLogger("mlflow")
        level = quiet.level
        os.environ.update(STORE_CHECK)
        quiet.setLevel(logging.CRITICAL)  # its warnings of the failure it is about to raise: the one line says it
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        except Exception as err:  # noqa: BLE001 - any store's own failure (MLflow's, a driver's, the network's)
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise UserError(f"logger.{name}.tracking_uri={uri} cannot be used ({type(err).__name__}: {reason}): give a "
                            f"tracking server that is running (http://HOST:5000) or a local store, e.g. "
                            f"sqlite:///<run dir>/mlflow.db (the default)") from None
        finally:
            quiet.setLevel(level)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def mlflow_run_of(node: DictConfig) -> str | None:
    """The MLflow run of this run dir (tagged run_dir), for resume= to continue; None when there is none yet."""
    from mlflow.tracking import MlflowClient

    run_dir = str((node.get("tags") or {}).get("run_dir") or "")
    client = MlflowClient(node.get("tracking_uri"))
    experiment = client.get_experiment_by_name(node.get("experiment_name") or "lightning_logs")
    if not run_dir or experiment is None:
        return None
    quote = '"' if "'" in run_dir else "'"
    runs = client.search_runs([experiment.experiment_id], f"tags.run_dir = {quote}{run_dir}{quote}", max_results=1,
                              order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def loggers_for(cfg: DictConfig) -> list[Logger]:
    """The logger group's trackers; with resume=, an MLflow tracker continues the run dir's MLflow run."""
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if not node:
            continue
        resumed = mlflow_run_of(node) if cfg.get("resume") and node.get("_target_") == MLFLOW else None
        loggers.append(instantiate(node, run_id=resumed) if resumed else instantiate(node))
    return loggers


def record_run(loggers: list[Logger], params: dict, metrics: dict, step: int) -> None:
    """Each tracker's record of a finished run: params (the run's choices and its checkpoint) and the final figures
    (None, a figure never logged, left out) at the trainer's last step."""
    figures = {k: v for k, v in metrics.items() if v is not None}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, figures)  # the HParams tab pairs the choices with the figures
        else:
            logger.log_hyperparams(params)
            logger.log_metrics(figures, step)
        if isinstance(logger, MLFlowLogger):
            # MLflow cuts a param at 250 characters: the checkpoint's whole path as a tag too
            logger.experiment.set_tag(logger.run_id, "checkpoint", str(params.get("checkpoint")))
        logger.save()  # the CSV logger writes its rows only when saved
