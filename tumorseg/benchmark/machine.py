"""What the figures were measured on: the CPU (its bf16 and int8 instructions), torch, the GPU, and the matmul
rate that training's FLOP rate is held against."""

import os
import platform

import torch

from tumorseg.benchmark.timing import calls_per_s
from tumorseg.inference.hardware import cpu_has_bf16, cpu_has_vnni, cpu_name


def machine() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_bf16": cpu_has_bf16(), "cpu_int8_vnni": cpu_has_vnni(), "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def matmul_gflops(dtype: torch.dtype, n: int, device: str, reps: int = 5) -> float:
    """GFLOP/s of an n x n matrix product in dtype."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    return 2 * n**3 * calls_per_s(lambda: a @ b, reps, device) / 1e9
