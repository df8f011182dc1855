"""The shipped model through evaluate/predict's segmentation path (its TTA and members), in slices/s, each way
evaluate and predict may run it side by side."""

import time
from pathlib import Path
from types import MappingProxyType

from omegaconf import OmegaConf

from tumorseg.benchmark.settings import BenchSettings
from tumorseg.inference.hardware import cpu_has_bf16

# way: (runtime=, precision=). "auto" is what this machine gets by default: on a CPU, the way it measured fastest.
WAYS = MappingProxyType({
    "PyTorch fp32 (runtime=pytorch precision=32)": ("pytorch", "32"),
    "PyTorch bf16 (runtime=pytorch precision=bf16)": ("pytorch", "bf16"),
    "ONNX Runtime int8 export (runtime=onnxruntime)": ("onnxruntime", "auto"),
    "default here (runtime=auto, precision=auto)": ("auto", "auto"),
})
FP32, INT8, AUTO = "PyTorch fp32", "ONNX Runtime int8", "default here"  # how the summary finds those ways' rows


def segment_rates(root: Path, settings: BenchSettings) -> dict[str, dict]:
    """'way': {slices_per_s, over_fastest, runs (as the runner describes itself), model (file name)[, chosen_by,
    same_as]} on root's val slices. The default's row names the way runtime=auto picked (chosen_by: what it
    measured) and takes that way's figure (same_as), so that its ratio to the fastest is the pick's, not the
    noise between two timings of one way."""
    from tumorseg.data.decode import read_gray
    from tumorseg.inference.segment import segmenter_for

    files = sorted((root / "val" / "images").rglob("*.png"))[:settings.segment_slices]
    slices, names = [read_gray(f) for f in files], [Path(f.name) for f in files]
    out: dict[str, dict] = {}
    for name, (runtime, precision) in WAYS.items():
        if precision == "bf16" and settings.device == "cpu" and not cpu_has_bf16():
            continue  # emulated bf16 is slower than fp32: not a way anyone would run
        options = {"runtime": runtime, "precision": precision, "device": settings.device}
        segmenter = segmenter_for(OmegaConf.create(options))
        way = {"runs": segmenter.runner.describe(), "model": segmenter.model.path.name}
        same = next((k for k, v in out.items() if (v["runs"], v["model"]) == (way["runs"], way["model"])), None)
        if same is not None:
            way.update(slices_per_s=out[same]["slices_per_s"], same_as=same)
        else:
            segmenter.subject(slices[:1], names[:1])  # warm-up: first-call allocation, kernel choice
            start = time.perf_counter()
            segmenter.subject(slices, names)
            way["slices_per_s"] = len(slices) / (time.perf_counter() - start)
        if segmenter.runner.chosen_by:  # runtime=auto on a CPU: what it measured (or that it reused a measurement)
            way["chosen_by"] = segmenter.runner.chosen_by
        out[name] = way
        print(f"  segment {name}: {way['slices_per_s']:.2f} slices/s ({way['runs']}, {way['model']}"
              f"{', the row of ' + same if same else ''})", flush=True)
    fastest = max(way["slices_per_s"] for way in out.values())
    for way in out.values():
        way["over_fastest"] = way["slices_per_s"] / fastest
    return out
