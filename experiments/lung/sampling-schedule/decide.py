"""Apply RULES.md rule 1 (and its addendum): each arm against the shipped recipe's fold models at seeds 42 and 7,
CV folds 0 and 1.

    python experiments/lung/sampling-schedule/decide.py
"""

import json
from pathlib import Path
from statistics import mean

HERE = Path(__file__).parent
BASELINE = {"recipe, seed 42": HERE.parent / "lite-net/eval/fold{}.json",
            "recipe, seed 7": HERE.parent / "seed-ensemble/eval/seed7-fold{}.json"}
ARMS = {"share95 (tumor_share=0.95)": HERE / "eval/share95-fold{}.json",
        "cosine (scheduler=cosine)": HERE / "eval/cosine-fold{}.json",
        "poly (scheduler=poly)": HERE / "eval/poly-fold{}.json",
        "ema (callbacks=ema)": HERE / "eval/ema-fold{}.json"}
FOLDS = (0, 1)


def figures(pattern: Path) -> list[dict] | None:
    """The fold metrics of one model, or None while an arm is not evaluated yet."""
    paths = [Path(str(pattern).format(f)) for f in FOLDS]
    return [json.loads(p.read_text()) for p in paths] if all(p.exists() for p in paths) else None


def main() -> None:
    models = {name: figures(p) for name, p in {**BASELINE, **ARMS}.items()}
    print("| model | fold 0 whole / per subject | fold 1 whole / per subject | mean whole | mean per subject "
          "| mean precision | mean recall |\n|---|---|---|---|---|---|---|")
    for name, m in models.items():
        if m is None:
            print(f"| {name} | not evaluated | | | | | |")
            continue
        folds = " | ".join(f"{x['dice']:.4f} / {x['dice_per_subject']:.4f}" for x in m)
        print(f"| {name} | {folds} | {mean(x['dice'] for x in m):.4f} | {mean(x['dice_per_subject'] for x in m):.4f} "
              f"| {mean(x['precision'] for x in m):.3f} | {mean(x['recall'] for x in m):.3f} |")
    base = [models[name] for name in BASELINE]
    per_subject_bar = max(mean(x["dice_per_subject"] for x in m) for m in base) + 0.01
    whole_bar = mean(x["dice"] for m in base for x in m)
    print(f"\nscreen: per subject >= {per_subject_bar:.4f} (the better seed's mean + 0.01) and whole-image >= "
          f"{whole_bar:.4f} (the four baseline models' mean)")
    for name in ARMS:
        m = models[name]
        if m is not None:
            ps, whole = mean(x["dice_per_subject"] for x in m), mean(x["dice"] for x in m)
            passed = ps >= per_subject_bar and whole >= whole_bar
            print(f"- {name}: per subject {ps:.4f}, whole-image {whole:.4f} -> {'PASSES' if passed else 'not kept'}")


if __name__ == "__main__":
    main()
