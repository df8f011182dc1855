"""A fuzz campaign over every command, kept in the suite: random options and small odd inputs, run in this process.

Each case draws a command, its input (tests/fuzz_inputs.py: volumes of random sizes, spacings, directions, dtypes,
non-finite voxels, broken headers and truncations; DICOM series with odd geometry; slice folders with odd files; task
folders, run dirs, model files (two-stage and crop models too), archives; compare's sides and rule files; page
folders) and up to three options of any kind (numbers, NaN, Inf, huge, negative, strings, lists, booleans, missing
values, unknown keys, interpolations). It runs the command's Hydra main in this process and requires:

- exit status 0, 1 or 2, and no traceback (no exception but SystemExit, no "Traceback" in the output);
- exit 2 prints exactly one `error:` line (check: at least one, a line per problem);
- every .json file it writes is strict JSON (a NaN or an infinity in one is a figure that may be wrong);
- every file that existed before (inputs, files planted at the output paths: a hard link to an input, a symlink to a
  folder outside, an earlier run's file) is byte-identical afterwards, and nothing appears in the inputs or in the
  sentinel folder (the symlink's target). With overwrite=true the output folder's own files may change.

`make test` runs a fixed, seeded budget (TUMORSEG_FUZZ_CASES, default 24: about 20 s on 2 cores); `make fuzz` runs
2000 and writes outputs/fuzz/summary.md and failures.jsonl (TUMORSEG_FUZZ_OUT). Every failure is reported with its
command line and its case; `python -m tests.test_fuzz replay outputs/fuzz/failures.jsonl N` runs failure N again.
fetch never reaches the network: its url is a file:// archive or not a URL, and sockets refuse to connect while a
case runs. bench and train are costly when valid: bench always gets a device it refuses (its option parsing is what
is fuzzed), train runs the tiny config on a tiny data set with a few options drawn (its logger csv, mlflow or none;
some runs train a crop model, data.crops). serve of a page folder would serve forever: a case's server is shut down
as soon as it serves (PageServer.serve_forever returns at once), and a drawn "port in use" holds a socket on the port.
TUMORSEG_FUZZ_COMMANDS=compare,serve,... draws only those commands (a focused campaign on some of them).
"""

import contextlib
import hashlib
import importlib
import io
import json
import locale
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests import fuzz_inputs as fi

REPO = Path(__file__).resolve().parents[1]
CASES = int(os.environ.get("TUMORSEG_FUZZ_CASES", "24"))
CASE_TIMEOUT = int(os.environ.get("TUMORSEG_FUZZ_TIMEOUT", "120"))  # seconds a case may run: a hang is a failure
# Stop running cases after this long (0: never); make test's budget stops at 60 s whatever the cases drawn.
SECONDS = float(os.environ.get("TUMORSEG_FUZZ_SECONDS", "0" if "TUMORSEG_FUZZ_CASES" in os.environ else "60") or 0)
OUT = os.environ.get("TUMORSEG_FUZZ_OUT")  # a folder for summary.md and failures.jsonl
MINIMIZE = os.environ.get("TUMORSEG_FUZZ_MINIMIZE", "") not in ("", "0")  # drop options while a failure stays
ONLY = [c for c in os.environ.get("TUMORSEG_FUZZ_COMMANDS", "").split(",") if c.strip()]  # none: every command

# The tiny training run of tests/conftest.py (seconds); the fuzzed options come on top of it.
TINY = ["data.image_size=32", "data.batch_size=4", "data.num_workers=0", "model.base_channels=4", "model.depth=2",
        "model.flat_steps=0", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", "trainer.num_sanity_val_steps=0", "callbacks.progress_bar=null",
        "logger=none", "data.phantom=null"]

# ---------------------------------------------------------------------------------------------------------------------
# option values, as the text of an override

NUMBERS = ["0", "1", "-1", "2", "3", "7", "0.5", "-0.5", "1.0", "0.999", "1e-30", "1e308", "-1e308", "2147483648",
           "9223372036854775808", "-9223372036854775809", "100000000000000000000000000000", "nan", "NaN", "-nan",
           "inf", "-inf", "+inf", "Infinity", "-0.0", "1_000", "0x10", "3.0e5", "1e999", ".5", "5."]
BOOLS = ["true", "false", "True", "FALSE", "yes", "on", "off"]
MISSING = ["", "null", "~", "???", "'null'", "None", "'  '"]
LISTS = ["[]", "[1,2]", "[a,b]", "[[1]]", "[nan,inf]", "[1,2,3,4]", "[null]", "[true]", "[0.5,0.5]", "[-1,1e308]",
         "[", "[1,[2,", "{}", "{a:1}", "{x:[1,nan]}"]
INTERPOLATIONS = ["${paths.root_dir}", "${nope}", "${", "${hydra:runtime.cwd}", "${now:%Y}", "'${threshold}'",
                  "${oc.decode:'[1, 2]'}"]
# Text without "/", "$", "~" or "\": a value never names a path outside the case's folder (the case runs in cwd/).
SAFE_TEXT = st.text(alphabet=st.sampled_from(list("abcXYZ019 _-.,:=[]{}()'\"@#%!*+é²\t\n")), max_size=10)
# Paths of the case, resolved when it is built (the spec stays plain data).
PATH_TOKENS = ["@in", "@in_file", "@out", "@missing", "@in_file/sub", "@cwd", ".", "..", "x.png", "out.nii.gz"]

CHOICES = {
    "tta": ["true", "false", "affine", "flip", "null", "AFFINE"],
    "precision": ["auto", "32", "bf16", "16", "64", "fp8", "bf16-mixed"],
    "device": ["auto", "cpu", "cuda", "cuda:3", "mps", "meta", "cpu:0", "cuda:-1"],
    "runtime": ["auto", "pytorch", "onnxruntime", "tensorrt"],
    "quantize": ["int8", "int4", "fp16", "null", "INT8"],
    "split": ["train", "val", "test", "all", "null"],
    "slices": ["all", "labeled+0", "labeled+5", "labeled+-1", "labeled+x", "labeled", "labeled+1e9", "none"],
    "label": ["1", "2", "[1,2]", "0", "[]", "[1,1]", "255", "[1,nan]", "-1"],
    "preprocess.window": ["[40,400]", "[0,0]", "[40,-1]", "[nan,400]", "[40]", "[1e308,1e308]", "[-1000,inf]"],
    "parts": ["train", "data", "infer,volume", "[segment,volume]", "[]", "bogus", "[train,train]"],
    "cases": ["[phantom_001]", "[nope]", "[]", "[phantom_001,phantom_001]", "phantom_002"],
    "val_cases": ["[phantom_001]", "[nope]", "[]", "[phantom_001,phantom_002]", "phantom_002"],
    "series": ["1.2.3", "null", "''"],
    "opset": ["7", "13", "17", "99", "6"],
    "approach": ["split", "full", "cv", "nope"],
    "loss": ["dice", "bce", "tversky", "focal_dice", "component_tversky", "dice_bce"],
    "augment": ["none", "flip", "rotate", "all", "elastic", "device_all"],
    "model": ["unet", "unet_fast", "unet_classic", "deeplabv3", "stack_unet", "unet_seed"],
    "scheduler": ["none", "cosine", "onecycle", "poly"],
    "optimizer": ["adam", "adamw"],
    "init_from": ["reference", "@in_file", "@missing", "null"],
    "ckpt_path": ["null", "@in_file", "@missing", "@in", "tumorseg/reference/lung_unet.int8.onnx"],
    "trainer.precision": ["32", "bf16-mixed", "16-mixed", "64", "nope"],
    "thresholds": ["[]", "[0.3]", "[0.2,0.3,0.5]", "[nan]", "[0.3,1.5]", "[a,b]", "[0.3,0.3]", "[0,1]", "0.3",
                   "[0.5,0.25,0.999]", "[[0.3]]", "[true]", "['0.3']"],
    "format": ["web", "onnx", "WEB", "html", "null"],
    "port": ["0", "8000", "65535", "65536", "-1", "80", "0.5", "http", "1e3", "true"],
    "seed": ["0", "1", "-1", "42", "nan", "1e308"],
    "rule": ["@in_file", "@in", "@missing", "@cwd", "rule.yaml"],
    "a": ["@in", "@in_file", "@missing", "[]", "@in/*/fold*", "@in/a/*.json", "@in/b"],
    "b": ["@in", "@in_file", "@missing", "[]", "@in/**", "@in/b/fold0", "@in/a"],
    "dir": ["@in_file", "@in", "@missing", "@cwd", ".", "@in_file/sub"],
    "crop": ["@in_file", "@missing", "@in", "null"],
    "proposal_threshold": ["0.2", "0.5", "0", "1", "nan", "-0.1", "null"],
    "data": ["lung_crops", "phantom", "lung", "nope"],
    "logger": ["csv", "mlflow", "none", "tensorboard", "[csv,mlflow]", "[]", "wandb"],
    "logger.mlflow.tracking_uri": ["sqlite:///mlflow.db", "file:./mlruns", "''", "http://127.0.0.1:9",
                                   "https://mlflow.invalid", "databricks", "sqlite:///@missing/m.db", "postgresql://x/y",
                                   "sqlite://", "nope://x", "mlruns"],
    "logger.mlflow.experiment_name": ["tumorseg", "''", "x y", "null"],
    "data.crops.size": ["16", "8", "7", "0", "null", "1e9", "nan", "32"],
    "data.crops.input_size": ["32", "8", "4", "100000", "nan"],
    "data.crops.margin": ["0", "2", "-1", "1000"],
    "data.crops.negatives": ["0", "1", "2.5", "101", "nan"],
    "data.crops.proposal_threshold": ["0.2", "0", "1", "nan"],
    "data.crops.proposals_from": ["@in_file", "@missing", "null", "''"],
}

PREDICT_KEYS = ["input", "output", "series", "viewer", "overwrite", "threshold", "tta", "precision", "device",
                "runtime", "postprocess.min_size", "postprocess.seed_threshold", "postprocess.largest_3d", "batch_size",
                "max_pixels", "max_voxels", "preprocess.window", "ckpt_path"]
KEYS = {
    "predict": PREDICT_KEYS,
    "evaluate": ["ckpt_path", "data_dir", "split", "images", "labels", "label", "cases", "viewer", "max_voxels",
                 "preprocess.window", "threshold", "tta", "precision", "device", "runtime", "postprocess.min_size",
                 "postprocess.seed_threshold", "postprocess.largest_3d", "batch_size", "thresholds", "thresholds"],
    "export": ["ckpt_path", "output", "overwrite", "format", "opset", "check_batch", "tolerance", "quantize",
               "calibration_dir", "calibration_slices", "min_agreement"],
    "convert": ["input", "output", "label", "slices", "val_cases", "preprocess.window", "overwrite"],
    "check": ["data.root", "data.strict", "data.mask_threshold", "data.image_size", "data.context_slices",
              "data.mean", "data.std", "data.batch_size", "data.tumor_share", "data.train_crop", "approach"],
    "ship": ["ckpt_path", "output", "overwrite", "threshold", "tta", "seed_threshold", "ensemble", "soup", "crop",
             "proposal_threshold"],
    "report": ["runs", "out", "overwrite"],
    "fetch": ["url", "dest", "max_extract_bytes"],
    "bench": ["quick", "parts", "batch_size", "image_size", "steps", "out", "compile"],
    "train": ["seed", "threshold", "optimizer.lr", "optimizer.weight_decay", "data.tumor_share", "data.train_crop",
              "data.batch_size", "data.image_size", "data.context_slices", "data.mean", "data.std", "approach",
              "approach.k", "approach.fold", "model.dropout", "model.base_channels", "model.depth", "loss", "augment",
              "model", "scheduler", "optimizer", "trainer.precision", "trainer.gradient_clip_val", "init_from",
              "ckpt_path", "resume", "data.mask_threshold", "module.channels_last", "data.root", "data.crops.size",
              "data.crops.input_size", "data.crops.margin", "data.crops.negatives", "data.crops.proposal_threshold",
              "data.crops.proposals_from", "data", "logger", "logger.mlflow.tracking_uri",
              "logger.mlflow.experiment_name"],
    "compare": ["a", "b", "rule", "output", "overwrite", "seed"],
    "serve": ["dir", "port", "port", "quiet"],
}
BENCH_DEVICES = ["gpu", "mps", "cuda:0", "CPU", "tpu", "''", "null", "[cpu]"]  # none that bench runs on
UNKNOWN = ["foo.bar", "+foo", "++threshold", "hydra.nope", "+data.extra"]
# How often each command is drawn: train costs seconds even when tiny.
WEIGHTS = {"predict": 4, "evaluate": 3, "check": 2, "convert": 2, "report": 1, "ship": 1, "export": 1, "fetch": 1,
           "bench": 1, "train": 1, "compare": 2, "serve": 1}


def value_for(key: str):
    kinds = [st.sampled_from(NUMBERS), st.integers(-3, 300).map(str), st.sampled_from(BOOLS),
             st.sampled_from(MISSING), SAFE_TEXT, st.sampled_from(LISTS), st.sampled_from(INTERPOLATIONS),
             st.sampled_from(PATH_TOKENS), st.floats(allow_nan=True, allow_infinity=True).map(repr)]
    if key in CHOICES:
        kinds = [st.sampled_from(CHOICES[key])] * 4 + kinds
    return st.one_of(kinds)


@st.composite
def options(draw, command: str) -> list[list[str]]:
    """Up to three [key, value] pairs; value "~" deletes the key."""
    out = []
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3]))):  # few: most values are refused, the first ends a run
        key = draw(st.sampled_from(KEYS[command] + UNKNOWN[:1]) if draw(st.integers(0, 19)) else
                   st.sampled_from(UNKNOWN))
        out.append([key, draw(value_for(key))])
    return out


# ---------------------------------------------------------------------------------------------------------------------
# inputs, as specs

def volume_spec():
    return st.fixed_dictionaries({
        "fmt": st.sampled_from(fi.VOLUME_FORMATS),
        "size": st.tuples(st.integers(8, 40), st.integers(8, 40), st.integers(1, 6)),
        "spacing": st.tuples(*[st.sampled_from([0.7, 1.0, 2.5, 1e-4, 1e4, 0.05])] * 3),
        "direction": st.sampled_from(fi.DIRECTIONS),
        "dtype": st.sampled_from(fi.DTYPES),
        "voxels": st.sampled_from(("ct",) * 6 + fi.VOXELS),
        "header": st.sampled_from((None,) * 8 + fi.HEADERS),
        "truncate": st.sampled_from((None,) * 10 + (0.0, 0.1, 0.5, 0.9, 0.99)),
        "seed": st.integers(0, 3),
    })


def slices_spec():
    return st.fixed_dictionaries({
        "size": st.sampled_from([16, 32, 48]),
        "slices": st.integers(1, 3),
        "train_subjects": st.integers(2, 3),
        "changes": st.lists(st.sampled_from(fi.SLICE_CHANGES), max_size=2, unique=True),
        "both_parts": st.booleans(),
        "seed": st.integers(0, 3),
    })


def task_spec():
    return st.fixed_dictionaries({
        "kind": st.sampled_from(["msd", "nnunet"]),
        "cases": st.integers(1, 3),
        "size": st.tuples(st.integers(12, 24), st.integers(12, 24), st.integers(2, 5)),
        "change": st.sampled_from((None,) * 4 + fi.TASK_CHANGES),
        "seed": st.integers(0, 3),
    })


def dicom_spec():
    return st.fixed_dictionaries({
        "size": st.tuples(st.integers(8, 24), st.integers(8, 24), st.integers(2, 5)),
        "change": st.sampled_from((None,) * 3 + fi.DICOM_CHANGES),
        "seed": st.integers(0, 3),
    })


def inputs(command: str):
    """The strategy of a command's input spec: {"kind": ..., ...}."""
    def kind(name, **fields):
        return st.fixed_dictionaries({"kind": st.just(name), **fields})

    odd = kind("odd", what=st.sampled_from(["empty_file", "text_as_volume", "empty_folder", "missing",
                                            "folder_of_odd"]))
    if command == "predict":
        return st.one_of(kind("volume", volume=volume_spec()), kind("volume", volume=volume_spec()),
                         kind("dicom", dicom=dicom_spec()), kind("slices", slices=slices_spec()),
                         kind("slice_file", slices=slices_spec()), odd)
    if command == "evaluate":
        return st.one_of(kind("slices", slices=slices_spec(), split=st.booleans()), kind("task", task=task_spec()),
                         kind("volumes", volume=volume_spec(), labels=st.sampled_from(
                             ["same", "same", "other_grid", "other_spacing", "float", "big_values", "empty",
                              "truncated", "missing"])), odd)
    if command in ("check", "train"):
        slices = kind("slices", slices=slices_spec() if command == "check" else slices_spec().map(
            lambda s: s | {"size": 32, "slices": 3, "train_subjects": 3, "changes": s["changes"][:1]}))
        if command == "check":
            return slices
        return slices.flatmap(lambda spec: st.fixed_dictionaries({
            "logger": st.sampled_from(["none", "none", "csv", "mlflow"]),
            "crops": st.sampled_from([False, False, True])}).map(spec.__or__))
    if command == "convert":
        return st.one_of(kind("task", task=task_spec()), odd)
    if command == "report":
        return kind("runs", runs=st.lists(st.sampled_from(fi.RUN_CHANGES), min_size=1, max_size=3))
    if command in ("ship", "export"):
        models = (None,) * (3 if command == "export" else 0) + fi.MODEL_KINDS + fi.TINY_MODEL_KINDS
        extra = {"crop": st.sampled_from((None, None, "crop", "crop", "tiny", "two_stage", "garbage"))} \
            if command == "ship" else {"web": st.sampled_from((None, None) + fi.WEB_OUTPUTS)}
        return kind("model", model=st.sampled_from(models), calibration=st.booleans(), **extra)
    if command == "compare":
        return kind("compare", a=st.sampled_from(fi.COMPARE_SIDES), b=st.sampled_from(("same",) * 8 + fi.COMPARE_SIDES),
                    gain=st.sampled_from([0.0, 0.02, -0.02]), rule=st.sampled_from(fi.RULE_KINDS))
    if command == "serve":
        return kind("page", page=st.sampled_from(fi.PAGE_KINDS), positional=st.booleans(),
                    port_in_use=st.sampled_from([False, False, True]))
    if command == "fetch":
        return kind("archive", archive=st.sampled_from(fi.ARCHIVE_KINDS))
    return kind("bench", device=st.sampled_from(BENCH_DEVICES))


@st.composite
def cases(draw) -> dict:
    command = draw(st.sampled_from([c for c, w in WEIGHTS.items() if not ONLY or c in ONLY for _ in range(w)]))
    return {"command": command, "input": draw(inputs(command)), "options": draw(options(command)),
            "plant": draw(st.sampled_from([False, False, True]))}  # planted files refuse most runs: not always


# ---------------------------------------------------------------------------------------------------------------------
# building a case: its input, its fixed options, the files planted at its outputs

def build_input(spec: dict, inp: Path) -> tuple[dict, Path | None]:
    """Write the input under inp; return ({role: path}, the first input file, for a hard link)."""
    kind = spec["kind"]
    paths: dict[str, Path] = {}
    if kind == "volume":
        v = spec["volume"]
        paths["input"] = fi.write_volume_spec(v, inp / f"scan{v['fmt']}")
    elif kind == "dicom":
        paths["input"] = fi.write_dicom_spec(spec["dicom"], inp / "series")
    elif kind in ("slices", "slice_file"):
        root = fi.write_slices(spec["slices"], inp / "data")
        paths["root"] = root
        paths["input"] = (sorted((root / "val/images").rglob("*.png"))[0] if kind == "slice_file"
                          else root / "val/images")
    elif kind == "task":
        paths["input"] = fi.write_task(spec["task"], inp / "Task01_Phantom")
    elif kind == "volumes":
        v = spec["volume"]
        images, labels = inp / "images", inp / "labels"
        fi.write_volume_spec(v, images / f"case1{v['fmt']}")
        if spec["labels"] != "missing":
            fi.write_labels_like(v, labels / f"case1{v['fmt']}", spec["labels"])
        labels.mkdir(parents=True, exist_ok=True)
        paths.update(images=images, labels=labels, input=images)
    elif kind == "odd":
        what = spec["what"]
        inp.mkdir(parents=True, exist_ok=True)
        target = {"empty_file": inp / "scan.nii.gz", "text_as_volume": inp / "scan.nii", "empty_folder": inp / "empty",
                  "missing": inp / "missing", "folder_of_odd": inp / "odd"}[what]
        if what == "empty_file":
            target.write_bytes(b"")
        elif what == "text_as_volume":
            target.write_text("not a volume\n")
        elif what == "empty_folder":
            target.mkdir()
        elif what == "folder_of_odd":
            target.mkdir()
            (target / "a.nii.gz").write_bytes(b"\x1f\x8b\x08\0")
            (target / "b.dcm").write_bytes(b"DICM")
            (target / "c.png").write_bytes(fi.pixel_bomb_png())
            (target / "d.txt").write_text("x")
        paths["input"] = target
    elif kind == "runs":
        paths["input"] = fi.write_runs(spec, inp / "runs")
    elif kind == "model":
        if spec["model"] is not None:
            paths["input"] = fi.write_model(spec["model"], inp / ("model.onnx" if spec["model"] == "onnx" else
                                                                  "model.pt"))
        if spec.get("crop"):
            paths["crop"] = fi.write_model(spec["crop"], inp / "crop.pt")
        if spec.get("calibration"):
            paths["calibration"] = fi.write_slices({"size": 32, "slices": 2, "train_subjects": 1}, inp / "data") / "val"
    elif kind == "archive":
        paths["input"] = fi.write_archive(spec["archive"], inp / "slices.zip")
    elif kind == "compare":
        paths["a"] = fi.write_compare_side(spec["a"], inp / "a", 0.0)
        paths["b"] = fi.write_compare_side(spec["a"] if spec["b"] == "same" else spec["b"], inp / "b", spec["gain"])
        if spec["rule"]:
            paths["rule"] = fi.write_rule(spec["rule"], inp / "rule.yaml")
        paths["input"] = next(iter(sorted((inp / "b").rglob("*.json"))), inp / "b")
    elif kind == "page":
        paths["input"] = fi.write_page(spec["page"], inp / "page")
    first = next((p for p in sorted(inp.rglob("*")) if p.is_file() and not p.is_symlink()), None)
    return paths, first


def fixed_options(case: dict, paths: dict, root: Path) -> tuple[list[str], Path]:
    """The options that point a command at its input and at outputs inside the case; (options, output folder)."""
    command, kind = case["command"], case["input"]["kind"]
    out, run = root / "out", root / "run"
    opts = [f"hydra.run.dir={run}"]
    if command == "predict":
        opts += [f"input={paths['input']}", f"output={out}"]
    elif command == "evaluate":
        if kind == "slices":
            data = paths["root"]
            opts += [f"data_dir={data}", "split=val"] if case["input"]["split"] else [f"data_dir={data / 'val'}"]
        elif kind == "volumes":
            opts += [f"images={paths['images']}", f"labels={paths['labels']}"]
        else:
            opts += [f"data_dir={paths['input']}"]
        out = run
    elif command == "check":
        opts += [f"data.root={paths['root']}", "data.image_size=32"]
    elif command == "train":
        crops = ["data.crops.size=16", "data.crops.input_size=32"] if case["input"].get("crops") else []
        opts += [*TINY, f"data.root={paths['root']}", f"logger={case['input'].get('logger', 'none')}", *crops]
        out = run
    elif command == "convert":
        opts += [f"input={paths['input']}", f"output={out / 'data'}"]
    elif command == "report":
        opts += [f"runs={paths['input']}", f"out={out / 'report.md'}"]
    elif command == "ship":
        opts += [f"ckpt_path={paths['input']}", f"output={out / 'model.pt'}"]
        opts += [f"crop={paths['crop']}"] if "crop" in paths else []
    elif command == "export" and case["input"].get("web"):  # a page folder, at an output as the case finds it
        page = fi.prepare_web_output(case["input"]["web"], out, root / "sentinel")
        opts += ["format=web", f"output={page}", "check_batch=1"]
        opts += [f"ckpt_path={paths['input']}"] if "input" in paths else []
    elif command == "export":
        opts += [f"output={out / 'model.onnx'}", "check_batch=1", "calibration_slices=2"]
        if "input" in paths:
            opts.append(f"ckpt_path={paths['input']}")
        if "calibration" in paths:
            opts += ["quantize=int8", f"calibration_dir={paths['calibration']}"]
    elif command == "fetch":
        opts += [f"url=file://{paths['input']}", f"dest={out / 'data'}"]
    elif command == "compare":
        opts += [f"a={paths['a']}", f"b={paths['b']}", f"output={out}"]
        opts += [f"rule={paths['rule']}"] if "rule" in paths else []
    elif command == "serve":  # the page folder as `tumorseg serve DIR` or dir=DIR; port 0: any free one
        page = str(paths["input"])
        opts += [page if case["input"]["positional"] else f"dir={page}", f"port={paths.get('port', 0)}"]
    elif command == "bench":  # a device bench refuses: only its option handling runs
        opts += ["quick=true", f"out={out / 'bench'}", f"device={case['input']['device']}"]
    return opts, out


def resolve(value: str, paths: dict, root: Path) -> str:
    if not value.startswith("@"):
        return value
    name, _, rest = value[1:].partition("/")
    base = {"in": root / "in", "out": root / "out", "missing": root / "missing" / "x", "cwd": root / "cwd",
            "in_file": paths.get("input", root / "in")}.get(name)
    if base is None:  # drawn text that merely starts with @: an option value as it is
        return value
    return str(base / rest) if rest else str(base)


def override(key: str, value: str) -> str:
    return f"~{key}" if value == "~" else f"{key}={value}"


def merged(fixed: list[str], drawn: list[str]) -> list[str]:
    """The fixed options, less those whose key a drawn option sets (Hydra refuses a key given twice)."""
    def key(o: str) -> str:
        return o.lstrip("~+").split("=", 1)[0]

    drawn_keys = {key(o) for o in drawn}
    return [o for o in fixed if key(o) not in drawn_keys] + drawn


PLANTS = {  # files an earlier run (or the user) left at the command's output paths: (relative path, kind)
    "predict": [("summary.csv", "hardlink"), ("index.html", "file"), ("masks", "symlink"), ("viewer", "symlink"),
                ("scan_mask.nii.gz", "file"), ("overlays/Subject_2/0.png", "file")],
    "evaluate": [("metrics.json", "file"), ("viewer", "symlink")],
    "export": [("model.onnx", "hardlink"), ("model.int8.onnx", "file")],
    "ship": [("model.pt", "hardlink")],
    "convert": [("data/train/images/phantom_001/0.png", "file"), ("data/val", "symlink")],
    "report": [("report.md", "hardlink")],
    "fetch": [("data/keep.txt", "file")],
    "compare": [("compare.md", "hardlink"), ("compare.json", "file")],
}


def plant(command: str, out: Path, first: Path | None, sentinel: Path) -> None:
    for rel, kind in PLANTS.get(command, []):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "hardlink" and first is not None:
            os.link(first, path)
        elif kind == "symlink":
            path.symlink_to(sentinel / "inner", target_is_directory=True)
        else:
            path.write_bytes(f"planted {rel}\n".encode())


def make_sentinel(sentinel: Path) -> None:
    (sentinel / "inner").mkdir(parents=True)
    (sentinel / "inner" / "keep.txt").write_text("sentinel\n")
    (sentinel / "keep.bin").write_bytes(bytes(range(256)))


# ---------------------------------------------------------------------------------------------------------------------
# running one case

class CaseTimeout(BaseException):
    """Raised by the alarm in a case that runs too long (a BaseException: a command's `except Exception` lets it by)."""


@contextlib.contextmanager
def no_network():
    """Sockets refuse to connect or resolve while a case runs (fetch must never reach the network)."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled in the fuzz test")

    saved = socket.socket.connect, socket.create_connection, socket.getaddrinfo
    socket.socket.connect = refuse
    socket.create_connection, socket.getaddrinfo = refuse, refuse
    try:
        yield
    finally:
        socket.socket.connect, socket.create_connection, socket.getaddrinfo = saved


@contextlib.contextmanager
def time_limit(seconds: int):
    def alarm(signum, frame):
        raise CaseTimeout(f"the case ran over {seconds} s")

    try:
        previous = signal.signal(signal.SIGALRM, alarm)
    except ValueError:  # not the main thread: no limit
        yield
        return
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def serving_once(case: dict):
    """For a serve case: its server shuts down as soon as it serves (a valid page would be served forever), and a
    drawn "port in use" is a socket listening on 127.0.0.1 while the case runs; yields that port (None: none)."""
    if case["command"] != "serve":
        yield None
        return
    from tumorseg.web.server import PageServer

    original = PageServer.serve_forever

    def once(self, poll_interval=0.05):
        threading.Thread(target=self.shutdown, daemon=True).start()  # returns once the loop has run and ended
        original(self, poll_interval)

    held = socket.socket() if case["input"].get("port_in_use") else None
    PageServer.serve_forever = once
    try:
        if held is not None:
            held.bind(("127.0.0.1", 0))
            held.listen(1)
        yield None if held is None else held.getsockname()[1]
    finally:
        PageServer.serve_forever = original
        if held is not None:
            held.close()


def invoke(module: str, args: list[str], cwd: Path) -> tuple[int | None, str, str, str | None]:
    """Run module's main as `python -m module args` from cwd: (exit status, stdout, stderr, uncaught exception)."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    env, here, argv, loc = dict(os.environ), os.getcwd(), sys.argv, locale.setlocale(locale.LC_ALL)
    os.environ.pop("TUMORSEG_DATA", None)
    os.environ["HYDRA_FULL_ERROR"] = "0"  # as a user runs it: Hydra reports an exception itself
    out, err, code, crash = io.StringIO(), io.StringIO(), 0, None
    os.chdir(cwd)
    sys.argv = [module, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), no_network(), time_limit(CASE_TIMEOUT):
            importlib.import_module(module).main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"): Python prints it and exits 1
            err.write(f"{exc.code}\n")
            code = 1
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - a crash or a timeout is what the campaign looks for
        code, crash = None, traceback.format_exc()
    finally:
        os.chdir(here)
        sys.argv = argv
        os.environ.clear()
        os.environ.update(env)
        locale.setlocale(locale.LC_ALL, loc)
        GlobalHydra.instance().clear()
    return code, out.getvalue(), err.getvalue(), crash


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root: a file's digest, a symlink's target, a folder."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                entries[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[rel] = ("dir",)
            else:
                try:
                    entries[rel] = ("file", hashlib.sha1(path.read_bytes()).hexdigest())
                except OSError as err:
                    entries[rel] = ("unreadable", str(err))
    return entries


def last_traceback_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line]
    start = max(i for i, line in enumerate(lines) if line.startswith("Traceback"))
    for line in lines[start + 1:]:
        if not line.startswith(" "):
            return line.strip()
    return lines[-1].strip()


def is_true(value: str) -> bool:
    return value.strip().lower() == "true"


def judge(case: dict, code, stdout: str, stderr: str, crash, before: dict, after: dict) -> list[tuple[str, str]]:
    """The case's failures: (what, detail)."""
    command, problems = case["command"], []
    text = stdout + stderr
    if crash is not None:
        kind = "timeout" if "CaseTimeout" in crash.splitlines()[-1] else "uncaught exception"
        problems.append((kind, crash.strip().splitlines()[-1]))
    elif code not in (0, 1, 2):
        problems.append(("exit status", f"exit {code}: {stderr.strip().splitlines()[-1:]}"))
    if "Traceback (most recent call last)" in text:
        problems.append(("traceback", last_traceback_line(text)))
    elif code == 1 and "HYDRA_FULL_ERROR" in stderr:  # Hydra's report of an exception it caught, in a few lines
        lines = [line.strip() for line in stderr.splitlines()
                 if line.strip() and "HYDRA_FULL_ERROR" not in line and not line.startswith("full_key:")]
        problems.append(("exception reported by Hydra", lines[-1]))
    if code == 2:
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        if not errors or (len(errors) > 1 and command != "check"):
            problems.append(("exit 2 without exactly one error: line", f"{len(errors)} lines: {stderr.strip()[-300:]}"))
    overwrite = any(k == "overwrite" and is_true(v) for k, v in case["options"])
    out_rel = {"evaluate": "run", "train": "run"}.get(command, "out")
    for rel, entry in before.items():
        if overwrite and (rel == out_rel or rel.startswith(out_rel + os.sep)):
            continue
        if rel not in after:
            problems.append(("pre-existing file removed", rel))
        elif after[rel] != entry:
            problems.append(("pre-existing file changed", rel))
    for rel in after.keys() - before.keys():
        if rel.split(os.sep)[0] in ("in", "sentinel"):
            problems.append(("new file in the input or the sentinel", rel))
    return problems


def loose_json(root: Path, before: dict, after: dict) -> list[tuple[str, str]]:
    """Each .json file the case wrote that is not strict JSON (NaN or Infinity in it: a figure that may be wrong)."""
    def refuse(constant):
        raise ValueError(f"{constant} in it")

    problems = []
    for rel, entry in after.items():
        if rel.endswith(".json") and entry[0] == "file" and before.get(rel) != entry:
            try:
                json.loads((root / rel).read_text(), parse_constant=refuse)
            except ValueError as err:
                problems.append(("written JSON not strict", f"{Path(rel).name}: {str(err)[:100]}"))
    return problems


def signature(command: str, what: str, detail: str, root: Path) -> str:
    detail = detail.replace(str(root), "<case>")
    detail = re.sub(r"0x[0-9a-f]+|\d+(\.\d+)?(e[-+]?\d+)?", "N", detail)
    if what.startswith(("pre-existing", "new file")):
        detail = re.sub(r"Subject_N|phantom_N|s\w*N_N", "*", detail)
    return f"{command}: {what}: {detail[:160]}"


def run_case(case: dict, base: Path) -> dict:
    """Build the case under a fresh folder of base, run it, judge it; the folder is removed after."""
    root = Path(tempfile.mkdtemp(prefix="case-", dir=base))
    try:
        inp, sentinel = root / "in", root / "sentinel"
        (root / "cwd").mkdir()
        make_sentinel(sentinel)
        paths, first = build_input(case["input"], inp)
        with serving_once(case) as port:
            paths.update({"port": port} if port else {})
            fixed, out = fixed_options(case, paths, root)
            drawn = [override(k, resolve(v, paths, root)) for k, v in case["options"]]
            if case["plant"]:
                plant(case["command"], out, first, sentinel)
            args = merged(fixed, drawn)
            before = snapshot(root)
            started = time.perf_counter()
            code, stdout, stderr, crash = invoke(f"tumorseg.{case['command']}", args, root / "cwd")
            seconds = time.perf_counter() - started
        after = snapshot(root)
        problems = judge(case, code, stdout, stderr, crash, before, after) + loose_json(root, before, after)
        line = "tumorseg " + case["command"] + " " + " ".join(shlex.quote(a.replace(str(root), "$CASE")) for a in args)
        return {"case": case, "code": code, "seconds": round(seconds, 2), "command_line": line,
                "problems": [{"what": w, "detail": d.replace(str(root), "$CASE"),
                              "signature": signature(case["command"], w, d, root)} for w, d in problems],
                "stderr": (crash or stderr).replace(str(root), "$CASE")[-3000:]}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def minimized(case: dict, result: dict, base: Path) -> dict:
    """The case with as few drawn options (and no planted files) as still give the same failure."""
    wanted = {p["signature"] for p in result["problems"]}
    for i in reversed(range(len(case["options"]))):
        smaller = case | {"options": case["options"][:i] + case["options"][i + 1:]}
        attempt = run_case(smaller, base)
        if wanted & {p["signature"] for p in attempt["problems"]}:
            case, result = smaller, attempt
    if case["plant"]:
        attempt = run_case(case | {"plant": False}, base)
        if wanted & {p["signature"] for p in attempt["problems"]}:
            result = attempt
    return result


class Campaign:
    """The cases run, the failures by signature (each with its first case, minimized when asked), the time."""

    def __init__(self, base: Path):
        self.base, self.ran, self.skipped, self.started = base, 0, 0, time.perf_counter()
        self.seen: set[str] = set()
        self.failures: dict[str, dict] = {}
        self.counts: dict[str, int] = {}
        self.by_command: dict[str, int] = {}

    def __call__(self, case: dict) -> None:
        """Run a case unless it ran before (hypothesis draws some twice) or the budget is spent."""
        key = json.dumps(case, sort_keys=True)
        if self.ran >= CASES or key in self.seen:
            return
        if SECONDS and time.perf_counter() - self.started > SECONDS:
            self.skipped += 1
            return
        self.seen.add(key)
        result = run_case(case, self.base)
        self.ran += 1
        self.by_command[case["command"]] = self.by_command.get(case["command"], 0) + 1
        new = [p["signature"] for p in result["problems"] if p["signature"] not in self.failures]
        if new and MINIMIZE:
            result = minimized(case, result, self.base)
        for problem in result["problems"]:
            self.counts[problem["signature"]] = self.counts.get(problem["signature"], 0) + 1
            self.failures.setdefault(problem["signature"], result)
        if os.environ.get("TUMORSEG_FUZZ_VERBOSE"):
            print(f"[{self.ran}] {result['seconds']:6.2f}s exit {result['code']} "
                  f"{'FAIL ' if result['problems'] else ''}{result['command_line'][:200]}", file=sys.__stderr__,
                  flush=True)

    def summary(self) -> str:
        seconds = time.perf_counter() - self.started
        commands = ", ".join(f"{c} {n}" for c, n in sorted(self.by_command.items()))
        lines = [f"fuzz: {self.ran} cases in {seconds:.0f} s ({commands}); {len(self.failures)} distinct failures"
                 + (f"; {self.skipped} drawn after the time budget, not run" if self.skipped else "")]
        for sig, result in self.failures.items():
            lines += [f"- [{self.counts[sig]}x] {sig}", f"    {result['command_line']}",
                      f"    input: {json.dumps(result['case']['input'])}"]
        return "\n".join(lines)

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.md").write_text(self.summary() + "\n")
        with open(folder / "failures.jsonl", "w") as fh:
            for sig, result in self.failures.items():
                fh.write(json.dumps({"signature": sig, "count": self.counts[sig], **result}) + "\n")


@pytest.mark.fuzz
def test_fuzz_every_command(tmp_path):
    """TUMORSEG_FUZZ_CASES seeded cases (make test: 24; make fuzz: 2000); every failure listed with its command line."""
    logging_state = logging.root.handlers[:], logging.root.level
    import torch

    threads = torch.get_num_threads()
    campaign = Campaign(tmp_path)

    # Drawn until CASES distinct cases ran (Campaign skips a repeat): hypothesis draws some cases twice.
    @settings(max_examples=4 * CASES, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=cases())
    def explore(case):
        campaign(case)

    try:
        explore()
    finally:
        logging.root.handlers[:], _ = logging_state
        logging.root.setLevel(logging_state[1])
        torch.set_num_threads(threads)
        if OUT:
            campaign.write(Path(OUT))
        print("\n" + campaign.summary())
    assert not campaign.failures, campaign.summary()


def replay(path: str, number: int = 1) -> None:
    """Run failure `number` (from 1) of a failures.jsonl again, printing its command line and its output."""
    record = json.loads(Path(path).read_text().splitlines()[number - 1])
    with tempfile.TemporaryDirectory() as base:
        result = run_case(record["case"], Path(base))
    print(result["command_line"])
    print(f"exit {result['code']}; {result['problems']}")
    print(result["stderr"])


if __name__ == "__main__":  # python -m tests.test_fuzz replay outputs/fuzz/failures.jsonl N
    if len(sys.argv) >= 3 and sys.argv[1] == "replay":
        replay(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    else:
        print(__doc__)
