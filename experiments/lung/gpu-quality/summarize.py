"""The end of run.sh: every fold model's evaluation, the decisions of RULES.md, speed; then what comes back in $OUT.

    python experiments/lung/gpu-quality/summarize.py WORK OUT "R DEV CTX2 ..." "0 1 2 3 4" EPOCHS

Reads WORK/runs/<arm>/fold<k>/metrics.json (train: epochs, fit_minutes) and WORK/eval/<arm>-<k>/metrics.json
(evaluate on the fold's unseen subjects: dice = whole-image, dice_per_subject). Writes OUT/summary.json,
OUT/summary.md, OUT/runs.tar.xz (logs, configs, metrics; no checkpoints) and OUT/models/models-<n>.tar: the fold
models' weights in fp16 (tumorseg model files, .pt), whole arms in the order of RULES.md, within the device tool's
limits (8 files of at most 16 MiB, 64 MiB in all, with the three files above).
"""

import json
import statistics
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

CONTROL, SPEED_ARM = "R", "DEV"
TARGETS = {"dice_per_subject": 0.60, "dice": 0.60}  # 5-fold means (the CV targets)
MIN_FOLD_WINS = 4  # of 5: per-subject Dice above the control's
SPEED_TOLERANCE = 0.02  # DEV: its mean per-subject Dice may be this much below the control's
FILE_LIMIT, TOTAL_LIMIT, FILES = 15.5 * 2**20, 60 * 2**20, 5  # model bundles: what the tool brings back, with margin


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def fold_rows(work: Path, arm: str, folds: list[int], epochs: int) -> list[dict]:
    """One row per fold: the run's epochs and time, the evaluation's Dice figures (None where missing)."""
    rows = []
    for k in folds:
        run = load(work / "runs" / arm / f"fold{k}" / "metrics.json") or {}
        ev = load(work / "eval" / f"{arm}-{k}" / "metrics.json") or {}
        done, minutes = run.get("epochs"), run.get("fit_minutes")
        rows.append({"fold": k, "epochs": done, "complete": done is not None and done >= epochs,
                     "fit_minutes": minutes, "s_per_epoch": round(minutes * 60 / done, 1) if done and minutes else None,
                     **{key: ev.get(key) for key in ("dice", "dice_per_subject", "recall", "empty_fp_rate")}})
    return rows


def mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.fmean(values), 4) if values else None


def decide(arm: str, rows: list[dict], control: list[dict], n_folds: int) -> tuple[str, dict]:
    """RULES.md's verdict for an arm against the control: kept, not kept, or undecided (and the figures)."""
    figures = {key: mean([r[key] for r in rows]) for key in ("dice_per_subject", "dice", "s_per_epoch")}
    ok = [r for r in rows + control if r["dice_per_subject"] is not None and r["complete"]]
    if arm == CONTROL:
        return "control", figures
    if len(ok) < 10 or n_folds < 5:
        return f"undecided: {len(ok)} of 10 runs (arm and control, 5 folds) complete and evaluated", figures
    ref = {key: mean([r[key] for r in control]) for key in figures}
    wins = sum(a["dice_per_subject"] > b["dice_per_subject"] for a, b in zip(rows, control))
    figures["fold_wins"] = wins
    figures.update({f"{k}_vs_control": round(figures[k] - ref[k], 4) for k in ("dice_per_subject", "dice")})
    if arm == SPEED_ARM:
        faster = figures["s_per_epoch"] < ref["s_per_epoch"]
        close = figures["dice_per_subject"] >= ref["dice_per_subject"] - SPEED_TOLERANCE
        return ("kept" if faster and close else "not kept") + " (speed arm)", figures
    better = figures["dice_per_subject"] > ref["dice_per_subject"] and figures["dice"] > ref["dice"]
    return ("kept" if better and wins >= MIN_FOLD_WINS else "not kept"), figures


def slim(ckpt: Path, out: Path) -> Path:
    """The checkpoint's net as a tumorseg model file in fp16 (no optimizer state); every command reads it as fp32."""
    from tumorseg.inference import model_file

    model = model_file.read(ckpt)
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.weights.items()}
    return model_file.save(replace(model, weights=half, source={"checkpoint": str(ckpt), "fp16": True}), out)


def bundle_models(work: Path, out: Path, order: list[str], folds: list[int]) -> dict[str, str]:
    """Whole arms' fold models, in `order`, into at most FILES tars within the limits: {arm: its tars, or why none}."""
    (work / "models").mkdir(exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    bundles: list[list[Path]] = [[]]
    reasons = {}
    for arm in order:
        ckpts = [work / "runs" / arm / f"fold{k}" / "checkpoints" / "last.ckpt" for k in folds]
        if not all(c.is_file() for c in ckpts):
            reasons[arm] = "none: a fold has no last.ckpt"
            continue
        trial = [list(b) for b in bundles]
        for k, ckpt in zip(folds, ckpts):
            f = slim(ckpt, work / "models" / f"{arm}-fold{k}.pt")
            if sum(p.stat().st_size for p in trial[-1]) + f.stat().st_size > FILE_LIMIT:
                trial.append([])
            trial[-1].append(f)
        if len(trial) > FILES or sum(p.stat().st_size for b in trial for p in b) > TOTAL_LIMIT:
            reasons[arm] = "none: over the device tool's limits"
            continue
        bundles = trial
    returned: dict[str, set[str]] = {}
    for n, bundle in enumerate((b for b in bundles if b), 1):
        name = f"models-{n}.tar"
        with tarfile.open(out / "models" / name, "w") as tar:
            for f in bundle:
                tar.add(f, arcname=f.name)
                returned.setdefault(f.name.rsplit("-fold", 1)[0], set()).add(name)
    return {**reasons, **{arm: ", ".join(sorted(names)) for arm, names in returned.items()}}


def pack_logs(work: Path, out: Path) -> None:
    """Logs, configs and metrics of every run and evaluation as OUT/runs.tar.xz (no checkpoints or models)."""
    keep = (".log", ".json", ".yaml", ".txt")
    with tarfile.open(out / "runs.tar.xz", "w:xz") as tar:
        for path in sorted(work.rglob("*")):
            parts = path.relative_to(work).parts
            if path.is_file() and path.suffix in keep and parts[0] in ("runs", "eval", "logs", "machine.txt"):
                tar.add(path, arcname=path.relative_to(work).as_posix())


def markdown(summary: dict) -> str:
    """The summary as tables: per arm, then per fold."""
    lines = [f"# gpu-quality: {summary['epochs']} epochs, folds {summary['folds']}", "",
             "| arm | change | per-subject Dice | whole-image Dice | vs R (per-subject / whole) | folds won | "
             "s/epoch | verdict | models |", "|---|---|---|---|---|---|---|---|---|"]
    for arm, a in summary["arms"].items():
        f = a["figures"]
        vs = (f"{f['dice_per_subject_vs_control']:+.4f} / {f['dice_vs_control']:+.4f}"
              if "dice_vs_control" in f else "")
        lines.append(f"| {arm} | {a['change'] or '(control)'} | {f['dice_per_subject']} | {f['dice']} | {vs} | "
                     f"{f.get('fold_wins', '')} | {f['s_per_epoch']} | {a['verdict']} | {a['models']} |")
    lines += ["", "| arm | fold | epochs | complete | s/epoch | per-subject Dice | whole-image Dice | recall |",
              "|---|---|---|---|---|---|---|---|"]
    for arm, a in summary["arms"].items():
        for r in a["folds"]:
            lines.append(f"| {arm} | {r['fold']} | {r['epochs']} | {r['complete']} | {r['s_per_epoch']} | "
                         f"{r['dice_per_subject']} | {r['dice']} | {r['recall']} |")
    lines += ["", f"CV targets (5-fold means): per-subject >= {TARGETS['dice_per_subject']}, whole-image >= "
              f"{TARGETS['dice']}; met by: {', '.join(summary['meet_cv_targets']) or 'none'}.",
              f"Timing (s): {summary['timing']}"]
    return "\n".join(lines) + "\n"


def main(work: Path, out: Path, arms: list[str], folds: list[int], epochs: int, changes: dict[str, str]) -> dict:
    control = fold_rows(work, CONTROL, folds, epochs)
    result = {}
    for arm in arms:
        rows = fold_rows(work, arm, folds, epochs)
        verdict, figures = decide(arm, rows, control, len(folds))
        result[arm] = {"change": changes.get(arm, ""), "verdict": verdict, "figures": figures, "folds": rows}
    gain = {a: result[a]["figures"].get("dice_per_subject_vs_control") or -1.0 for a in arms}
    order = sorted((a for a in arms if a not in (CONTROL, SPEED_ARM)),
                   key=lambda a: (not result[a]["verdict"].startswith("kept"), -gain[a]))
    placed = bundle_models(work, out, order + [SPEED_ARM, CONTROL], folds)
    for arm in arms:
        result[arm]["models"] = placed.get(arm, "")
    meet = [a for a in arms if all((result[a]["figures"][k] or 0) >= t for k, t in TARGETS.items())]
    timing = load(work / "timing.json") or {}
    summary = {"epochs": epochs, "folds": folds, "arms": result, "meet_cv_targets": meet, "timing": timing,
               "machine": (work / "machine.txt").read_text() if (work / "machine.txt").is_file() else ""}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    pack_logs(work, out)
    return summary


if __name__ == "__main__":
    work_dir, out_dir, arm_names, fold_list, n_epochs = sys.argv[1:6]
    change_of = dict(item.split("=", 1) for item in sys.argv[6:])  # ARM=overrides, for the tables
    print(markdown(main(Path(work_dir), Path(out_dir), arm_names.split(), [int(k) for k in fold_list.split()],
                        int(n_epochs), change_of)))
