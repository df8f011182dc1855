"""Writing a net as ONNX: the graph (dynamic batch, ConvTranspose as conv + pixel shuffle) and its int8 quantization."""

import copy
import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch


def export_onnx(net: torch.nn.Module, shape: tuple[int, int, int], out: Path, opset: int = 17) -> Path:
    """Write `net` (eval mode) as ONNX with a dynamic batch axis: input 'image', output 'logits'."""
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, *shape)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and still the one that needs no extras
        warnings.simplefilter("ignore")
        torch.onnx.export(
            for_export(net.eval()), (example,), str(out), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )
    return out


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


def quantize_int8(src: Path, dst: Path, batches: Iterable[np.ndarray]) -> Path:
    """Static int8 quantization of src (per-channel 7-bit weights, uint8 activations) calibrated on batches.

    Weights use 7 of their 8 bits (reduce_range) so that one file gives the same numbers on every x86-64 CPU:
    without VNNI, ONNX Runtime's u8 x s8 kernels add pairs of products in int16 (VPMADDUBSW), which saturates
    once 2 x 255 x |w| exceeds 32767; with |w| <= 64 it cannot (experiments/lung/inference-int8/).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

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
