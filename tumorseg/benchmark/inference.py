"""Inference of the default net, each way of running it: eager PyTorch in each layout and precision,
torch.compile, ONNX Runtime fp32 and int8. Images/s at batch 16, ms per slice at batch 1."""

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate

from tumorseg.benchmark.configs import SETTINGS, train_config
from tumorseg.benchmark.settings import BenchSettings
from tumorseg.benchmark.timing import autocast, calls_per_s
from tumorseg.inference.onnx_export import export_onnx, quantize_int8
from tumorseg.inference.runtime import OnnxNet

Run = Callable[[torch.Tensor], object]


def eager(model: torch.nn.Module, device: str, channels_last: bool, bf16: bool) -> Run:
    @torch.no_grad()
    def run(x: torch.Tensor):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, bf16):
            return model(x)

    return run


def onnx_runs(net: torch.nn.Module, settings: BenchSettings, tmp: Path) -> dict[str, Run]:
    """ONNX Runtime fp32 (where it has the device's provider) and, on a CPU, the int8 export."""
    import onnxruntime as ort

    size = settings.image_size
    provider = "CUDAExecutionProvider" if settings.device == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():  # the plain onnxruntime wheel has no CUDA provider
        return {}
    fp32 = export_onnx(copy.deepcopy(net).cpu(), (1, size, size), tmp / "model.onnx")
    session = ort.InferenceSession(str(fp32), providers=[provider])
    runs: dict[str, Run] = {"ONNX Runtime fp32": lambda x: session.run(None, {"image": x.cpu().numpy()})}
    if settings.device == "cpu":  # the int8 kernels are the CPU's (VNNI); the ranges of random input do for timing
        calibration = [np.random.default_rng(i).standard_normal((8, 1, size, size), np.float32) for i in range(2)]
        int8 = OnnxNet(quantize_int8(fp32, tmp / "model.int8.onnx", calibration))
        runs["ONNX Runtime int8"] = lambda x: int8(x.cpu())
    return runs


def images_per_s(run: Run, batch: int, settings: BenchSettings, reps: int | None = None) -> float:
    size = settings.image_size
    x = torch.randn(batch, 1, size, size, device=settings.device)
    return batch * calls_per_s(lambda: run(x), reps or settings.infer_reps, settings.device)


def inference_rates(settings: BenchSettings, tmp: Path) -> dict[str, dict[str, float]]:
    """'how': {images_per_s_b16, ms_per_slice_b1} for each way of running the default net."""
    device = settings.device
    net = instantiate(train_config(device).model).eval()

    def copy_of(channels_last: bool) -> torch.nn.Module:  # .to() works in place: one copy each
        layout = torch.channels_last if channels_last else torch.contiguous_format
        return copy.deepcopy(net).to(device, memory_format=layout)

    runs = {f"eager {name}": eager(copy_of(cl), device, cl, bf16) for name, (cl, bf16) in SETTINGS.items()}
    if settings.compile:
        runs["torch.compile channels_last"] = eager(torch.compile(copy_of(True)), device, True, False)
        runs["torch.compile bf16 channels_last"] = eager(torch.compile(copy_of(True)), device, True, True)
    runs |= onnx_runs(net, settings, tmp)
    out = {}
    for name, run in runs.items():
        try:
            out[name] = {"images_per_s_b16": images_per_s(run, 16, settings),
                         "ms_per_slice_b1": 1000 / images_per_s(run, 1, settings, reps=4 * settings.infer_reps)}
        except Exception as err:  # torch.compile needs a compiler toolchain: one missing costs one row
            print(f"  inference {name}: failed, left out ({type(err).__name__}: {str(err)[:200]})", flush=True)
            continue
        print(f"  inference {name}: {out[name]['images_per_s_b16']:.1f} img/s (b16), "
              f"{out[name]['ms_per_slice_b1']:.1f} ms (b1)", flush=True)
    return out
