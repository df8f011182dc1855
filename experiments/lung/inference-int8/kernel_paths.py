"""Val figures of an int8 .onnx on two ONNX Runtime kernel paths: this CPU's, and AVX2 without VNNI.

    python experiments/lung/inference-int8/kernel_paths.py MODEL.onnx <data>/val OUT.json

ONNX Runtime picks its int8 kernels from the CPU it runs on (VNNI/AMX, else AVX2's VPMADDUBSW,
which adds pairs of u8 x s8 products in int16 and can saturate). To score the AVX2 path on a CPU
that has VNNI, `evaluate` runs here once while every batch the ONNX model receives is recorded;
ONNX Runtime alone then runs those batches under `qemu-x86_64 -cpu Haswell-v4` (user-mode
emulation of an AVX2 CPU with neither AVX-512 nor VNNI); `evaluate` runs again with the emulated
outputs in place of the net's. PyTorch itself crashes under the emulator, so only ONNX Runtime
is emulated; everything around the net is the same code on both paths.
Needs Debian's qemu-user.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module

from tumorseg import CONF_MODULE
from tumorseg.evaluate import evaluate
from tumorseg.inference.runtime import OnnxNet

EMULATED_CPU = "Haswell-v4"  # AVX2 + FMA, no AVX-512, no VNNI
RUN_BATCHES = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
inputs = np.load(sys.argv[2])
np.savez(sys.argv[3], **{k: session.run(None, {"image": inputs[k]})[0] for k in inputs.files})
"""


def score(model: Path, val: Path, forward) -> dict:
    """evaluate's figures for model on val with OnnxNet.forward replaced by forward (the command's defaults: the
    model file's threshold and TTA; no viewer pages)."""
    original = OnnxNet.forward
    OnnxNet.forward = forward
    try:
        with tempfile.TemporaryDirectory() as out, initialize_config_module(CONF_MODULE, version_base="1.3"):
            cfg = compose("evaluate", overrides=[f"ckpt_path={model}", f"data_dir={val}", "device=cpu", "viewer=false",
                                                 "paths.root_dir=.", f"paths.output_dir={out}"])
            return evaluate(cfg)
    finally:
        OnnxNet.forward = original


def main(model: Path, val: Path, out: Path) -> None:
    recorded: list[np.ndarray] = []
    native_outputs: list[np.ndarray] = []

    def record(net, x):
        recorded.append(x.float().contiguous().numpy().copy())
        native_outputs.append(net.session.run(None, {"image": recorded[-1]})[0])
        return torch.from_numpy(native_outputs[-1])

    native = score(model, val, record)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **{f"b{i:05d}": x for i, x in enumerate(recorded)})
        subprocess.run(["qemu-x86_64", "-cpu", EMULATED_CPU, sys.executable, "-c", RUN_BATCHES, str(model), str(src),
                        str(dst)], check=True, stderr=subprocess.DEVNULL)
        emulated = np.load(dst)
        outputs = [emulated[f"b{i:05d}"] for i in range(len(recorded))]
    replayed = iter(zip(recorded, outputs))

    def replay(net, x):
        expected, logits = next(replayed)
        assert np.array_equal(x.float().numpy(), expected), "evaluate sent other batches the second time"
        return torch.from_numpy(logits)

    avx2 = score(model, val, replay)
    keys = ("dice", "dice_per_subject", "dice_per_slice", "precision", "recall")
    result = {"model": str(model), "data_dir": str(val), "batches": len(recorded),
              "max_abs_logit_difference": float(max(np.abs(a - b).max() for a, b in zip(outputs, native_outputs))),
              "native": {k: native[k] for k in keys}, f"avx2 ({EMULATED_CPU}, emulated)": {k: avx2[k] for k in keys}}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
