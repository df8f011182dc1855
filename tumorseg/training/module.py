"""LightningModule: the net, its loss, optimizer and schedule, and the split metrics."""

import inspect
import logging
import math
import random
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric

from tumorseg.inference import model_file
from tumorseg.scoring.metrics import SegMetrics
from tumorseg.training.device_augment import step_generator

STAGES = ("train", "val", "test")
log = logging.getLogger("tumorseg")


class SegModule(L.LightningModule):
    """Binary segmentation: logs <stage>/loss, /bce, /dice, /iou, /precision, /recall per epoch."""

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        threshold: float = 0.5,
        channels_last: bool = False,
        compile: bool = False,
        seed: int = 42,
        run_config: dict | None = None,
        device_augment: Callable | None = None,
    ):
        """device_augment: (image, mask, generator) -> (image, mask), applied to training batches on their device
        (augment=device_all); None: the loaders' augmentation only."""
        super().__init__()
        # Only plain values go into checkpoints (they load with weights_only=True); run_config is
        # the run's resolved config, so a checkpoint alone can rebuild its net and preprocessing.
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler", "device_augment"], logger=False)
        self.net, self.loss_fn = net, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler or None
        self.channels_last, self.device_augment = channels_last, device_augment
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:
            # In place (nn.Module.compile): the state_dict keeps its keys, so checkpoints load uncompiled.
            self.net.compile()
        # Keyed "<stage>_": a ModuleDict key "train" would shadow nn.Module.train.
        self.metrics = nn.ModuleDict({f"{s}_": SegMetrics(threshold) for s in STAGES})
        # Epoch means as torchmetrics too: synced over DDP ranks at one point, the epoch's end. No NaN
        # check: on a GPU it waits for the step to finish (twice a step), and FiniteLoss stops NaN runs.
        self.means = nn.ModuleDict({
            f"{s}_": nn.ModuleDict({k: MeanMetric(nan_strategy="disable") for k in ("loss", "bce")}) for s in STAGES})
        # Best validation Dice so far and the last epoch's train/* figures; kept in checkpoints so
        # that a resumed run (even one resumed after its last epoch) reports them.
        self.best_val_dice = -math.inf
        self.last_train: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def augmented(self, batch, batch_idx: int):
        """A training batch (on its device) through device_augment, seeded by (seed, epoch, batch, rank): a resumed
        run draws alike. Here rather than in on_after_batch_transfer, which Lightning warns of beside a datamodule."""
        if self.device_augment is None:
            return batch
        x, y, subject = batch
        keys = (self.hparams.seed, self.current_epoch, batch_idx, self.global_rank)
        x, y = self.device_augment(x, y, generator=step_generator(x.device, *keys))
        return x, y, subject

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y, subject = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        bce = F.binary_cross_entropy_with_logits(logits.float(), y)
        self.metrics[f"{stage}_"].update(torch.sigmoid(logits.detach().float()), y, subject)
        self.means[f"{stage}_"]["loss"].update(loss.detach(), weight=x.shape[0])
        self.means[f"{stage}_"]["bce"].update(bce.detach(), weight=x.shape[0])
        return loss

    def _end_epoch(self, stage: str) -> None:
        values = self.metrics[f"{stage}_"].compute()
        self.metrics[f"{stage}_"].reset()
        for name, mean in self.means[f"{stage}_"].items():
            values[name] = mean.compute()
            mean.reset()
        shown = {"dice", "loss"} if stage != "test" else set()
        for name, value in values.items():
            if not name.startswith("n_"):
                self.log(f"{stage}/{name}", value.float(), prog_bar=name in shown)
        if stage == "train":
            self.last_train = {f"train/{k}": float(v) for k, v in values.items() if not k.startswith("n_")}
        if stage == "val" and self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.best_val_dice = max(self.best_val_dice, float(values["dice"]))
            self.log("val/dice_best", self.best_val_dice, prog_bar=True)

    def training_step(self, batch, batch_idx):
        return self._step(self.augmented(batch, batch_idx), "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_train_epoch_start(self):
        # Global RNGs (dropout, anything else) restart from (seed, epoch) every epoch, so a run
        # resumed from an epoch's checkpoint continues exactly as the uninterrupted one.
        epoch_seed = self.hparams.seed * 1_000_003 + self.current_epoch
        torch.manual_seed(epoch_seed)
        np.random.seed(epoch_seed % 2**32)
        random.seed(epoch_seed)

    def on_train_epoch_end(self):
        self._end_epoch("train")
        # One line per epoch: progress readable in train.log and in background runs.
        shown = ("train/loss", "train/dice", "val/loss", "val/dice", "val/dice_best")
        figures = "  ".join(f"{k}={float(v):.4f}" for k, v in self.trainer.callback_metrics.items() if k in shown)
        if self.trainer.is_global_zero:
            log.info("epoch %d: %s", self.current_epoch, figures)

    def on_validation_epoch_end(self):
        self._end_epoch("val")

    def on_test_epoch_end(self):
        self._end_epoch("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        model_file.mark(checkpoint)
        checkpoint["best_val_dice"] = self.best_val_dice
        checkpoint["last_train"] = self.last_train

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.best_val_dice = checkpoint.get("best_val_dice", -math.inf)
        self.last_train = checkpoint.get("last_train", {})

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        # Schedules sized in steps (one-cycle) get the run's step count and step every batch.
        params = inspect.signature(self.scheduler_factory).parameters
        if "total_steps" in params:
            scheduler = self.scheduler_factory(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
            interval = "step"
        else:
            scheduler = self.scheduler_factory(optimizer)
            interval = "epoch"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
