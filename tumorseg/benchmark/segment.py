"""The shipped model through evaluate/predict's segmentation path (its TTA and members), in slices/s, each way
evaluate and predict may run it side by side."""

import time
from pathlib import Path
from types import MappingProxyType

from omegaconf import OmegaConf

from tumorseg.benchmark.settings import BenchSettings
from tumorseg.inference.hardware import cpu_has_bf16

# way: (runtime=, precision=). "auto" is what this machine gets by default.
WAYS = MappingProxyType({
    "PyTorch fp32 (runtime=pytorch precision=32)": ("pytorch", "32"),
    "PyTorch bf16 (runtime=auto on a CPU with bf16 or a GPU)": ("pytorch", "bf16"),
    "ONNX Runtime int8 export (runtime=auto on a CPU without bf16)": ("onnxruntime", "auto"),
    "default here (runtime=auto, precision=auto)": ("auto", "auto"),
})
FP32, INT8 = "PyTorch fp32", "ONNX Runtime int8"  # how the summary finds those ways' rows


def segment_rates(root: Path, settings: BenchSettings) -> dict[str, dict]:
    """'way': {slices_per_s, runs (as the runner describes itself), model (file name)} on root's val slices."""
    from tumorseg.data.decode import read_gray
    from tumorseg.inference.segment import segmenter_for

    files = sorted((root / "val" / "images").rglob("*.png"))[:settings.segment_slices]
    slices, names = [read_gray(f) for f in files], [Path(f.name) for f in files]
    out = {}
    for name, (runtime, precision) in WAYS.items():
        if precision == "bf16" and settings.device == "cpu" and not cpu_has_bf16():
            continue  # emulated bf16 is slower than fp32: not a way anyone would run
        options = {"runtime": runtime, "precision": precision, "device": settings.device}
        segmenter = segmenter_for(OmegaConf.create(options))
        segmenter.subject(slices[:1], names[:1])  # warm-up: first-call allocation, kernel choice
        start = time.perf_counter()
        segmenter.subject(slices, names)
        rate = len(slices) / (time.perf_counter() - start)
        out[name] = {"slices_per_s": rate, "runs": segmenter.runner.describe(), "model": segmenter.model.path.name}
        print(f"  segment {name}: {rate:.2f} slices/s ({out[name]['runs']}, {out[name]['model']})", flush=True)
    return out
