"""callbacks=ema: the averaged weights are validated, checkpointed, and tested after fit."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from tumorseg.train import train
from tumorseg.training.callbacks import EMAWeights


@pytest.mark.trains
def test_ema_run_reports_what_its_checkpoint_gives(tiny_cfg, tmp_path):
    cfg = tiny_cfg("callbacks=ema", "callbacks.ema.decay=0.5", "callbacks.ema.update_starting_at_epoch=0",
                   "trainer.max_epochs=6", "trainer.limit_train_batches=8", "trainer.limit_val_batches=1.0",
                   "trainer.limit_test_batches=1.0", "model.base_channels=8", "optimizer.lr=3e-3", "approach=split")
    trained = train(cfg)
    best = sorted((tmp_path / "run/checkpoints").glob("epoch_*.ckpt"))[-1]
    saved = torch.load(best, weights_only=True)
    name = next(k for k in saved["state_dict"] if k.endswith("weight") and saved["state_dict"][k].ndim == 4)
    # state_dict holds the average, current_model_state the last step's weights: they differ.
    assert not torch.equal(saved["state_dict"][name], saved["current_model_state"][name])
    # A plain module with the checkpoint's state_dict (what evaluate and ship load) gives the run's figures.
    module = instantiate(cfg.module, _partial_=True)(run_config=None)
    module.load_state_dict(saved["state_dict"])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    for stage, run in (("val", trainer.validate), ("test", trainer.test)):
        (plain,) = run(module, datamodule=datamodule, verbose=False)
        assert plain[f"{stage}/bce"] == pytest.approx(trained[f"{stage}/bce"], rel=1e-4), stage
        assert plain[f"{stage}/dice"] == pytest.approx(trained[f"{stage}/dice"], abs=1e-5), stage


def test_ema_waits_for_its_starting_epoch():
    """update_starting_at_epoch holds back the per-step updates too (Lightning's alone would not)."""
    module = L.LightningModule()
    module.layer = torch.nn.Linear(2, 1)
    ema = EMAWeights(decay=0.9, update_starting_at_epoch=1)
    ema.setup(SimpleNamespace(), module, "fit")
    ema.on_train_batch_end(SimpleNamespace(current_epoch=0, global_step=5), module, None, None, 4)
    assert ema._average_model.n_averaged == 0
    ema.on_train_batch_end(SimpleNamespace(current_epoch=1, global_step=80), module, None, None, 0)
    assert ema._average_model.n_averaged == 1
