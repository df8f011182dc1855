"""Every figure of the requested parts, in one run, on phantom data made for it in a temporary folder."""

import tempfile
from pathlib import Path

import torch

from tumorseg.benchmark.configs import default_setting
from tumorseg.benchmark.data import data_rates, datamodule
from tumorseg.benchmark.inference import inference_rates
from tumorseg.benchmark.machine import machine, matmul_gflops
from tumorseg.benchmark.memory import training_peak_mb
from tumorseg.benchmark.segment import segment_rates
from tumorseg.benchmark.settings import BenchSettings
from tumorseg.benchmark.summary import summarize
from tumorseg.benchmark.training import training_gflop, training_rates
from tumorseg.benchmark.volume import volume_rates
from tumorseg.data import generate_phantom


def measure(settings: BenchSettings) -> dict:
    """The figures (the JSON of the report): machine, args, default_setting, matmul_gflops, one entry or more per
    part, and summary."""
    if settings.device == "cuda":  # cuDNN picks each convolution's fastest kernel in the first steps
        torch.backends.cudnn.benchmark = True
    default = default_setting(settings.device)
    results: dict = {"machine": machine(), "args": settings.as_json(), "default_setting": default}
    results["matmul_gflops"] = {name: matmul_gflops(dtype, settings.matmul_n, settings.device)
                                for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    print(f"  matmul {settings.matmul_n}: {results['matmul_gflops']}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subjects = -(-(settings.warmup + settings.steps) * settings.batch_size // 16) + 1
        root = generate_phantom(Path(tmp) / "phantom", train_subjects=subjects, val_subjects=1, slices=16,
                                size=settings.image_size)
        if "train" in settings.parts:
            # first: the process holds no other training's memory yet (its high-water mark is reset too)
            results["train_peak_memory_mb"], results["train_peak_memory_batch_size"] = training_peak_mb(root, settings)
            results["train_images_per_s"] = training_rates(datamodule(root, settings), settings, default)
            results["train_gflop_per_image"] = training_gflop(settings)
        if "data" in settings.parts:
            results["data_images_per_s"] = data_rates(root, settings)
        if "infer" in settings.parts:
            results["inference"] = inference_rates(settings, Path(tmp))
        if "segment" in settings.parts:  # at the shipped model's size
            shipped = generate_phantom(Path(tmp) / "phantom256", train_subjects=1, val_subjects=2, slices=16, size=256)
            results["segment"] = segment_rates(shipped, settings)
        if "volume" in settings.parts:
            results["volume"] = volume_rates(settings, Path(tmp))
    results["summary"] = summarize(results)
    return results
