"""Train: compose the config, instantiate, fit, evaluate the best checkpoint, write metrics.json.

    python -m tumorseg.train approach=split augment=elastic
"""

import json
import logging
import math
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from tumorseg import CONF_DIR
from tumorseg.errors import Terminated, UserError, exit_on_user_error
from tumorseg.files.output_files import replace_text
from tumorseg.inference import model_file
from tumorseg.inference.segment import slice_probabilities
from tumorseg.models import check_image_size
from tumorseg.settings.rules import check_compiler, check_config
from tumorseg.training.plots import save_curves, save_prediction_grid
from tumorseg.training.trackers import check_stores, check_trackers, loggers_for, record_run

log = logging.getLogger("tumorseg")


def instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every entry of a callbacks group."""
    return [instantiate(node) for node in (group or {}).values() if node]


def callbacks_for(cfg: DictConfig, loggers: list) -> list:
    """The callbacks group; without a logger (logger=none) less the LR monitor, which has nowhere to write."""
    callbacks = instantiate_all(cfg.get("callbacks"))
    return callbacks if loggers else [c for c in callbacks if not isinstance(c, LearningRateMonitor)]


def hparams_of(cfg: DictConfig) -> dict:
    """The run's choices in a flat dict: the trackers' hyperparameters (TensorBoard's HParams tab)."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    groups = ("approach", "model", "augment", "loss", "optimizer", "scheduler", "callbacks", "trainer")
    params = {g: str(choices.get(g)) for g in groups}
    params.update({f"model/{k}": v for k, v in cfg.model.items() if not str(k).startswith("_")})
    params.update(lr=cfg.optimizer.lr, batch_size=cfg.data.batch_size, image_size=cfg.data.image_size)
    params.update(seed=cfg.seed, max_epochs=cfg.trainer.max_epochs, group_by=str(cfg.approach.get("group_by")))
    return params


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint's path (by val/dice); None without a checkpoint callback or before one was saved."""
    ckpt = trainer.checkpoint_callback
    return ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None


def evaluate_best(trainer: L.Trainer, module, datamodule) -> dict[str, float]:
    """Final figures: last epoch's train/*, then val/* and test/* of the best checkpoint."""
    metrics = dict(module.last_train)  # read before validate() loads the best checkpoint's state
    metrics["val/dice_best"] = float(module.best_val_dice)
    metrics["epochs"] = trainer.current_epoch
    best = best_checkpoint(trainer)
    for stage, run in (("val", trainer.validate), ("test", trainer.test)):
        if stage in datamodule.datasets:
            (results,) = interruptible(trainer, run, module, datamodule=datamodule, ckpt_path=best, verbose=False)
            metrics.update({k: float(v) for k, v in results.items()})
    # NaN (e.g. empty_fp_rate of a split without empty slices) is written as null: strict JSON.
    return {k: None if v != v else v for k, v in sorted(metrics.items())}


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint to resume from: ckpt_path=..., or <run dir>/checkpoints/last.ckpt for resume=<run dir>."""
    path = Path(cfg.resume) / "checkpoints" / "last.ckpt" if cfg.get("resume") else cfg.ckpt_path
    if not path:
        return None
    option = "resume" if cfg.get("resume") else "ckpt_path"
    if not Path(path).is_file():
        raise UserError(f"{path} is not a file: use ckpt_path=<run dir>/checkpoints/last.ckpt "
                        f"or resume=<run dir> (a run that finished an epoch)")
    stored = model_file.read(path, option)  # refuses, with a clear message, a file that would run pickled code
    differ = model_file.net_differences(stored, OmegaConf.to_container(cfg.model, resolve=True))
    if differ:
        raise UserError(f"{option}={path} holds a different net ({differ}): continue with the "
                        "checkpoint's model settings, or start from its weights with init_from= only if the nets "
                        "match")
    check_schedule_length(cfg, OmegaConf.create(stored.run_config or {}), f"{option}={path}")
    return str(path)


# What fixes a one-cycle schedule's length (its total steps) when it starts
SCHEDULE_LENGTH = ("trainer.max_epochs", "trainer.limit_train_batches", "data.batch_size")


def check_schedule_length(cfg: DictConfig, recorded: DictConfig, given: str) -> None:
    """A one-cycle schedule cannot be continued over more (or fewer) steps than it started with: refuse a resume
    that changes its length, before training (else a scheduler traceback mid-epoch)."""
    if not str(OmegaConf.select(cfg, "scheduler._target_", default="")).endswith("OneCycleLR"):
        return
    for key in SCHEDULE_LENGTH:
        old, new = OmegaConf.select(recorded, key, default=None), OmegaConf.select(cfg, key, default=None)
        if old is not None and old != new:
            raise UserError(f"{given} was trained on a one-cycle schedule with {key}={old}, this run says {key}={new}: "
                            f"one-cycle's length is fixed when it starts; keep {key}={old}, or start a new schedule "
                            f"from its weights (init_from=, or scheduler=cosine)")


def initial_weights(cfg: DictConfig) -> dict | None:
    """The net's state_dict from init_from (a .ckpt or shipped .pt), checked against cfg.model; None without init_from.

    Fine-tuning: the net starts from these weights; optimizer, schedule and epochs start anew.
    """
    if not cfg.get("init_from"):
        return None
    if cfg.get("ckpt_path") or cfg.get("resume"):
        raise UserError("init_from= starts a new schedule from a model's weights; ckpt_path=/resume= continue a run: "
                        "set only one of them")
    path = model_file.REFERENCE_MODEL if cfg.init_from == "reference" else Path(cfg.init_from).expanduser()
    if not path.is_file():
        raise UserError(f"init_from={path} is not a file: use a run's checkpoints/last.ckpt, a model .pt, or reference")
    stored = model_file.read(path, "init_from")
    if stored.is_onnx or stored.members != 1:
        raise UserError(f"init_from={path} holds no single tumorseg net: use a run's checkpoints/*.ckpt or a model "
                        f"written by tumorseg ship (not an ensemble, not an ONNX export)")
    differ = model_file.net_differences(stored, OmegaConf.to_container(cfg.model, resolve=True))
    if differ:
        raise UserError(f"init_from={path} is a different net ({differ}): set those overrides, or start from a "
                        f"matching model")
    log.info("net initialized from %s", path)
    return stored.net().state_dict()


def strict_json(metrics: dict) -> str:
    """metrics as strict JSON: a NaN or infinite figure (no value was ever logged) is written as null."""
    finite = {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in metrics.items()}
    return json.dumps(finite, indent=2, allow_nan=False)


def interruptible(trainer: L.Trainer, stage, *args, **kwargs):
    """Run a trainer stage (fit, validate, test); Lightning's own ends of SIGTERM (SIGTERMException, a SystemExit
    of status 0) and of Ctrl+C (sys.exit(1)) become Terminated and KeyboardInterrupt, which the command ends in one
    line with 143 and 130: a pre-empted cluster job must not look successful. guards.InterruptCheckpoint has saved
    interrupted.ckpt by then."""
    try:
        return stage(*args, **kwargs)
    except SIGTERMException:
        raise Terminated from None
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise


def train(cfg: DictConfig) -> dict[str, float]:
    """One run; returns the final metrics (also written to <run dir>/metrics.json)."""
    check_config(cfg)
    check_compiler(cfg)
    check_image_size(cfg.data.image_size, cfg.model.depth)
    if OmegaConf.select(cfg, "data.crops.size"):  # a crop model (two-stage pipeline) reads crops at input_size
        check_image_size(cfg.data.crops.input_size, cfg.model.depth, "data.crops.input_size")
    check_trackers(cfg)
    check_stores(cfg)
    weights = initial_weights(cfg)  # first: it refuses init_from= beside ckpt_path=/resume=
    ckpt_path = resume_checkpoint(cfg)
    out_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, proposer=slice_probabilities)  # stage 1's proposals for a crop model
    datamodule.prepare_data()
    datamodule.setup()
    log.info("data %s: %s", datamodule.root, datamodule.summary())
    if len(datamodule.train_dataloader()) == 0:  # a lone slice is dropped: BatchNorm needs 2 per batch
        raise UserError(f"nothing to train on: the split leaves {len(datamodule.datasets['train'])} training slice(s) "
                        f"({datamodule.summary()}); add subjects to {datamodule.root}/train, or use approach=full "
                        f"with a val/ folder")
    # run_config goes in as plain data, past instantiate (which would build its _target_ nodes).
    module = instantiate(cfg.module, _partial_=True)(run_config=OmegaConf.to_container(cfg, resolve=True))
    if weights is not None:
        module.net.load_state_dict(weights)
    loggers = loggers_for(cfg)
    trainer = instantiate(cfg.trainer, callbacks=callbacks_for(cfg, loggers), logger=loggers or False)
    start = time.perf_counter()
    interruptible(trainer, trainer.fit, module, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_minutes = (time.perf_counter() - start) / 60  # of this process: a resumed run adds its earlier part
    if trainer.is_global_zero and loggers:
        save_curves(loggers, out_dir)  # before the final evaluation adds its own points
    metrics = evaluate_best(trainer, module, datamodule)
    metrics["fit_minutes"] = round(fit_minutes, 2)
    if trainer.is_global_zero:
        replace_text(out_dir, out_dir / "metrics.json", strict_json(metrics) + "\n", option="hydra.run.dir")
        save_prediction_grid(module, datamodule.datasets["val"], out_dir, cfg.threshold)
        params = {**hparams_of(cfg), "checkpoint": best_checkpoint(trainer) or "none"}
        record_run(loggers, params, metrics, trainer.global_step)
        log.info("run dir: %s", out_dir)
        print(f"metrics: {out_dir / 'metrics.json'}")
        print(f"{cfg.optimized_metric}={metrics.get(cfg.optimized_metric, float('nan')):.4f}")
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    """Entry point; returns the optimized metric for sweepers."""
    return train(cfg)[cfg.optimized_metric]


if __name__ == "__main__":
    main()
