"""runtime=auto on a CPU: the fastest way this machine runs a model file, measured once and remembered.

The ways a model file vouches for (`ways_of`): PyTorch fp32; PyTorch bf16 where the CPU has bf16 arithmetic
(hardware.cpu_has_bf16; elsewhere oneDNN emulates it, slower than fp32); its int8 export beside it
(<stem>.int8.onnx) and its fp32 ONNX export beside it (<stem>.onnx), each only when runtime.vouched_export finds
it is an export of this very model with its current choices. An fp32 ONNX export is measured only where one
exists: none ships with the reference model, and no file the user did not ask for is written beside their model.

The first run of a model file on a machine times each way on random input of the model's own shape at the
command's batch size: one warm-up slice each (the first call's one-time costs), then rounds of one batch per way
(interleaved, so that a change in the machine's load touches every way alike), the best batch of each way kept,
until `BUDGET_S` seconds of batches were timed: a few seconds in all for the shipped model on 2 cores. One log
line names the ways, their slices/s and the pick. The pick is kept as JSON in the user's cache folder
(`cache_dir`), keyed by the files' contents, the CPU, its instruction set cap, torch's thread count, the input
shape and the library versions, and reused by later runs; an entry that cannot be read or does not match is
measured again and rewritten, and a cache that cannot be written is said in the log line, never an error. A GPU,
an explicit runtime= or precision=, or an ONNX model file measures nothing.
"""

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import torch

from tumorseg.errors import UserError
from tumorseg.files.output_files import replacing
from tumorseg.inference.hardware import cpu_has_bf16, cpu_name
from tumorseg.inference.model_file import ModelFile
from tumorseg.inference.runtime import Runner, fp32_export_of, int8_export_of, runner_for, torch_device, vouched_export

LOG = logging.getLogger(__name__)
# Timed seconds after which no further round starts: the shipped model's slowest way takes about a second a batch
# of 16 on 2 cores, so it gets one timed batch, a small model several rounds in a few milliseconds.
BUDGET_S = 1.0
ROUNDS = 5
CONTENDER = 1.5  # a way this much slower than the fastest after a round is not timed again: it cannot win


class Way(NamedTuple):
    """One way to run a model on the CPU: its name (runtime and arithmetic), the file that runs and the precision=
    runner_for runs it with."""

    name: str
    model: ModelFile
    precision: str


def ways_of(model: ModelFile) -> list[Way]:
    """The ways the model file (a .ckpt or .pt) vouches for on this CPU, PyTorch fp32 (the exact one) first."""
    found = [Way("pytorch fp32", model, "32")]
    if cpu_has_bf16():
        found.append(Way("pytorch bf16", model, "bf16"))
    for path in (int8_export_of(model), fp32_export_of(model)):
        onnx = vouched_export(model, path)
        if onnx is not None:
            name = f"onnxruntime {'fp32' if onnx.onnx_precision == '32' else onnx.onnx_precision}"
            if name not in {w.name for w in found}:
                found.append(Way(name, onnx, "auto"))
    return found


def measure(runners: dict[str, Runner], shape: tuple[int, ...], budget: float = BUDGET_S,
            rounds: int = ROUNDS) -> dict[str, float]:
    """Slices/s of each runner on random normalized input of shape N x C x S x S: a warm-up slice each, then rounds
    of one batch per way, the best batch of each way kept; a round after the first times only the ways within
    `CONTENDER` of the fastest so far, and none starts once `budget` seconds of batches were timed."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for runner in runners.values():  # the first call's kernel generation and weight layouts: seconds, once
        runner.logits(x[:1])
    best, spent = dict.fromkeys(runners, math.inf), 0.0
    for _ in range(rounds):
        if spent >= budget:
            break
        for name in [k for k, took in best.items() if took <= CONTENDER * min(best.values())]:
            start = time.perf_counter()
            runners[name].logits(x)
            took = time.perf_counter() - start
            best[name], spent = min(best[name], took), spent + took
    return {name: shape[0] / max(took, 1e-9) for name, took in best.items()}


def fastest(rates: dict[str, float]) -> str:
    """The way of the highest slices/s; on a tie the first, so the exact PyTorch fp32 before an approximation."""
    return max(rates, key=rates.__getitem__)


def cache_dir() -> Path:
    """tumorseg's cache folder: $TUMORSEG_CACHE_DIR, else $XDG_CACHE_HOME/tumorseg, else ~/.cache/tumorseg."""
    if os.environ.get("TUMORSEG_CACHE_DIR"):
        return Path(os.environ["TUMORSEG_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "tumorseg"


def file_digest(path: Path) -> str:
    """The sha256 of a file's content: a copy of a model file is the same model, a file rewritten in place not."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def version(package: str) -> str:
    """An installed package's version, or 'none'."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def cache_key(ways: list[Way], shape: tuple[int, ...]) -> dict:
    """What a measured choice holds for: each way's file, the CPU (and an instruction-set cap on it), torch's
    intra-op threads, the input shape, and the versions of torch, ONNX Runtime and tumorseg."""
    return {"ways": {w.name: file_digest(w.model.path) for w in ways}, "cpu": cpu_name(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""), "threads": torch.get_num_threads(),
            "input": list(shape), "versions": {"torch": torch.__version__, "onnxruntime": version("onnxruntime"),
                                               "tumorseg": version("tumorseg")}}


def entry_path(key: dict) -> Path:
    """The cache file of a key: one small JSON file per key, so that runs of different models never race."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "runtime" / f"{digest}.json"


def read_entry(path: Path, key: dict, names) -> dict | None:
    """The cached entry at path when it is readable JSON of this very key naming one of the ways, else None."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable, cut or not JSON: measured again and rewritten
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or entry.get("choice") not in names:
        return None
    return entry


def write_entry(path: Path, entry: dict) -> str:
    """Keep entry at path (temporary name + rename); what became of it, for the log line (never an error)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path, option="TUMORSEG_CACHE_DIR") as temp:
            temp.write_text(json.dumps(entry, indent=1) + "\n")
    except (OSError, UserError) as err:
        return f"not kept ({' '.join(str(err).split())})"
    return f"kept in {path}"


def measured_line(model: ModelFile, shape: tuple[int, ...], rates: dict[str, float], way: Way, kept: str) -> str:
    """The one log line of a measurement: the ways, their slices/s, the pick and where it is kept."""
    figures = ", ".join(f"{name} {rate:.1f}" for name, rate in rates.items())
    return (f"runtime=auto measured {model.path.name} on this CPU ({cpu_name()}, {torch.get_num_threads()} threads, "
            f"batches of {'x'.join(map(str, shape))}): {figures} slices/s -> {way.name} ({way.model.path.name}); "
            f"{kept}")


def auto_runner(model: ModelFile, runtime: str = "auto", device: str | None = "auto", precision: str | None = "auto",
                batch_size: int = 16, log: logging.Logger | None = None) -> tuple[ModelFile, Runner]:
    """(the file that runs, its Runner) for a model already through runtime.chosen_model: with runtime=auto and
    precision=auto on a CPU, the fastest way measured here (or remembered); otherwise runtime.runner_for's."""
    log = log or LOG
    automatic = runtime == "auto" and str(precision or "auto") == "auto" and not model.is_onnx
    if not automatic or torch_device(str(device or "auto"), model).type != "cpu":
        return model, runner_for(model, device, precision)
    ways = ways_of(model)
    if len(ways) == 1:
        return model, runner_for(model, "cpu", "32")
    prep = model.preprocessing
    shape = (batch_size, prep.channels, prep.image_size, prep.image_size)
    key = cache_key(ways, shape)
    path, by_name = entry_path(key), {w.name: w for w in ways}
    entry = read_entry(path, key, by_name)
    if entry is not None:
        way = by_name[entry["choice"]]
        note = f"runtime=auto: {way.name} ({way.model.path.name}), the fastest way measured on this CPU ({path})"
        log.info(note)
        return way.model, chosen(runner_for(way.model, "cpu", way.precision), note)
    runners = runners_of(ways)
    rates = measure(runners, shape)
    way = by_name[fastest(rates)]
    kept = write_entry(path, {"key": key, "slices_per_s": {k: round(v, 3) for k, v in rates.items()},
                              "choice": way.name})
    line = measured_line(model, shape, rates, way, kept)
    log.info(line)
    return way.model, chosen(runners[way.name], line)


def runners_of(ways: list[Way]) -> dict[str, Runner]:
    """A Runner of each way on the CPU; PyTorch's ways share one net, as only their autocast differs."""
    runners: dict[str, Runner] = {}
    for way in ways:
        shared = next((r for r in runners.values() if r.runtime == "pytorch"), None)
        if way.model.is_onnx or shared is None:
            runners[way.name] = runner_for(way.model, "cpu", way.precision)
        else:
            runners[way.name] = replace(shared, precision=way.precision)
    return runners


def chosen(runner: Runner, how: str) -> Runner:
    """runner, noting how runtime=auto chose it (bench shows it)."""
    runner.chosen_by = how
    return runner
