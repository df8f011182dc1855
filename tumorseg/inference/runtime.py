"""Where and in what arithmetic a model runs: PyTorch on a CPU or GPU (fp32 or bf16), or ONNX Runtime (fp32, int8).

`runner_for(model, device=, precision=)` applies the settings in their one valid order (device first: the
automatic precision depends on it) and returns a Runner that maps normalized inputs to logits. `chosen_model` applies
an explicit runtime=; runtime=auto on a CPU measures the ways a model vouches for (inference/autotune.py).
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from tumorseg.errors import UserError
from tumorseg.inference.hardware import cpu_has_bf16
from tumorseg.inference.model_file import ModelFile, read

PRECISIONS = ("auto", "32", "bf16")
RUNTIMES = ("auto", "pytorch", "onnxruntime")


class OnnxNet(nn.Module):
    """An ONNX Runtime session behind the nn.Module interface: N x C x H x W logits on the CPU."""

    def __init__(self, path: Path):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as PyTorch would: the cores it is allowed
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - a graph ONNX Runtime cannot run
            raise UserError(f"{path}: ONNX Runtime cannot run this graph ({str(err).splitlines()[0][:160]}): "
                            f"export it again with tumorseg export") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {"image": x.float().contiguous().numpy()})
        return torch.from_numpy(logits)


@dataclass
class Runner:
    """A net placed on its device, in its arithmetic: normalized N x C x H x W inputs (CPU) -> logits (CPU, fp32)."""

    net: nn.Module
    device: torch.device
    precision: str  # "32", "bf16" (PyTorch) or the ONNX file's "32" / "int8"
    runtime: str  # "pytorch" or "onnxruntime"
    chosen_by: str = ""  # how runtime=auto chose this way (inference/autotune.py); empty when it was not measured

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.runtime == "onnxruntime":
            return self.net(x)
        # channels_last: 1.6x the images/s of NCHW in fp32 on CPU, same numbers (experiments/BENCHMARKS.md)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.net(x.contiguous(memory_format=torch.channels_last))
        return out.float().cpu().contiguous()

    def describe(self) -> str:
        arithmetic = "fp32" if self.precision == "32" else self.precision
        return f"{self.runtime} {arithmetic} on {self.device}"


def int8_export_of(model: ModelFile) -> Path:
    """Where a model's int8 export sits when it has one: beside it, <stem>.int8.onnx (tumorseg export quantize=int8)."""
    return model.path.with_name(model.path.stem + ".int8.onnx")


def fp32_export_of(model: ModelFile) -> Path:
    """Where a model's fp32 ONNX export sits when it has one: beside it, <stem>.onnx (tumorseg export)."""
    return model.path.with_suffix(".onnx")


def vouched_export(model: ModelFile, path: Path) -> ModelFile | None:
    """The ONNX file at path when it is an export of this very model with its current choices (its preprocessing,
    stored choices and source file name), else None: a file of another model under that name is not this one's."""
    if not path.is_file():
        return None
    onnx = read(path)
    same = (onnx.preprocessing, onnx.stored, onnx.source) == (model.preprocessing, model.stored, model.path.name)
    return onnx if same else None


def chosen_model(model: ModelFile, runtime: str = "auto") -> ModelFile:
    """The file that runs for runtime=: the model itself (pytorch; auto, where inference/autotune.py may then
    measure the exports the model vouches for against it), or its int8 export (onnxruntime)."""
    if runtime not in RUNTIMES:
        raise UserError(f"runtime={runtime} is not one of {', '.join(RUNTIMES)}: auto (the fastest way this machine "
                        f"measures), pytorch, onnxruntime (the int8 export beside the model)")
    if model.is_onnx:
        if runtime == "pytorch":
            raise UserError(f"runtime=pytorch: {model.path} is an ONNX model; give its .ckpt/.pt, or runtime=auto")
        return model
    if runtime != "onnxruntime":
        return model
    export = int8_export_of(model)
    if not export.is_file():
        raise UserError(f"runtime=onnxruntime: {model.path} has no export beside it at {export}: write it with "
                        f"tumorseg export ckpt_path={model.path} output={export} quantize=int8 calibration_dir=...")
    onnx = vouched_export(model, export)
    if onnx is None:
        raise UserError(f"runtime=onnxruntime: {export} is not an export of {model.path} with its current choices: "
                        f"export it again (tumorseg export ... overwrite=true)")
    return onnx


def runner_for(model: ModelFile, device: str | None = "auto", precision: str | None = "auto") -> Runner:
    """The model's net ready to run: device= (auto: the first CUDA GPU, else the CPU) then precision= (auto: bf16
    on GPUs and on CPUs with bf16 arithmetic, else fp32). An .onnx runs on the CPU in the arithmetic it was
    exported in."""
    precision = str(precision or "auto")
    if precision not in PRECISIONS:
        raise UserError(f"precision={precision} is not one of {', '.join(PRECISIONS)}: "
                        f"auto (bf16 on a GPU or where the CPU has bf16 instructions), 32 or bf16")
    place = torch_device(str(device or "auto"), model)
    if model.is_onnx:
        if precision == "bf16":
            raise UserError(f"precision=bf16 does not apply to the ONNX model {model.path}: it runs in "
                            f"{model.onnx_precision} as exported; use precision=auto")
        return Runner(OnnxNet(model.path), place, model.onnx_precision, "onnxruntime")
    net = fold_batch_norms(model.net()).to(place).to(memory_format=torch.channels_last)
    # bf16 gives the same Dice to 0.001 on the real val and held-out subjects, at 2.2x the images/s in the benchmark
    # on a CPU with avx512_bf16 (experiments/lung/inference-bf16.md).
    native = torch.cuda.is_bf16_supported() if place.type == "cuda" else cpu_has_bf16()
    bf16 = precision == "bf16" or (precision == "auto" and native)
    return Runner(net, place, "bf16" if bf16 else "32", "pytorch")


def fold_batch_norms(net: nn.Module) -> nn.Module:
    """net (in eval mode) with every BatchNorm2d that follows a Conv2d in a Sequential folded into that conv's
    weights: the same outputs to float rounding, without the separate normalization pass (a fifth of a U-Net's
    inference time on a CPU). For inference only: the folded net does not train."""
    for module in list(net.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = module._modules[first], module._modules[second]
            if (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and not conv.training
                    and not norm.training and norm.running_mean is not None):
                module._modules[first], module._modules[second] = fuse_conv_bn_eval(conv, norm), nn.Identity()
    return net


def torch_device(name: str, model: ModelFile) -> torch.device:
    """The torch.device of a device= setting, checked against this machine and the model's runtime."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() and not model.is_onnx else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"device={name} is not one of auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and model.is_onnx:
        raise UserError(f"device={name}: the ONNX model {model.path} runs on the CPU here; use device=cpu "
                        f"(or a .ckpt/.pt model on the GPU)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name}: no CUDA GPU is visible to PyTorch here; use device=cpu (or auto)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"device={name}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0 to "
                        f"cuda:{torch.cuda.device_count() - 1}")
    return device
