"""Recorded results read back for a comparison: an evaluate output (metrics.json with its subjects or cases, or a
copy of one such as metrics_t0.3.json), a training run (metrics.json's test/* figures) or a CV sweep of them, each
as folds of whole-image Dice, per-subject Dice and, where recorded, Dice by subject.

Which fold a result holds: a run's own record (.hydra/config.yaml, approach=cv and its approach.fold), else a name
`fold<N>` in its file name or in a folder between it and the folder given; a lone result needs none.
"""

import glob
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tumorseg.errors import UserError

FOLD_NAME = re.compile(r"fold[-_]?(\d+)", re.IGNORECASE)
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class FoldResult:
    """One result: fold (None: not named), the files it was read from, whole-image Dice (None for CT volumes, which
    have no pooled figure), per-subject Dice, Dice by subject or case (None where only the mean is recorded: older
    evaluate outputs, training runs) and what was scored (to pair results that do not name their subjects)."""

    fold: str | None
    files: tuple[Path, ...]
    whole: float | None
    per_subject: float
    subjects: dict[str, float] | None
    scored: tuple


def read_json(path: Path) -> dict:
    """A JSON object from path, or a UserError naming the file."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} cannot be read as JSON ({type(err).__name__}): give a metrics.json written by "
                        f"tumorseg evaluate or train") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{path} is not a JSON object of figures: give a metrics.json written by tumorseg evaluate or "
                        f"train")
    return loaded


def dice_by_item(items: object, path: Path, key: str) -> dict[str, float]:
    """Dice by subject (or case) of a results file's `key` block; a case with nothing to find and nothing found
    (Dice null) counts 1, the slice metrics' rule for an empty subject."""
    if not isinstance(items, dict) or not items:
        raise UserError(f"{path}: '{key}' holds no figures by subject: give an evaluate output of tumorseg evaluate")
    dice = {}
    for name, figures in items.items():
        value = figures.get("dice", "missing") if isinstance(figures, dict) else "missing"
        dice[str(name)] = 1.0 if value is None else dice_figure(value, path, f"the Dice of '{name}' under '{key}'")
    return dice


def dice_figure(value: object, path: Path, what: str) -> float:
    """A Dice figure as a float, or a UserError naming it and the file: a number between 0 and 1 (a NaN, an
    infinity or a value outside [0, 1] is no Dice, and a comparison on it would be wrong)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{path}: {what} is missing or not a number ({value!r}): give a metrics.json written by "
                        f"tumorseg evaluate or train, or restore it from the run that wrote it")
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise UserError(f"{path}: {what} is {value!r}, not a Dice between 0 and 1: restore the file from the run "
                        f"that wrote it, or leave the result out")
    return float(value)


def result_of(path: Path, fold: str | None) -> FoldResult:
    """One results file: an evaluate output (slices or volumes) or a training run's metrics.json."""
    metrics, record = read_json(path), run_record(path)
    if "cases" in metrics:
        cases = dice_by_item(metrics["cases"], path, "cases")
        return FoldResult(fold, (path,), None, mean(cases), cases, ("cases", len(cases)))
    if "data_dir" in metrics or "subjects" in metrics:
        subjects = dice_by_item(metrics["subjects"], path, "subjects") if "subjects" in metrics else None
        return FoldResult(fold, (path,), number(metrics, "dice", path),
                          mean(subjects) if subjects else number(metrics, "dice_per_subject", path), subjects,
                          ("slices", metrics.get("n_subjects"), metrics.get("n_images")))
    if "test/dice" in metrics:
        approach = record.get("approach") if isinstance(record.get("approach"), dict) else {}
        split = json.dumps({k: v for k, v in approach.items() if k != "fold"}, sort_keys=True) if approach else None
        return FoldResult(fold, (path,), number(metrics, "test/dice", path),
                          number(metrics, "test/dice_per_subject", path), None, ("run", split))
    raise UserError(f"{path} holds no Dice figures (no 'subjects', 'cases', 'data_dir' or 'test/dice'): give a "
                    f"metrics.json written by tumorseg evaluate, or by tumorseg train with a test part")


def mean(dice: dict[str, float]) -> float:
    """The mean of the subjects' (or cases') Dice: evaluate's dice_per_subject."""
    return sum(dice.values()) / len(dice)


def run_record(path: Path) -> dict:
    """The run config recorded beside a results file (.hydra/config.yaml; {} when there is none)."""
    record = path.parent / ".hydra" / "config.yaml"
    if not record.is_file():
        return {}
    try:
        loaded = yaml.safe_load(record.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        raise UserError(f"{record} is not a readable YAML record: restore it from the run") from None
    return loaded if isinstance(loaded, dict) else {}


def number(metrics: dict, key: str, path: Path) -> float:
    """A Dice figure of a results file, or a UserError naming the key and the file."""
    return dice_figure(metrics.get(key), path, f"'{key}'")


def results_files(given: str, option: str) -> list[Path]:
    """The results files a comparison side names: a file, a glob pattern, a run or evaluate folder (its
    metrics.json), a sweep (every metrics.json below it) or a folder of recorded results (its *.json)."""
    path = Path(given).expanduser()
    if any(c in given for c in GLOB_CHARS):
        found = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
    elif path.is_file():
        found = [path]
    elif path.is_dir():
        found = [path / "metrics.json"] if (path / "metrics.json").is_file() else sorted(path.rglob("metrics.json"))
        found = found or sorted(path.glob("*.json"))
    else:
        raise UserError(f"{option}={given} does not exist: give a run, sweep or evaluate folder, or a results file")
    if not found:
        raise UserError(f"{option}={given} holds no results (metrics.json or *.json): give a run, sweep or evaluate "
                        f"folder, or a results file")
    return found


def fold_of(path: Path, root: Path) -> str | None:
    """The fold a results file holds: its run's approach.fold under approach=cv, else fold<N> in its name or in a
    folder between it and root (root's own name included), else None."""
    approach = run_record(path).get("approach")
    if isinstance(approach, dict) and approach.get("name") == "cv" and isinstance(approach.get("fold"), int):
        return str(approach["fold"])
    names = [path.stem, *(p.name for p in path.parents if p == root or root in p.parents)]
    for name in names:
        match = FOLD_NAME.search(name)
        if match:
            return str(int(match.group(1)))
    return None


def fixed_part(path: Path) -> Path:
    """A path up to its first component with a glob character (the folder a pattern searches)."""
    parts = list(path.parts)
    cut = next((i for i, part in enumerate(parts) if any(c in part for c in GLOB_CHARS)), len(parts))
    return Path(*parts[:cut]) if cut else Path(".")


def read_side(given: list[str], option: str) -> list[FoldResult]:
    """Every result a comparison side names (a path, glob pattern or a list of them), each with its fold."""
    results = []
    for item in given:
        root = fixed_part(Path(item).expanduser())
        for path in results_files(item, option):
            results.append(result_of(path, fold_of(path, root if root.is_dir() else path.parent)))
    return results


def by_fold(results: list[FoldResult], option: str) -> dict[str | None, FoldResult]:
    """The side's results by fold; a fold twice, or a result of several without a fold, is refused."""
    folds: dict[str | None, FoldResult] = {}
    key = option.split("=", 1)[0]
    for r in results:
        if r.fold is None and len(results) > 1:
            raise UserError(f"{option}: cannot tell which fold {r.files[0]} holds (no approach.fold in its run "
                            f"record, no fold<N> in its name): name its folder or file fold<N>, or leave it out "
                            f"with a glob pattern, e.g. {key}='DIR/fold*.json'")
        if r.fold in folds:
            raise UserError(f"{option} holds fold {r.fold} twice ({folds[r.fold].files[0]} and {r.files[0]}): give "
                            f"one result per fold, e.g. a glob pattern such as {key}='DIR/ensemble-fold*.json'")
        folds[r.fold] = r
    return folds
