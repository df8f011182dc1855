"""The model file: a net's config and weights, its preprocessing, inference choices and members; .ckpt, .pt, .onnx.
(One model of several, an ensemble, a soup or two stages: tumorseg.inference.combining.)

Every command reads a model through `read` and writes one through `save` (a .pt made by ship), `mark` (training's
.ckpt) or `onnx_metadata` (an .onnx made by export); nothing else knows the layout below.

Layout of a .ckpt / .pt (torch.save of plain data: it loads with weights_only=True, no pickled code):
    tumorseg_format   FORMAT_VERSION (absent in files written before the format had a version: read as 0)
    state_dict        the net's weights, keys prefixed "net." (a Lightning checkpoint's own layout)
    hyper_parameters  {"run_config": the training run's resolved config}: model = the net, data = its preprocessing
    members           number of nets averaged (LogitMean), absent or 1 for one net
    inference         {"threshold", "tta", "seed_threshold"}: the choices made for the model on held-out subjects
    source            where the weights came from (checkpoint name, epoch, step; or the list of an ensemble's)
    stage2            (format 2) a two-stage model's crop model, its entries in this layout (its training's data.crops
                      says how it crops; its inference.threshold: stage 1's probability that proposes a region)
An .onnx holds the net as its graph and the rest as JSON in its metadata_props under METADATA_KEY.
"""

import errno
import json
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from tumorseg.data.preprocessing import Preprocessing, hu_window
from tumorseg.errors import UserError
from tumorseg.files.output_files import replacing
from tumorseg.inference.tta import tta_choice
from tumorseg.models import build_net

FORMAT_VERSION = 2  # 2: a stage2 entry may hold a crop model; every older format reads as it is
ONE_STAGE_FORMAT = 1  # what a file without stage2 is written as, so that a tumorseg of format 1 still reads it
FORMAT_KEY = "tumorseg_format"
METADATA_KEY = "tumorseg"
SUFFIXES = (".ckpt", ".pt", ".onnx")
# The shipped lung CT model (weights and config only); its model card sits beside it.
REFERENCE_MODEL = Path(__file__).resolve().parents[1] / "reference" / "lung_unet.pt"  # tumorseg/reference/


@dataclass(frozen=True)
class Stored:
    """The inference choices a model file carries: pixel threshold, TTA, 3D seed threshold (<= threshold: off)."""

    threshold: float = 0.5
    tta: bool | str = False
    seed_threshold: float = 0.0

    @classmethod
    def of(cls, values: dict | None) -> "Stored":
        values = values or {}
        return cls(float(values.get("threshold", 0.5)), tta_choice(values.get("tta", False)),
                   float(values.get("seed_threshold", 0.0)))

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "tta": self.tta, "seed_threshold": self.seed_threshold}


@dataclass(frozen=True)
class ModelFile:
    """A model as every command sees it, whatever file it came from.

    weights: the net's state_dict (no "net." prefix; members' keys as LogitMean names them); None for an .onnx,
    whose net is its graph (onnx_precision "32" or "int8").
    """

    path: Path
    model: dict
    preprocessing: Preprocessing
    stored: Stored = Stored()
    members: int = 1
    weights: dict | None = None
    run_config: dict | None = None
    source: dict | str | None = None
    onnx_precision: str | None = None
    version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # a training checkpoint's other entries (optimizer, epoch, ...)
    stage2: "ModelFile | None" = None  # a two-stage model's crop model (tumorseg.inference.two_stage)

    @property
    def is_onnx(self) -> bool:
        return self.onnx_precision is not None

    def net(self) -> nn.Module:
        """The net with its weights, in eval mode (a PyTorch net; an .onnx is run by tumorseg.inference.runtime)."""
        if self.is_onnx:
            raise UserError(f"{self.path} is an ONNX model: it has no PyTorch weights; use the .ckpt or .pt it "
                            f"came from")
        net = build_net(self.model, self.members)
        try:
            net.load_state_dict(self.weights)
        except RuntimeError as err:
            first = str(err).split("\n\t", 2)[1] if "\n\t" in str(err) else str(err)[:200]
            raise UserError(f"{self.path}: its weights do not match its stored model config ({first.strip()[:200]}): "
                            f"the file was changed or assembled by hand; use a file written by tumorseg") from None
        return net.eval()

    def with_choices(self, stored: Stored, source=None) -> "ModelFile":
        return replace(self, stored=stored, source=self.source if source is None else source)


def model_path(ckpt_path: str | None, log=None) -> Path:
    """ckpt_path, else the shipped reference model."""
    if ckpt_path:
        return Path(ckpt_path).expanduser()
    if not REFERENCE_MODEL.is_file():
        raise UserError(f"ckpt_path is not set and the reference model {REFERENCE_MODEL} is missing: "
                        f"set ckpt_path=<run dir>/checkpoints/last.ckpt")
    if log is not None:
        log.info("ckpt_path not set: using the reference model %s (model card: %s)",
                 REFERENCE_MODEL, REFERENCE_MODEL.with_name("MODEL_CARD.md"))
    return REFERENCE_MODEL


def read(path: str | Path, option: str = "ckpt_path") -> ModelFile:
    """The model file at path (.onnx by its suffix, else a torch file); UserError naming option and file otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{option}={path} is not a file: point it at a run's checkpoints/*.ckpt, a model .pt or .onnx")
    if path.suffix == ".onnx":
        return of_onnx_metadata(read_onnx_metadata(path), path)
    return of_dict(load_dict(path), path)


def load_dict(path: Path) -> dict:
    """torch.load with weights_only=True: a file that needs pickled code is refused, a foreign one named."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        # Only a pickle that names a global (a class or function to call) needs code; anything else that fails
        # to unpickle is not a checkpoint at all (random bytes, another format).
        reason = next((line for line in text.splitlines() if "Unsupported global" in line), None)
        if reason is None:
            raise UserError(f"{path} is not a readable model file (not a PyTorch checkpoint): use a tumorseg "
                            f".ckpt, .pt or .onnx") from None
        reason = reason.split(" was not an allowed global")[0].replace("WeightsUnpickler error: ", "")
        raise UserError(f"{path} needs code execution to load and is refused ({reason.strip()[:160]}): "
                        f"use a checkpoint written by tumorseg") from None
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file
        raise UserError(f"{path} is not a readable checkpoint ({type(err).__name__}): use a tumorseg .ckpt") from None
    if not isinstance(content, dict):
        raise UserError(f"{path} holds a {type(content).__name__}, not a tumorseg model: use a .ckpt written by train")
    return content


def of_dict(content: dict, path: Path) -> ModelFile:
    """The ModelFile of a loaded .ckpt / .pt dict."""
    version = int(content.get(FORMAT_KEY, 0))
    if version > FORMAT_VERSION:
        raise UserError(f"{path} has model-file format {version}, this tumorseg reads up to {FORMAT_VERSION}: "
                        f"upgrade tumorseg")
    config = (content.get("hyper_parameters") or {}).get("run_config")
    if not isinstance(config, dict) or "model" not in config or "data" not in config \
            or not isinstance(content.get("state_dict"), dict):
        raise UserError(f"{path} holds no tumorseg model config: use a checkpoint written by tumorseg train")
    weights = {k.removeprefix("net."): v for k, v in content["state_dict"].items() if k.startswith("net.")}
    known = {FORMAT_KEY, "state_dict", "hyper_parameters", "members", "inference", "source", "stage2"}
    nested = content.get("stage2")  # a two-stage model's crop model, in this same layout
    stage2 = of_dict({FORMAT_KEY: version, **nested}, path) if isinstance(nested, dict) else None
    try:
        preprocessing = Preprocessing.of_data_config(config["data"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}: its run config's data settings cannot be read ({err}): use a checkpoint written by "
                        f"tumorseg train") from None
    return ModelFile(path, dict(config["model"]), preprocessing,
                     Stored.of(content.get("inference")), int(content.get("members") or 1), weights, config,
                     content.get("source") or {"checkpoint": path.name, "epoch": content.get("epoch"),
                                               "global_step": content.get("global_step")},
                     version=version, extra={k: v for k, v in content.items() if k not in known}, stage2=stage2)


def save(model: ModelFile, path: Path) -> Path:
    """Write model as a slim .pt (weights, run config, choices, members; no optimizer state) to path, a temporary
    file of output_files.replacing: torch's failed write (a full disk) is an OSError, as replacing reports it."""
    try:
        torch.save({FORMAT_KEY: format_of(model), **entries(model)}, path)
    except RuntimeError as err:  # torch's stream writer reports its failed writes so
        raise OSError(errno.EIO, str(err).splitlines()[0][:200] or "the write failed") from None
    return path


def format_of(model: ModelFile) -> int:
    """The oldest format that holds model: 2 only for a two-stage model."""
    return ONE_STAGE_FORMAT if model.stage2 is None else FORMAT_VERSION


def entries(model: ModelFile) -> dict:
    """model's entries in the layout above (a two-stage model's crop model nested under stage2)."""
    return {"state_dict": {f"net.{k}": v for k, v in model.weights.items()},
            "hyper_parameters": {"run_config": model.run_config}, "members": model.members,
            "inference": model.stored.as_dict(), "source": model.source,
            **({} if model.stage2 is None else {"stage2": entries(model.stage2)})}


def net_differences(model: ModelFile, wanted: dict) -> str:
    """The net settings in which model's net and the config `wanted` (a model group) differ, as model.k=stored
    items; empty when they build the same net."""
    keys = sorted((set(model.model) | set(wanted)) - {"_target_"})
    differ = [f"model.{k}={model.model.get(k)} (this run: {wanted.get(k)})" for k in keys
              if model.model.get(k) != wanted.get(k)]
    if model.model.get("_target_", "tumorseg.models.UNet") != wanted.get("_target_", "tumorseg.models.UNet"):
        differ.insert(0, f"model._target_={model.model.get('_target_')}")
    return ", ".join(differ)


def mark(checkpoint: dict) -> None:
    """Stamp a training checkpoint (Lightning's dict, as it is saved) with the format version."""
    checkpoint[FORMAT_KEY] = ONE_STAGE_FORMAT  # a training run's checkpoint holds one net


def onnx_metadata(model: ModelFile, precision: str) -> dict:
    """What an exported .onnx carries besides its graph (read back by of_onnx_metadata)."""
    return {"format_version": ONE_STAGE_FORMAT, **model.preprocessing.as_dict(), **model.stored.as_dict(),
            "precision": precision, "model": model.model, "members": model.members, "source": model.path.name}


def of_onnx_metadata(info: dict, path: Path) -> ModelFile:
    """The ModelFile of an exported .onnx's metadata (files of every format version)."""
    needed = {"image_size", "mean", "std", "context_slices", "threshold", "tta", "seed_threshold", "precision"}
    missing = needed - set(info)
    if missing:
        raise UserError(f"{path} lacks {', '.join(sorted(missing))} in its tumorseg metadata: export it again with "
                        f"this version (tumorseg export)")
    try:
        preprocessing = Preprocessing(int(info["image_size"]), float(info["mean"]), float(info["std"]),
                                      int(info["context_slices"]), hu_window(info.get("window")))
        stored = Stored.of(info)
    except (TypeError, ValueError, UserError) as err:
        raise UserError(f"{path}: its tumorseg metadata holds a value of the wrong type ({err}): "
                        f"export it again") from None
    return ModelFile(path, dict(info.get("model") or {}), preprocessing, stored, int(info.get("members") or 1),
                     source=info.get("source"), onnx_precision=str(info["precision"]),
                     version=int(info.get("format_version", 0)))


def write_onnx_metadata(path: Path, info: dict) -> None:
    """Store info (JSON) in the ONNX file's metadata_props under METADATA_KEY."""
    import onnx

    graph = onnx.load(str(path))
    entry = next((p for p in graph.metadata_props if p.key == METADATA_KEY), None) or graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    with replacing(path) as temp:
        onnx.save(graph, str(temp))


def read_onnx_metadata(path: Path) -> dict:
    """The tumorseg metadata of an ONNX file (UserError naming the file when it has none, or is not ONNX)."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - truncated or foreign file
        raise UserError(f"{path} is not a readable ONNX model ({type(err).__name__}): "
                        f"write one with tumorseg export") from None
    value = next((p.value for p in graph.metadata_props if p.key == METADATA_KEY), None)
    if value is None:
        raise UserError(f"{path} has no tumorseg metadata (image size, normalization): write it with tumorseg export")
    try:
        info = json.loads(value)
    except json.JSONDecodeError:
        info = None
    if not isinstance(info, dict):
        raise UserError(f"{path}: its tumorseg metadata is not a JSON object: export the model again (tumorseg export)")
    return info
