"""The numerical guard (training/guards.py): a NaN loss stops the run at its epoch and step, the last good checkpoint
kept."""

import pytest
import torch

from tests.conftest import TINY, phantom_overrides, run_main
from tumorseg.train import train
from tumorseg.training.guards import NumericalFault
from tumorseg.training.losses import DiceBCELoss


class NaNLoss(DiceBCELoss):
    """Dice+BCE that returns NaN from the `after`-th training call on (a fault injected on purpose)."""

    def __init__(self, after: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.after, self.calls = after, 0

    def forward(self, logits, target):
        loss = super().forward(logits, target)
        if self.training:
            self.calls += 1
            if self.calls >= self.after:
                return loss * float("nan")
        return loss


@pytest.mark.trains
def test_nan_loss_stops_with_epoch_step_and_last_good_checkpoint(data_dir, tmp_path):
    run = tmp_path / "nan"
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "trainer.max_epochs=3",
                      "loss._target_=tests.test_guards.NaNLoss", "+loss.after=4", f"hydra.run.dir={run}")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "became nan at epoch 1, step 3" in line
    assert str(run / "checkpoints") in line
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not (run / "metrics.json").exists()


@pytest.mark.trains
def test_nan_guard_raises_a_numerical_fault(tiny_cfg):
    with pytest.raises(NumericalFault, match="epoch 0, step 0"):
        train(tiny_cfg("loss._target_=tests.test_guards.NaNLoss", "+loss.after=1"))


def test_ctrl_c_while_fitting_waits_for_a_batch_boundary_and_a_second_one_does_not(tmp_path):
    """Ctrl+C raised mid-step could land inside TensorBoard's event queue with its lock held, and the shutdown that
    flushes the queue then waited forever (a `make test` run hung so): while fitting it is deferred to the next
    batch boundary; a second Ctrl+C interrupts at once; after fitting the handler is the one before."""
    import os
    import signal

    from tumorseg.training.guards import InterruptCheckpoint

    guard, before = InterruptCheckpoint(str(tmp_path)), signal.getsignal(signal.SIGINT)
    guard.on_fit_start(None, None)
    try:
        os.kill(os.getpid(), signal.SIGINT)  # deferred: no KeyboardInterrupt here
        assert guard.pending
        with pytest.raises(KeyboardInterrupt):
            guard.on_train_batch_end(None, None, None, None, 0)
        guard.on_validation_batch_end(None, None, None, None, 0)  # asked once, stopped once
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second: at once
    finally:
        guard.teardown(None, None, "fit")
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_in_a_trainer_stage_waits_for_a_batch_boundary_and_a_second_one_does_not(tmp_path):
    """The command's SIGTERM handler raised Terminated wherever the main thread was, beside Lightning's handler
    (which only sets a flag): under load 2 of 20 runs signalled mid-epoch hung in TensorBoard's queue (gdb and
    faulthandler: the writer thread's join). In a stage it now asks; the stage stops at the next batch boundary
    (validation or test batches too); a second SIGTERM raises at once; outside a stage it raises at once."""
    import os
    import signal

    from tumorseg.errors import TERMINATION_ASKED, Terminated, raise_terminated
    from tumorseg.training.guards import InterruptCheckpoint

    guard, before = InterruptCheckpoint(str(tmp_path)), signal.signal(signal.SIGTERM, raise_terminated)
    try:
        for stage, batch_end in (("fit", guard.on_validation_batch_end), ("test", guard.on_test_batch_end)):
            guard.setup(None, None, stage)
            os.kill(os.getpid(), signal.SIGTERM)  # asked: no Terminated here
            assert TERMINATION_ASKED.is_set()
            with pytest.raises(Terminated):
                batch_end(None, None, None, None, 0)
            guard.on_train_batch_end(None, None, None, None, 0)  # asked once, stopped once
            os.kill(os.getpid(), signal.SIGTERM)
            with pytest.raises(Terminated):
                os.kill(os.getpid(), signal.SIGTERM)  # the second: at once
            TERMINATION_ASKED.clear()
            guard.teardown(None, None, stage)
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)  # no stage runs: at once
    finally:
        TERMINATION_ASKED.clear()
        signal.signal(signal.SIGTERM, before)
