"""Results table: one Markdown row per run (or per run of a sweep dir).

    tumorseg report runs=SWEEP_DIR [out=report.md] [overwrite=true]
    tumorseg report runs=[RUN_DIR,RUN_DIR,...]

The table's file starts with MARK: a later report replaces a file it wrote, and refuses any other (overwrite=true
replaces it, by rename).
"""

import json
import os
import statistics
import sys
from pathlib import Path

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tumorseg import CONF_DIR
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.files.output_files import replace_text

MARK = "<!-- tumorseg report: a later `tumorseg report` replaces this file -->\n"
# (header, metrics.json key); the original study's loss columns first.
COLUMNS = [("epochs", "epochs"), ("train min", "fit_minutes"),
           ("train loss", "train/loss"), ("val loss", "val/loss"), ("test loss", "test/loss"),
           ("train bce", "train/bce"), ("val bce", "val/bce"), ("test bce", "test/bce"),
           ("val dice", "val/dice"), ("val iou", "val/iou"), ("val dice/subject", "val/dice_per_subject"),
           ("test dice", "test/dice"), ("test iou", "test/iou"), ("test dice/subject", "test/dice_per_subject")]
CHOICES = ("approach", "model", "input", "loss", "augment")
# Columns of an evaluate run (python -m tumorseg.evaluate writes metrics.json with data_dir in it).
EVAL_COLUMNS = [("threshold", "threshold"), ("tta", "tta"), ("min size", "min_size"), ("slices", "n_images"),
                ("subjects", "n_subjects"), ("dice", "dice"), ("iou", "iou"), ("dice/subject", "dice_per_subject"),
                ("dice/slice", "dice_per_slice"), ("precision", "precision"), ("recall", "recall"),
                ("empty FP rate", "empty_fp_rate")]


def natural_order(path: Path) -> list[tuple]:
    """Sort key: sweep job numbers as numbers (2 before 10), other names as text; both kinds may sit side by side."""
    return [(0, int(part), "") if part.isascii() and part.isdigit() else (1, 0, part) for part in path.parts]


def read_metrics(run: Path) -> dict:
    """A run's metrics.json (UserError naming the file when it is not a JSON object)."""
    try:
        metrics = json.loads((run / "metrics.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{run / 'metrics.json'} cannot be read as JSON ({err}): rerun that run, or leave its "
                        f"folder out of runs=") from None
    if not isinstance(metrics, dict):
        raise UserError(f"{run / 'metrics.json'} is not a JSON object of figures: leave its folder out of runs=")
    return metrics


def find_runs(paths: list[str]) -> list[Path]:
    """Run dirs (holding metrics.json) at or below each path, in order."""
    runs = []
    for arg in paths:
        path = Path(arg)
        if not path.exists():
            raise UserError(f"{path} does not exist: give run dirs or sweep dirs holding metrics.json")
        found = [path] if (path / "metrics.json").is_file() else sorted(
            (p.parent for p in path.rglob("metrics.json")), key=natural_order)
        if not found:
            raise UserError(f"{path} holds no metrics.json: is it a finished tumorseg.train run?")
        runs += found
    return runs


def record(path: Path) -> DictConfig:
    """A run's .hydra record (empty when the run has none); one that is not a YAML mapping is a UserError."""
    if not path.is_file():
        return OmegaConf.create()
    try:
        loaded = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError, OSError) as err:
        raise UserError(f"{path} is not a readable YAML record ({type(err).__name__}): restore it from the run, or "
                        f"leave that run out of runs=") from None
    if not isinstance(loaded, DictConfig):
        raise UserError(f"{path} is not a YAML mapping: restore it from the run, or leave that run out of runs=")
    return loaded


def describe(run: Path) -> dict:
    """The run's group choices (from .hydra/) and its final metrics."""
    row = {"run": str(run)}
    metrics = read_metrics(run)
    if "data_dir" in metrics:  # an evaluate run
        return {**row, **metrics}
    hydra_yaml, config_yaml = run / ".hydra/hydra.yaml", run / ".hydra/config.yaml"
    choices = OmegaConf.select(record(hydra_yaml), "hydra.runtime.choices", default=None) or {}
    config = record(config_yaml)
    for group in CHOICES:
        row[group] = str(choices.get(group, "?"))
    context = OmegaConf.select(config, "data.context_slices", default=0) or 0
    row["input"] = f"2.5D (±{context})" if context else "2D"
    if "model" in config:
        row["model"] += f" ({config.model.base_channels})"
    if "approach" in config and config.approach.get("group_by", "subject") is None:
        row["approach"] += " (slice-level)"
    if "approach" in config and config.approach.get("name") == "cv":
        row["fold"] = f"{config.approach.fold}/{config.approach.k}"
        # Folds of one setting: the whole config but the fold and where the run was written.
        setting = OmegaConf.to_container(config)
        setting["approach"].pop("fold", None)
        for key in ("paths", "task_name"):
            setting.pop(key, None)
        row["setting"] = json.dumps(setting, sort_keys=True, default=str)
    row.update(metrics)
    return row


def cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def fold_summaries(rows: list[dict], keys: list[str]) -> list[dict]:
    """mean ± std over the folds of each cross-validated setting (runs that differ only in fold)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if "fold" in r:
            groups.setdefault(r.get("setting", ""), []).append(r)
    out = []
    for runs in groups.values():
        if len(runs) < 2:
            continue
        prefix = os.path.commonprefix([Path(r["run"]).name for r in runs]).rstrip("-_ ")
        row = {"run": f"{prefix + ': ' if prefix else ''}mean ± std over {len(runs)} folds", "summary": True,
               **{g: runs[0][g] for g in CHOICES}}
        for key in keys:
            values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
            if values:
                row[key] = f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0:.4f}"
        out.append(row)
    return out


def table(rows: list[dict], fixed: tuple[str, ...], columns: list[tuple[str, str]], base: str) -> list[str]:
    """Markdown lines: run name, the `fixed` fields, then the `columns` some row has."""
    columns = [(h, k) for h, k in columns if any(k in r for r in rows)]
    header = ["run", *fixed, *(h for h, _ in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        name = os.path.relpath(os.path.abspath(r["run"]), base) if base and not r.get("summary") else r["run"]
        name += f" (fold {r['fold']})" if "fold" in r else ""
        lines.append("| " + " | ".join([name, *(r[g] for g in fixed), *(cell(r.get(k)) for _, k in columns)]) + " |")
    return lines


def markdown(rows: list[dict]) -> str:
    """Markdown tables (training runs, then evaluate runs); columns no run has are left out;
    cross-validation folds get a mean ± std row."""
    base = os.path.commonpath([os.path.abspath(r["run"]) for r in rows]) if len(rows) > 1 else ""
    trained, evaluated = [r for r in rows if "data_dir" not in r], [r for r in rows if "data_dir" in r]
    lines = []
    if trained:
        keys = [k for _, k in COLUMNS]
        lines += table(trained + fold_summaries(trained, keys), CHOICES, COLUMNS, base)
    if evaluated:
        for r in evaluated:
            r["checkpoint"] = os.path.relpath(r["ckpt_path"])
        lines += ([""] if lines else []) + table(evaluated, ("checkpoint",), EVAL_COLUMNS, base)
    return "\n".join(lines) + "\n"


def written_by_report(path: Path) -> bool:
    """Whether the file at path starts with MARK (a table an earlier report wrote)."""
    with open(path, "rb") as f:
        return f.read(len(MARK.encode())) == MARK.encode()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="report")
@exit_on_user_error
def main(cfg: DictConfig) -> str:
    if not cfg.runs:
        raise UserError("runs is not set: runs=<sweep dir> or runs=[<run dir>,<run dir>]")
    runs = find_runs([str(r) for r in cfg.runs] if OmegaConf.is_list(cfg.runs) else [str(cfg.runs)])
    table = markdown([describe(r) for r in runs])
    out = Path(cfg.out) if cfg.out else Path(os.path.commonpath([os.path.abspath(r) for r in runs])) / "report.md"
    if out.is_dir():
        raise UserError(f"out={out} is a folder: name the file, e.g. out={out / 'report.md'}")
    if out.is_file() and not cfg.get("overwrite") and not written_by_report(out):
        raise UserError(f"out={out} exists and was not written by tumorseg report: choose another out=, or add "
                        f"overwrite=true to replace it")
    replace_text(out.parent, out, MARK + table, option="out")
    sys.stdout.write(table)
    print(f"written: {out}")
    return table


if __name__ == "__main__":
    main()
