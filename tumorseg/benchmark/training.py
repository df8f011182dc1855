"""Training images/s of each net and numeric setting, through Lightning (the real path) and a plain PyTorch loop
on the same net, loss, optimizer and data; FLOPs of a training step."""

import dataclasses
import time

import lightning as L
import torch
from hydra.utils import instantiate

from tumorseg.benchmark.configs import COMPILED_SETTINGS, OTHER_MODELS, SETTINGS, TRAIN_MODELS, flags, train_config
from tumorseg.benchmark.settings import BenchSettings
from tumorseg.benchmark.timing import autocast, sync
from tumorseg.data import SegDataModule
from tumorseg.training.module import SegModule


class Throughput(L.Callback):
    """Images per second of training batches after `warmup` batches."""

    def __init__(self, warmup: int, device: str):
        self.warmup, self.device, self.images, self.start, self.end = warmup, device, 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.images += batch[0].shape[0]
            sync(self.device)
            self.end = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.images / max(self.end - self.start, 1e-9)


def lightning_rate(model: str, dm: SegDataModule, setting: str, settings: BenchSettings) -> float:
    """Training images/s through the real path: SegModule (loss, metrics, logging) + Trainer."""
    channels_last, bf16, compiled = flags(setting)
    cfg, cuda = train_config(settings.device, f"model={model}"), settings.device == "cuda"
    module = SegModule(instantiate(cfg.model), instantiate(cfg.loss), instantiate(cfg.optimizer),
                       channels_last=channels_last, compile=compiled)
    timer = Throughput(settings.warmup, settings.device)
    trainer = L.Trainer(accelerator="gpu" if cuda else "cpu", devices=1, max_epochs=1, benchmark=cuda,
                        limit_train_batches=settings.warmup + settings.steps, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[timer], precision="bf16-mixed" if bf16 else "32-true")
    trainer.fit(module, datamodule=dm)
    return timer.rate


def plain_rate(model: str, dm: SegDataModule, setting: str, settings: BenchSettings) -> float:
    """Training images/s of a hand-written loop: same net, loss, optimizer, data and settings."""
    channels_last, bf16, compiled = flags(setting)
    device, cfg = settings.device, train_config(settings.device, f"model={model}")
    net, loss_fn = instantiate(cfg.model).train().to(device), instantiate(cfg.loss)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if compiled:
        net.compile()
    optimizer = instantiate(cfg.optimizer)(params=net.parameters())
    batches = iter(dm.train_dataloader())
    for step in range(settings.warmup + settings.steps):
        if step == settings.warmup:
            sync(device)
            start = time.perf_counter()
        x, y, _ = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, bf16):
            loss = loss_fn(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return settings.steps * settings.batch_size / (time.perf_counter() - start)


def train_gflop(model: str, settings: BenchSettings) -> float:
    """GFLOP of one training step (forward + backward) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = train_config(settings.device, f"model={model}")
    net, loss_fn = instantiate(cfg.model), instantiate(cfg.loss)
    x = torch.randn(2, 1, settings.image_size, settings.image_size)
    with FlopCounterMode(display=False) as counter:
        loss_fn(net(x), torch.zeros_like(x)).backward()
    return counter.get_total_flops() / 2 / 1e9


def training_rates(dm: SegDataModule, settings: BenchSettings, default: str) -> dict[str, dict[str, float]]:
    """'net setting': {lightning, plain} images/s: the default net in each setting, unet_seed in fp32 NCHW, the
    other nets (Lightning only) in the default setting."""
    train: dict[str, dict[str, float]] = {}

    def time_both(model: str, setting: str, timed: BenchSettings = settings) -> None:
        row = f"{model} {setting}"
        train[row] = {"lightning": lightning_rate(model, dm, setting, timed),
                      "plain": plain_rate(model, dm, setting, timed)}
        print(f"  train {row}: {train[row]}", flush=True)

    for setting in SETTINGS:
        time_both("unet", setting)
    for setting in COMPILED_SETTINGS if settings.compile else ():
        try:
            time_both("unet", setting)
        except Exception as err:  # torch.compile needs a compiler toolchain: one missing costs one row
            print(f"  train unet {setting}: failed, left out ({type(err).__name__}: {str(err)[:200]})", flush=True)
    time_both("unet_seed", "fp32 NCHW", dataclasses.replace(settings, warmup=1, steps=settings.seed_steps))
    for other in OTHER_MODELS:
        row = f"{other} {default}"
        train[row] = {"lightning": lightning_rate(other, dm, default, settings)}
        print(f"  train {row}: {train[row]}", flush=True)
    return train


def training_gflop(settings: BenchSettings) -> dict[str, float]:
    """GFLOP per training image of each timed net."""
    return {m: train_gflop(m, settings) for m in TRAIN_MODELS}
