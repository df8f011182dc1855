"""Pictures of what the model does: TensorBoard images and charts during training."""

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger

from tumorseg.data.dataset import SegDataset
from tumorseg.writers.pictures import grid, triptych

# Train and val of one figure on one chart (TensorBoard's "Custom Scalars" tab).
CHARTS = {"curves": {m: ["Multiline", [f"train/{m}", f"val/{m}"]] for m in ("loss", "bce", "dice", "iou")}}


def pick_slices(dataset: SegDataset, n: int) -> list[int]:
    """A fixed, spread-out choice of n slices: mostly with tumor, plus one without when there is one."""
    has_tumor = dataset.masks.reshape(len(dataset), -1).any(axis=1)
    tumor, empty = np.flatnonzero(has_tumor), np.flatnonzero(~has_tumor)
    n_tumor = min(len(tumor), n - 1 if len(empty) else n)
    chosen = [int(tumor[i]) for i in np.linspace(0, len(tumor) - 1, n_tumor).round().astype(int)] if n_tumor else []
    chosen += [int(i) for i in empty[: n - len(chosen)]]
    return sorted(set(chosen))


@torch.no_grad()
def prediction_grid(module: L.LightningModule, dataset: SegDataset, indices: list[int], threshold: float) -> np.ndarray:
    """One row per slice: image | ground truth | prediction overlay (RGB uint8)."""
    was_training = module.training
    module.eval()
    x = torch.stack([dataset[i][0] for i in indices]).to(module.device)
    preds = (torch.sigmoid(module(x)) > threshold)[:, 0].cpu().numpy().astype(np.uint8)
    module.train(was_training)
    return grid([triptych(dataset.images[i], dataset.masks[i], p) for i, p in zip(indices, preds)])


class PredictionPictures(L.Callback):
    """At each validation epoch, logs fixed val slices as image | truth | prediction to TensorBoard."""

    def __init__(self, n_slices: int = 6):
        self.n_slices = n_slices
        self.indices: list[int] = []

    @staticmethod
    def _tensorboard(trainer: L.Trainer):
        return next((lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.indices = pick_slices(trainer.datamodule.datasets["val"], self.n_slices)
        writer = self._tensorboard(trainer)
        if writer is not None and trainer.is_global_zero:
            writer.add_custom_scalars(CHARTS)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self._tensorboard(trainer)
        if writer is None or trainer.sanity_checking or not trainer.is_global_zero or not self.indices:
            return
        picture = prediction_grid(pl_module, trainer.datamodule.datasets["val"], self.indices,
                                  pl_module.hparams.threshold)
        writer.add_image("val/predictions", picture, trainer.current_epoch, dataformats="HWC")


class EMAWeights(EMAWeightAveraging):
    """Lightning's moving average of the weights (validated and checkpointed), also after fit: test
    and validate evaluate the averaged weights of the checkpoint they load, as evaluate and ship do."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args, **kwargs) -> None:
        # Lightning's per-step updates ignore update_starting_at_epoch (they run from step 0 unless
        # update_starting_at_step is set): hold them back until that epoch, as the setting says.
        if trainer.current_epoch >= (self.update_starting_at_epoch or 0):
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # With the fit's average model still held, loading a checkpoint restores its raw weights
        # (current_model_state) and only validation swaps the average back in: test would score
        # the raw weights. Without it, a loaded checkpoint's state_dict (the average) is used.
        if stage == "fit":
            self._average_model = None
