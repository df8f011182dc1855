"""Peak memory of the default net's training at the config's batch size: GPU memory allocated, or this process's
resident memory."""

import dataclasses
import gc
import multiprocessing
import resource
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from tumorseg.benchmark.configs import default_setting, train_config
from tumorseg.benchmark.data import datamodule
from tumorseg.benchmark.settings import BenchSettings
from tumorseg.benchmark.training import lightning_rate

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Lower this process's resident-memory high-water mark to its present size (Linux); False where it cannot."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated on a GPU, else peak resident memory of this process (since its last reset)."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    if STATUS.is_file():  # VmHWM follows reset_peak_rss(); ru_maxrss does not
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _training_peak_mb(root: Path, settings: BenchSettings) -> tuple[float, int]:
    """Peak memory of a few training steps of the default model and setting at the config's batch size."""
    batch_size = train_config(settings.device).data.batch_size
    settings = dataclasses.replace(settings, batch_size=batch_size, warmup=1, steps=2)
    if settings.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    lightning_rate("unet", datamodule(root, settings), default_setting(settings.device), settings)
    return peak_memory_mb(settings.device), batch_size


def training_peak_mb(root: Path, settings: BenchSettings) -> tuple[float, int]:
    """(peak MB, batch size). A process's peak resident memory only grows: on a CPU it is reset here first
    (Linux), or, where it cannot be, measured in a fresh process."""
    gc.collect()
    if settings.device == "cuda" or reset_peak_rss():
        return _training_peak_mb(root, settings)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_training_peak_mb, root, settings).result()
