"""What every timer shares: waiting for queued device work, bf16 autocast, and the rate of a repeated call."""

import time
from collections.abc import Callable
from contextlib import nullcontext

import torch


def sync(device: str) -> None:
    """Waits for queued GPU work, so that a timer reads the work done (CUDA runs asynchronously)."""
    if device == "cuda":
        torch.cuda.synchronize()


def autocast(device: str, bf16: bool):
    return torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()


def calls_per_s(run: Callable[[], object], reps: int, device: str, warmup: int = 2) -> float:
    """Calls of run per second after warmup calls (first-call allocation, kernel choice)."""
    for _ in range(warmup):
        run()
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        run()
    sync(device)
    return reps / (time.perf_counter() - start)
