"""Load a trained net from a checkpoint (no pickled code) and turn images into probabilities."""

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from tumorseg.errors import UserError
from tumorseg.hardware import cpu_has_bf16
from tumorseg.models import LogitMean, UNet
from tumorseg.onnx_model import OnnxNet, read_metadata
from tumorseg.tta import augmented_probabilities, tta_choice

log = logging.getLogger("tumorseg")

# The shipped lung CT model (weights and config only); its model card sits beside it.
REFERENCE_MODEL = Path(__file__).resolve().parent / "reference" / "lung_unet.pt"


@dataclass
class Predictor:
    """A trained net with the preprocessing it was trained with."""

    net: torch.nn.Module
    image_size: int
    mean: float
    std: float
    source: str
    context_slices: int = 0
    threshold: float = 0.5  # the model file's own choices (tumorseg ship threshold= tta=)
    tta: bool | str = False  # tumorseg.tta.tta_choice
    seed_threshold: float = 0.0  # 3D seeded regions (tumorseg.postprocess); <= threshold: off
    bf16: bool = False  # bf16 autocast (use_precision)
    device: torch.device = torch.device("cpu")  # where the net runs (use_device); inputs and outputs stay on the CPU

    @property
    def channels(self) -> int:
        """Input channels: slice K and its neighbours."""
        return 1 + 2 * self.context_slices

    def to_tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        """uint8 images, image_size square (H x W, or C x H x W with neighbours) -> normalized N x C x H x W."""
        batch = torch.from_numpy(np.stack(images)).float().div_(255.0).sub_(self.mean).div_(self.std)
        return batch[:, None] if batch.ndim == 3 else batch

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        # channels_last: 1.6x the images/s of NCHW in fp32 on CPU, same numbers (experiments/BENCHMARKS.md)
        x = x.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(x.contiguous(memory_format=torch.channels_last))
        return out.float().cpu().contiguous()

    def probabilities(self, x: torch.Tensor, tta: bool | str = False) -> torch.Tensor:
        """Sigmoid probabilities; with tta (True: flip, "affine"), averaged over views (tumorseg.tta)."""
        return augmented_probabilities(lambda view: torch.sigmoid(self.logits(view)), x, tta)


def load_checkpoint(path: str | Path) -> dict:
    """torch.load with weights_only=True: a file that needs pickled code is refused."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ckpt_path={path} is not a file: point it at a run's checkpoints/*.ckpt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).splitlines()[-1] if str(err) else "unsupported content"
        raise UserError(f"{path} needs code execution to load and is refused ({reason[:160]}): "
                        f"use a checkpoint written by tumorseg") from None
    except Exception as err:  # a truncated or foreign file
        raise UserError(f"{path} is not a readable checkpoint ({type(err).__name__}): use a tumorseg .ckpt") from None


def model_path(cfg) -> Path:
    """cfg.ckpt_path, else the shipped reference model."""
    if cfg.get("ckpt_path"):
        return Path(cfg.ckpt_path).expanduser()
    if not REFERENCE_MODEL.is_file():
        raise UserError(f"ckpt_path is not set and the reference model {REFERENCE_MODEL} is missing: "
                        f"set ckpt_path=<run dir>/checkpoints/last.ckpt")
    log.info("ckpt_path not set: using the reference model %s (model card: %s)",
             REFERENCE_MODEL, REFERENCE_MODEL.with_name("MODEL_CARD.md"))
    return REFERENCE_MODEL


def load_predictor(ckpt_path: str | Path) -> Predictor:
    """Rebuild the net from the config stored in the checkpoint file and load its weights; or run an exported .onnx."""
    if Path(ckpt_path).suffix == ".onnx":
        return onnx_predictor(Path(ckpt_path))
    return predictor_of(load_checkpoint(ckpt_path), ckpt_path)


# The Predictor fields an exported .onnx carries in its metadata (the net is the file itself).
EXPORTED_FIELDS = ("image_size", "mean", "std", "context_slices", "threshold", "tta", "seed_threshold")


def onnx_predictor(path: Path) -> Predictor:
    """The Predictor of a model written by python -m tumorseg.export (fp32 or int8), run by ONNX Runtime."""
    info = read_metadata(path)
    missing = {*EXPORTED_FIELDS, "precision"} - set(info)
    if missing:
        raise UserError(f"{path} lacks {', '.join(sorted(missing))} in its tumorseg metadata: export it again with "
                        f"this version (python -m tumorseg.export)")
    return Predictor(net=OnnxNet(path, info["precision"]), source=str(path), **{k: info[k] for k in EXPORTED_FIELDS})


def export_metadata(predictor: Predictor, precision: str) -> dict:
    """What onnx_predictor reads back from an exported file (and the name of the file it came from)."""
    return {**{k: getattr(predictor, k) for k in EXPORTED_FIELDS}, "precision": precision,
            "source": Path(predictor.source).name}


def predictor_of(ckpt: dict, ckpt_path: str | Path) -> Predictor:
    """The Predictor of a loaded checkpoint dict (UserError naming ckpt_path when it is not tumorseg's)."""
    config = ckpt.get("hyper_parameters", {}).get("run_config")
    if not config or "model" not in config or "state_dict" not in ckpt:
        raise UserError(f"{ckpt_path} holds no tumorseg model config: use a checkpoint written by tumorseg.train")
    # The net is rebuilt by name, not by the file's _target_: a checkpoint cannot choose code to run.
    net = build_net(config["model"], int(ckpt.get("members") or 1))
    net.load_state_dict(net_weights(ckpt))
    data = config["data"]
    net = net.eval().to(memory_format=torch.channels_last)
    chosen = ckpt.get("inference") or {}
    return Predictor(net, int(data["image_size"]), float(data["mean"]), float(data["std"]), str(ckpt_path),
                     int(data.get("context_slices") or 0), float(chosen.get("threshold", 0.5)),
                     tta_choice(chosen.get("tta", False)), float(chosen.get("seed_threshold", 0.0)))


def net_weights(ckpt: dict) -> dict:
    """The net's state_dict inside a checkpoint or model file (the LightningModule's "net." entries)."""
    return {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}


def build_net(model: dict, members: int = 1) -> torch.nn.Module:
    """The UNet of a model config; with members > 1, that many of them as one LogitMean ensemble."""
    def unet():
        return UNet(**{k: v for k, v in model.items() if not k.startswith("_")})
    return unet() if members == 1 else LogitMean([unet() for _ in range(members)])


class Choices(NamedTuple):
    """The evaluation choices in force: pixel threshold, TTA, 3D seed threshold (<= threshold: off), largest 3D region only."""

    threshold: float
    tta: bool | str
    seed_threshold: float
    largest_3d: bool = False


def inference_settings(cfg, predictor: Predictor) -> Choices:
    """threshold, tta and postprocess.seed_threshold: the command's when set, else the model file's; postprocess.largest_3d."""
    threshold = predictor.threshold if cfg.get("threshold") is None else float(cfg.threshold)
    if not 0 < threshold < 1:  # the command's own threshold= is checked with its other options
        raise UserError(f"{predictor.source} stores threshold {threshold}, outside (0, 1): set threshold= (e.g. "
                        f"threshold=0.5), or re-ship the model with tumorseg ship threshold=")
    tta = predictor.tta if cfg.get("tta") is None else tta_choice(cfg.tta)
    seed = cfg.get("postprocess", {}).get("seed_threshold")
    seed = predictor.seed_threshold if seed is None else float(seed)
    if not 0 <= seed <= 1:
        raise UserError(f"postprocess.seed_threshold={seed} must be between 0 (off) and 1: e.g. 0.7")
    largest = cfg.get("postprocess", {}).get("largest_3d") or False
    if not isinstance(largest, bool):
        raise UserError(f"postprocess.largest_3d={largest} must be true or false")
    return Choices(threshold, tta, seed, largest)


PRECISIONS = ("auto", "32", "bf16")


def use_precision(cfg, predictor: Predictor) -> str:
    """Set predictor.bf16 from cfg.precision (auto: bf16 on GPUs and CPUs with bf16 arithmetic); returns "bf16" or "32".

    An ONNX model runs in the arithmetic it was exported in: returns its "32" or "int8".
    """
    precision = str(cfg.get("precision") or "auto")
    if precision not in PRECISIONS:
        raise UserError(f"precision={precision} is not one of {', '.join(PRECISIONS)}: "
                        f"auto (bf16 on a GPU or where the CPU has bf16 instructions), 32 or bf16")
    if isinstance(predictor.net, OnnxNet):  # an exported model runs as it was written
        if precision == "bf16":
            raise UserError(f"precision=bf16 does not apply to the ONNX model {predictor.source}: it runs in "
                            f"{predictor.net.precision} as exported; use precision=auto")
        return predictor.net.precision
    # bf16 gives the same Dice to 0.001 on the real val and held-out subjects, at 2.2x the images/s in the benchmark
    # on a CPU with avx512_bf16 (experiments/lung/inference-bf16.md).
    native = torch.cuda.is_bf16_supported() if predictor.device.type == "cuda" else cpu_has_bf16()
    predictor.bf16 = precision == "bf16" or (precision == "auto" and native)
    return "bf16" if predictor.bf16 else "32"


def use_device(cfg, predictor: Predictor) -> str:
    """Move the net to cfg.device (auto: the first CUDA GPU if there is one, else the CPU; an ONNX model: the CPU)."""
    name = str(cfg.get("device") or "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() and not isinstance(predictor.net, OnnxNet) else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"device={name} is not one of auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and isinstance(predictor.net, OnnxNet):
        raise UserError(f"device={name}: the ONNX model {predictor.source} runs on the CPU here; use device=cpu "
                        f"(or a .ckpt/.pt model on the GPU)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name}: no CUDA GPU is visible to PyTorch here; use device=cpu (or auto)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"device={name}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0 to "
                        f"cuda:{torch.cuda.device_count() - 1}")
    predictor.net.to(device)
    predictor.device = device
    return str(device)
