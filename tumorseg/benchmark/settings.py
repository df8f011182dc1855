"""BenchSettings: the options of conf/bench.yaml, checked once, and the counts they imply (frozen: every
measurement reads the same settings, none changes them)."""

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch

from tumorseg.benchmark.configs import TRAIN_MODELS, train_config
from tumorseg.errors import UserError

PARTS = ("train", "data", "infer", "segment", "volume")
DEVICES = ("cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What one bench run measures and how long. The counts below `compile` follow from quick and device."""

    device: str  # cpu | cuda
    quick: bool
    parts: tuple[str, ...]  # some of PARTS, in the order given
    batch_size: int
    image_size: int  # divides by 2**depth of every timed model
    steps: int  # timed training steps per figure
    out: Path
    compile: bool  # time torch.compile too
    warmup: int  # untimed steps before a timer starts
    seed_steps: int  # timed steps of the slow unet_seed
    data_batches: int
    infer_reps: int
    matmul_n: int
    segment_slices: int
    volume_slices: int

    def as_json(self) -> dict:
        """The settings as the report's `args` (parts as typed: a comma string)."""
        return {**dataclasses.asdict(self), "parts": ",".join(self.parts), "out": str(self.out)}


def parts_of(given) -> tuple[str, ...]:
    """parts=[train,infer] or parts='train,infer' as a tuple, each part once; an unknown part is refused."""
    names = given.split(",") if isinstance(given, str) else given if isinstance(given, list) else [given]
    names = [str(n).strip() for n in names]
    known = f"the parts are {', '.join(PARTS)}: e.g. parts=[train,infer]"
    if not any(names):
        raise UserError(f"parts= names no part; {known}")
    for name in names:
        if name not in PARTS:
            raise UserError(f"parts: {name!r} is not a part of bench; {known}")
    return tuple(dict.fromkeys(names))


def device_of(given) -> str:
    if given not in DEVICES:
        raise UserError(f"device={given} is not one of {', '.join(DEVICES)}: use device=cpu or device=cuda")
    if given == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda, but torch sees no GPU here: run with device=cpu")
    return given


def check_image_size(image_size: int, parts: tuple[str, ...], device: str) -> None:
    """Every timed model halves the image depth times; data and inference time only the default model."""
    timed = TRAIN_MODELS if "train" in parts else ("unet",)
    step = 2 ** max(train_config(device, f"model={m}").model.depth for m in timed)
    if image_size % step:
        raise UserError(f"image_size={image_size} does not divide by {step} (2**depth of the deepest timed "
                        f"model): use image_size={max(step, image_size // step * step)}")


def settings_from(options: Mapping) -> BenchSettings:
    """BenchSettings of conf/bench.yaml's options (a plain dict); a UserError names the first wrong one."""
    device, parts, quick = device_of(options["device"]), parts_of(options["parts"]), bool(options["quick"])
    if not isinstance(options["out"], str) or not options["out"]:
        raise UserError(f"out={options['out']} is not a folder: e.g. out=outputs/bench")
    if options["compile"] not in (None, True, False):
        raise UserError(f"compile={options['compile']} must be true, false or null (null: yes unless quick=true)")
    image_size = min(options["image_size"], 128) if quick else options["image_size"]
    check_image_size(image_size, parts, device)
    warmup, seed_steps = (1, 1) if quick else (2, 3)
    data_batches, infer_reps, matmul_n = (5, 3, 1024) if quick else (20, 10, 2048)
    if device == "cuda":  # cuDNN autotunes in the first steps; a GPU needs big products to reach its peak
        warmup, infer_reps, matmul_n = warmup + 3, infer_reps * 5, 8192
    return BenchSettings(
        device=device, quick=quick, parts=parts, batch_size=options["batch_size"], image_size=image_size,
        steps=min(options["steps"], 3) if quick else options["steps"], out=Path(options["out"]),
        compile=not quick if options["compile"] is None else options["compile"], warmup=warmup,
        seed_steps=seed_steps, data_batches=data_batches, infer_reps=infer_reps, matmul_n=matmul_n,
        segment_slices=2 if quick else 24, volume_slices=2 if quick else 32)
