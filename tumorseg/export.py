"""Export a checkpoint to ONNX (dynamic batch) and check it against PyTorch with ONNX Runtime.

    python -m tumorseg.export ckpt_path=CKPT output=model.onnx
"""

import warnings
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from tumorseg import CONF_DIR
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.inference import load_predictor, model_path


def export_onnx(net: torch.nn.Module, shape: tuple[int, int, int], out: Path, opset: int = 17) -> Path:
    """Write `net` (eval mode) as ONNX with a dynamic batch axis: input 'image', output 'logits'."""
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, *shape)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and still the one that needs no extras
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(), (example,), str(out), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )
    return out


def export(cfg: DictConfig) -> tuple[Path, float]:
    """Write the ONNX model; return (path, max |onnx - torch| of the logits on random input)."""
    import onnxruntime as ort

    predictor = load_predictor(model_path(cfg))
    size, channels = predictor.image_size, predictor.channels
    out = export_onnx(predictor.net.to(memory_format=torch.contiguous_format), (channels, size, size),
                      Path(cfg.output).expanduser(), cfg.opset)
    x = torch.randn(cfg.check_batch, channels, size, size, generator=torch.Generator().manual_seed(0))
    expected = predictor.logits(x).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"image": x.numpy()})
    return out, float(np.abs(got - expected).max())


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    out, diff = export(cfg)
    print(f"written: {out} (input 'image' N x C x H x W, C = 1 + 2 * context_slices, normalized as in training; output 'logits')")
    print(f"max abs difference onnxruntime vs torch: {diff:.2e}")
    if diff > cfg.tolerance:
        raise UserError(f"ONNX output differs from PyTorch by {diff:.2e} > tolerance={cfg.tolerance}: "
                        f"try another opset=")
    return diff


if __name__ == "__main__":
    main()
