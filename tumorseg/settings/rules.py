"""The one rule set of every command's options (type, finiteness, range), checked before any work; and the
checks of a training config that need the machine (a C++ compiler for module.compile)."""

import math
import os
import shutil

from omegaconf import DictConfig, OmegaConf

from tumorseg.errors import UserError

# The largest side a net's input may be resized to (a 16384 x 16384 float slice alone is 1 GiB).
MAX_SIDE = 16384
# Lightning's own spellings (lightning.fabric.connector._PRECISION_INPUT): the choice is checked before training.
TRAIN_PRECISIONS = (64, 32, 16, "64", "32", "16", "bf16", "64-true", "32-true", "16-true", "bf16-true", "16-mixed",
                    "bf16-mixed", "transformer-engine", "transformer-engine-float16")
# The one rule set of every command's options, by their key in the composed config (a command checks the keys its
# config has; exit_on_user_error checks every command's). key: (type, test, what the test asks, an example); a type of
# None leaves the whole value to the test (lists, choices). A float is finite, and a bool is no number.
WINDOW_RULE = (None, lambda v: len(numbers(v, float)) == 2 and numbers(v, float)[1] > 0,
               "[LEVEL,WIDTH]: two finite numbers in HU, WIDTH > 0 (or null: per-slice min-max)", "[-600,1500]")
RULES = {
    "seed": (int, lambda v: v >= 0, ">= 0", 42),
    "threshold": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.5),
    "seed_threshold": (float, lambda v: 0 <= v <= 1, "between 0 (off) and 1", 0.7),
    "batch_size": (int, lambda v: v > 0, "> 0", 16),
    "max_pixels": (int, lambda v: v > 0, "> 0", 100_000_000),
    "max_voxels": (int, lambda v: v > 0, "> 0", 2_000_000_000),
    "image_size": (int, lambda v: 0 < v <= MAX_SIDE, f"between 1 and {MAX_SIDE}", 256),
    "steps": (int, lambda v: v > 0, "> 0", 10),
    "label": (None, lambda v: bool(numbers(v, int)) and all(x > 0 for x in numbers(v, int)),
              "a label value > 0 (0 is the background) or a list of them", "1 or label=[1,2]"),
    "preprocess.window": WINDOW_RULE,
    "data.window": WINDOW_RULE,
    "postprocess.min_size": (int, lambda v: v >= 0, ">= 0 (0: keep all)", 10),
    "postprocess.seed_threshold": (float, lambda v: 0 <= v <= 1, "between 0 (off) and 1", 0.7),
    "postprocess.largest_3d": (bool, lambda v: True, "", "true"),
    "viewer": (bool, lambda v: True, "", "false"),
    "overwrite": (bool, lambda v: True, "", "true"),
    "quick": (bool, lambda v: True, "", "true"),
    "quiet": (bool, lambda v: True, "", "true"),
    "opset": (int, lambda v: v >= 7, ">= 7", 17),
    "check_batch": (int, lambda v: v > 0, "> 0", 3),
    "tolerance": (float, lambda v: v > 0, "> 0", 1e-4),
    "calibration_slices": (int, lambda v: v > 0, "> 0", 64),
    "min_agreement": (float, lambda v: 0 <= v <= 1, "between 0 and 1", 0.9),
    "format": (None, lambda v: v in ("onnx", "web"), "onnx (an .onnx file) or web (a browser page folder)", "web"),
    "port": (int, lambda v: 0 <= v <= 65535, "between 0 (any free port) and 65535", 8000),
    "data.image_size": (int, lambda v: 0 < v <= MAX_SIDE, f"between 1 and {MAX_SIDE}", 256),
    "data.batch_size": (int, lambda v: v > 0, "> 0", 16),
    "data.num_workers": (int, lambda v: v >= 0, ">= 0", 2),
    "data.context_slices": (int, lambda v: v >= 0, ">= 0 (0: 2D)", 1),
    "data.mean": (float, lambda v: True, "", 0.5),
    "data.std": (float, lambda v: v > 0, "> 0", 0.25),
    "data.tumor_share": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.9),
    "data.train_crop": (int, lambda v: True, "(or null: whole slices)", 128),
    "data.crops.size": (int, lambda v: v >= 8, ">= 8 (or null: whole slices)", 64),
    "data.crops.input_size": (int, lambda v: 8 <= v <= MAX_SIDE, f"between 8 and {MAX_SIDE}", 128),
    "data.crops.margin": (int, lambda v: v >= 0, ">= 0", 8),
    "data.crops.negatives": (float, lambda v: 0 <= v <= 100, "between 0 and 100 (random crops per tumor crop)", 1.0),
    "data.crops.proposal_threshold": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.2),
    "data.crops.proposals_from": (str, lambda v: bool(v.strip()), "a stage-1 model file", "stage1.pt"),
    "proposal_threshold": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.2),
    "crop": (str, lambda v: bool(v.strip()), "a crop model's checkpoint", "crops/checkpoints/last.ckpt"),
    "data.mask_threshold": (int, lambda v: 0 <= v <= 254, "between 0 and 254 (a mask pixel above it is tumor)", 127),
    "data.strict": (bool, lambda v: True, "", "true"),
    "data.pin_memory": (bool, lambda v: True, "", "false"),
    "data.phantom.train_subjects": (int, lambda v: v >= 1, ">= 1", 10),
    "data.phantom.val_subjects": (int, lambda v: v >= 0, ">= 0", 3),
    "data.phantom.slices": (int, lambda v: v >= 1, ">= 1", 16),
    "data.phantom.size": (int, lambda v: v > 0, "> 0", 128),
    "data.phantom.seed": (int, lambda v: v >= 0, ">= 0", 0),
    "approach.k": (int, lambda v: v >= 2, ">= 2", 5),
    "approach.fold": (int, lambda v: v >= 0, ">= 0", 0),
    "approach.test_size": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.2),
    "approach.val_size": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.1),
    "approach.random_state": (int, lambda v: v >= 0, ">= 0", 42),
    "model.out_channels": (int, lambda v: v == 1, "1 (one tumor class)", 1),
    "model.base_channels": (int, lambda v: v > 0, "> 0", 16),
    "model.depth": (int, lambda v: v >= 1, ">= 1", 4),
    "model.flat_steps": (int, lambda v: v >= 0, ">= 0", 1),
    "model.dropout": (float, lambda v: 0 <= v < 1, "in [0, 1)", 0.1),
    "model.prior": (float, lambda v: 0 < v < 1, "between 0 and 1 (or null: PyTorch's init)", 0.01),
    "model.blocks": (int, lambda v: v >= 1, ">= 1", 2),
    "model.aspp_channels": (int, lambda v: v >= 1, ">= 1", 128),
    "model.low_level_channels": (int, lambda v: v >= 1, ">= 1", 32),
    "model.rates": (None, lambda v: bool(numbers(v, int)) and all(x > 0 for x in numbers(v, int)),
                    "a list of whole numbers > 0", "[6,12,18]"),
    "module.channels_last": (bool, lambda v: True, "", "true"),
    "module.compile": (bool, lambda v: True, "", "false"),
    "loss.smooth": (float, lambda v: v >= 0, ">= 0", 1.0),
    "loss.dice_weight": (float, lambda v: v >= 0, ">= 0", 1.0),
    "loss.bce_weight": (float, lambda v: v >= 0, ">= 0", 1.0),
    "loss.focal_weight": (float, lambda v: v >= 0, ">= 0", 1.0),
    "loss.gamma": (float, lambda v: v >= 0, ">= 0", 2.0),
    "loss.alpha": (float, lambda v: 0 <= v <= 1, "between 0 and 1", 0.3),
    "loss.beta": (float, lambda v: 0 <= v <= 1, "between 0 and 1", 0.7),
    "optimizer.lr": (float, lambda v: v > 0, "> 0", 0.001),
    "optimizer.weight_decay": (float, lambda v: v >= 0, ">= 0", 1e-4),
    "scheduler.T_max": (int, lambda v: v >= 1, ">= 1", 20),
    "scheduler.total_iters": (int, lambda v: v >= 1, ">= 1", 20),
    "scheduler.eta_min": (float, lambda v: v >= 0, ">= 0", 1e-6),
    "scheduler.max_lr": (float, lambda v: v > 0, "> 0", 0.001),
    "scheduler.pct_start": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.3),
    "scheduler.power": (float, lambda v: v > 0, "> 0", 0.9),
    "callbacks.model_checkpoint.save_top_k": (int, lambda v: v >= -1, ">= -1 (-1: all)", 1),
    "callbacks.last_checkpoint.save_top_k": (int, lambda v: v >= 1, ">= 1", 1),
    "callbacks.last_checkpoint.every_n_epochs": (int, lambda v: v >= 1, ">= 1", 1),
    "callbacks.prediction_pictures.n_slices": (int, lambda v: v >= 1, ">= 1", 6),
    "callbacks.ema.decay": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.995),
    "callbacks.ema.update_starting_at_epoch": (int, lambda v: v >= 0, ">= 0", 1),
    "trainer.max_epochs": (int, lambda v: v >= 1 or v == -1, ">= 1 (or -1: no limit)", 20),
    "trainer.min_epochs": (int, lambda v: v >= 0, ">= 0", 1),
    "trainer.devices": (None, lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool)
                                                        and (v >= 1 or v == -1)),
                        "a number of devices >= 1, -1 (all) or auto", 1),
    "trainer.num_nodes": (int, lambda v: v >= 1, ">= 1", 1),
    "trainer.precision": (None, lambda v: v in TRAIN_PRECISIONS, f"one of {', '.join(map(str, TRAIN_PRECISIONS))}",
                          "bf16-mixed"),
    "trainer.log_every_n_steps": (int, lambda v: v >= 1, ">= 1", 10),
    "trainer.check_val_every_n_epoch": (int, lambda v: v >= 1, ">= 1", 1),
    "trainer.num_sanity_val_steps": (int, lambda v: v >= -1, ">= 0 (or -1: all)", 2),
    "trainer.gradient_clip_val": (float, lambda v: v >= 0, ">= 0", 1.0),
    "trainer.overfit_batches": (float, lambda v: (isinstance(v, int) and v >= 0) or 0 <= v <= 1,
                                ">= 0: a number of batches, or a share of them up to 1.0 (0: off)", 2),
}
# Lightning reads an int as a number of batches and a float as a share of them; 0 would skip the stage, but a run
# always validates (its checkpoint is the one of best val Dice) and reports its test split.
BATCHES = (float, lambda v: (isinstance(v, int) and v >= 1) or 0 < v <= 1,
           "> 0: a number of batches, or a share of them up to 1.0", 1.0)
RULES.update({f"trainer.limit_{stage}_batches": BATCHES for stage in ("train", "val", "test")})
DEVICE_AUGMENT = {"flip_p": "probability", "affine_p": "probability", "elastic_p": "probability",
                  "brightness_p": "probability", "rotate": ">= 0", "translate": ">= 0", "elastic_alpha": ">= 0",
                  "elastic_sigma": "> 0", "brightness": ">= 0", "contrast": ">= 0"}
RULES.update({f"module.device_augment.{name}": (float, lambda v: 0 <= v <= 1, "between 0 and 1", 0.5)
              if rule == "probability" else (float, lambda v: v > 0, "> 0", 6) if rule == "> 0"
              else (float, lambda v: v >= 0, ">= 0", 0.1) for name, rule in DEVICE_AUGMENT.items()})
# Paths and names are text (Hydra reads input=1 as a number, output=true as a bool); lists of them are lists.
PATH_EXAMPLES = {"input": "scan.nii.gz", "output": "predictions",
                 "ckpt_path": "outputs/train/RUN/checkpoints/last.ckpt", "data_dir": "data/lung-ct-slices/val",
                 "images": "scans", "labels": "scan-labels",
                 "calibration_dir": "data/lung-ct-slices/train", "resume": "outputs/train/RUN",
                 "init_from": "reference", "dest": "data/lung-ct-slices", "out": "outputs/report.md",
                 "data.root": "data/lung-ct-slices", "series": "1.2.840.113619.2.55", "url": "file:///data/slices.zip",
                 "split": "val", "device": "cpu", "dir": "page"}
RULES.update({key: (str, lambda v: bool(v.strip()), "that is not empty", example)
              for key, example in PATH_EXAMPLES.items()})
RULES.update({key: (None, lambda v: isinstance(v, list) and texts(v) == v, "a list of paths or names", example)
              for key, example in {"ensemble": "[RUN2/checkpoints/last.ckpt]", "soup": "[RUN2/checkpoints/last.ckpt]",
                                   "cases": "[lung_001,lung_003]", "val_cases": "[lung_001]"}.items()})
RULES["runs"] = (None, lambda v: bool(texts(v)), "a run dir, or a list of them", "outputs/multiruns/RUN")
RULES.update({key: (None, lambda v: bool(texts(v)), "a run, sweep or evaluate folder, a results file or a glob "
                    "pattern, or a list of them", example) for key, example in
              {"a": "outputs/multirun/CONTROL", "b": "'eval/candidate-fold*.json'"}.items()})
RULES["rule"] = (str, lambda v: bool(v.strip()), "a YAML rule file", "experiments/lung/seed-ensemble/rule.yaml")
RULES["thresholds"] = (None, lambda v: isinstance(v, list) and bool(numbers(v, float))
                       and all(0 < x < 1 for x in numbers(v, float)),
                       "a list of thresholds between 0 and 1", "[0.2,0.3,0.5]")
RULES["module.device_augment.scale"] = (None, lambda v: len(numbers(v, float)) == 2 and min(numbers(v, float)) > 0,
                                        "[LOW,HIGH]: two finite numbers > 0", "[0.9,1.1]")


def is_number(value, kind: type) -> bool:
    """value is of kind (int; float: an int too, finite), never a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
        return False
    return kind is not float or math.isfinite(value)


def numbers(value, kind: type) -> list:
    """The items of a list (or a lone value) when every one is a number of kind; [] otherwise."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return items if all(is_number(v, kind) for v in items) else []


def texts(value) -> list:
    """The items of a list (or a lone value) when every one is non-empty text; [] otherwise."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return items if all(isinstance(v, str) and v.strip() for v in items) else []


def fits(kind: type | None, value) -> bool:
    """value has the rule's type: a bool for bool, a number of kind (finite, not a bool), anything for None."""
    if kind is None:
        return True
    if kind in (bool, str):
        return isinstance(value, kind)
    return is_number(value, kind)


def kind_words(kind: type | None, value) -> str:
    """The type a rule asks for, in words: 'an int', 'a float', 'a finite float' (for a NaN or an infinity)."""
    if kind is float and isinstance(value, float) and not math.isfinite(value):
        return "a finite float"
    return {int: "an int", float: "a float", bool: "true or false", str: "text", None: ""}[kind]


def check_config(cfg: DictConfig) -> None:
    """Raise UserError for the first value of the wrong type or out of range."""
    for key, (kind, test, wanted, example) in RULES.items():
        node = OmegaConf.select(cfg, key, default=None)
        value = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
        if value is None:
            continue
        if not fits(kind, value) or not test(value):
            shown = f"[{','.join(map(str, value))}]" if isinstance(value, list) else repr(value)
            asked = " ".join(w for w in (kind_words(kind, value), wanted) if w)
            raise UserError(f"{key}={shown} must be {asked}: e.g. {key}={example}")


def check_compiler(cfg: DictConfig) -> None:
    """module.compile on CPU needs a C++ compiler (torch.compile's CPU backend builds C++); say so before training."""
    on_gpu = str(cfg.trainer.get("accelerator")) in ("gpu", "cuda")
    if not OmegaConf.select(cfg, "module.compile", default=False) or on_gpu:
        return
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    if not any(shutil.which(n) for n in names):
        raise UserError(f"module.compile=true needs a C++ compiler on CPU and none of {', '.join(names)} is on PATH: "
                        f"install one (e.g. apt install g++) or set module.compile=false")
