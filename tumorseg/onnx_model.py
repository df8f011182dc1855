"""ONNX models that evaluate and predict can run: the preprocessing in the file's metadata, int8 quantization."""

import copy
import json
import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from tumorseg.errors import UserError

METADATA_KEY = "tumorseg"  # JSON: what a Predictor needs besides the net (size, normalization, choices)


class OnnxNet(torch.nn.Module):
    """An ONNX Runtime session behind the nn.Module interface: N x C x H x W logits on the CPU."""

    def __init__(self, path: Path, precision: str):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as PyTorch would: the cores it is allowed
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.precision = precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {"image": x.float().contiguous().numpy()})
        return torch.from_numpy(logits)


class UpAsConv(torch.nn.Module):
    """ConvTranspose2d(kernel 2, stride 2) as a 1x1 conv to 4x the channels and a channels-last pixel shuffle.

    The same numbers; ONNX Runtime then keeps the decoder in int8 and NHWC from end to end: 1.3-1.4x the int8
    slices/s of the plain graph, where ConvTranspose ran in fp32 between layout transposes
    (experiments/lung/inference-int8/).
    """

    def __init__(self, up: torch.nn.ConvTranspose2d):
        super().__init__()
        cin, cout = up.in_channels, up.out_channels
        self.out_channels = cout
        self.conv = torch.nn.Conv2d(cin, 4 * cout, 1, bias=up.bias is not None)
        with torch.no_grad():  # output channel a*2C + b*C + o holds the weight of pixel (a, b) of channel o
            self.conv.weight.copy_(up.weight.permute(2, 3, 1, 0).reshape(4 * cout, cin, 1, 1))
            if up.bias is not None:
                self.conv.bias.copy_(up.bias.repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.conv(x).permute(0, 2, 3, 1).reshape(-1, h, w, 2, 2, self.out_channels)
        return y.permute(0, 1, 3, 2, 4, 5).reshape(-1, 2 * h, 2 * w, self.out_channels).permute(0, 3, 1, 2)


def for_export(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of net with each 2x2 stride-2 ConvTranspose2d replaced by its UpAsConv."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if (isinstance(child, torch.nn.ConvTranspose2d) and child.kernel_size == child.stride == (2, 2)
                    and child.padding == (0, 0) and child.output_padding == (0, 0) and child.groups == 1
                    and child.dilation == (1, 1)):
                setattr(module, name, UpAsConv(child))
    return net


def write_metadata(path: Path, info: dict) -> None:
    """Store info (JSON) in the ONNX file's metadata_props under METADATA_KEY."""
    import onnx

    model = onnx.load(str(path))
    entry = next((p for p in model.metadata_props if p.key == METADATA_KEY), None) or model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    onnx.save(model, str(path))


def read_metadata(path: Path) -> dict:
    """The tumorseg metadata of an ONNX file (UserError naming the file when it has none or is not ONNX)."""
    import onnx

    if not path.is_file():
        raise UserError(f"ckpt_path={path} is not a file: point it at a model written by python -m tumorseg.export")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # truncated or foreign file
        raise UserError(f"{path} is not a readable ONNX model ({type(err).__name__}): "
                        f"write one with python -m tumorseg.export") from None
    value = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    if value is None:
        raise UserError(f"{path} has no tumorseg metadata (image size, normalization): "
                        f"write it with python -m tumorseg.export")
    return json.loads(value)


def quantize_int8(src: Path, dst: Path, batches: Iterable[np.ndarray]) -> Path:
    """Static int8 quantization of src (per-channel 7-bit weights, uint8 activations) calibrated on batches.

    Weights use 7 of their 8 bits (reduce_range) so that one file gives the same numbers on every x86-64 CPU:
    without VNNI, ONNX Runtime's u8 x s8 kernels add pairs of products in int16 (VPMADDUBSW), which saturates
    once 2 x 255 x |w| exceeds 32767; with |w| <= 64 it cannot (experiments/lung/inference-int8/).
    """
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch}

    prepared = dst.with_name(dst.stem + ".prep.onnx")  # shapes inferred and graph folded (BatchNorm into Conv)
    quant_pre_process(str(src), str(prepared))
    notice = ShapeTensorNotice()
    logging.getLogger().addFilter(notice)
    try:
        # QOperator: QLinearConv kernels (VNNI or AMX where the CPU has them, AVX2 elsewhere); 2.2x fp32 ONNX Runtime
        # on a VNNI CPU with the same Dice (experiments/lung/inference-int8/).
        quantize_static(str(prepared), str(dst), Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().removeFilter(notice)
        prepared.unlink(missing_ok=True)
    return dst


class ShapeTensorNotice(logging.Filter):
    """Drops the quantizer's multi-line notice that it leaves an integer shape tensor unquantized."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Inference failed or unsupported type to quantize")
