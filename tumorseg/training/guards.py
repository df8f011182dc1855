"""Callbacks that keep a run safe: a checkpoint on interrupt, a clear stop on a NaN/Inf loss."""

import logging
import math
import signal
import threading
from pathlib import Path

import lightning as L

from tumorseg.errors import TERMINATION_ASKED, TERMINATION_DEFERRED, Terminated, UserError

log = logging.getLogger("tumorseg")


def newest_checkpoint(trainer: L.Trainer) -> str:
    """The most recently written checkpoint of the run, or a note that there is none yet."""
    paths = [Path(p) for cb in trainer.checkpoint_callbacks
             for p in (cb.last_model_path, cb.best_model_path) if p and Path(p).is_file()]
    return str(max(paths, key=lambda p: p.stat().st_mtime)) if paths else "none yet (no epoch finished)"


class NumericalFault(UserError):
    """Training produced a NaN or Inf loss."""


class InterruptCheckpoint(L.Callback):
    """On Ctrl+C or SIGTERM, saves <dirpath>/interrupted.ckpt (mid-epoch) and says how to resume.

    While fitting, Ctrl+C stops the run at the next batch boundary, and so does SIGTERM in any stage (the command's
    SIGTERM handler only asks while a stage runs: tumorseg.errors.raise_terminated): Python raises wherever the
    main thread is, and raised inside TensorBoard's event queue (a metric being logged) KeyboardInterrupt or
    Terminated leaves the queue's lock held, so Lightning's shutdown, which flushes that queue, waited forever.
    A second Ctrl+C or SIGTERM interrupts at once."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.pending, self.previous = False, None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.pending = False
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._ctrl_c)

    def _ctrl_c(self, signum, frame) -> None:
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        TERMINATION_DEFERRED.set()

    def _stop_if_asked(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
        if TERMINATION_ASKED.is_set():  # Lightning's own stop (SIGTERMException) comes first where it checks
            TERMINATION_ASKED.clear()
            raise Terminated

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._stop_if_asked()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._stop_if_asked()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._stop_if_asked()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_asked()  # asked during the last epoch's end: the run still ends as interrupted

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        TERMINATION_DEFERRED.clear()
        if stage == "fit" and self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Lightning's SIGTERM handler raises SIGTERMException or, run before the command's own, Terminated
        stopped = isinstance(exception, (KeyboardInterrupt, Terminated))
        if not stopped and type(exception).__name__ != "SIGTERMException":
            return
        path = self.dirpath / "interrupted.ckpt"
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            log.warning("interrupted at epoch %d, step %d: saved %s; resume exactly from the last finished epoch "
                        "with resume=%s", trainer.current_epoch, trainer.global_step, path, self.dirpath.parent)


class FiniteLoss(L.Callback):
    """Stops training at the first NaN/Inf training loss, naming the epoch and step; keeps the last good checkpoint."""

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss) -> None:
        # Before backward: the bad loss never reaches the weights.
        value = float(loss.detach())
        if math.isfinite(value):
            return
        raise NumericalFault(
            f"the training loss became {value} at epoch {trainer.current_epoch}, step {trainer.global_step}: "
            f"training stopped; last good checkpoint: {newest_checkpoint(trainer)}. "
            f"Lower optimizer.lr or set trainer.gradient_clip_val=1.0"
        )
