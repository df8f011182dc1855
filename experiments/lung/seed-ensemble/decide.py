"""Apply RULES.md rule 2: the seed-42 + seed-7 ensemble against seed 42 alone (../lite-net/eval) on CV folds 0 and 1.

    python experiments/lung/seed-ensemble/decide.py
"""

import json
from pathlib import Path

HERE = Path(__file__).parent


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def main() -> None:
    rows = {"seed 42 (shipped recipe)": lambda f: HERE.parent / f"lite-net/eval/fold{f}.json",
            "seed 7": lambda f: HERE / f"eval/seed7-fold{f}.json",
            "ensemble 42 + 7": lambda f: HERE / f"eval/ensemble-fold{f}.json"}
    print("| fold | model | Dice | per subject | per slice | precision | recall |\n|---|---|---|---|---|---|---|")
    gains = {"dice": 0.0, "dice_per_subject": 0.0}
    for fold in (0, 1):
        figures = {name: load(where(fold)) for name, where in rows.items()}
        for name, m in figures.items():
            print(f"| {fold} | {name} | {m['dice']:.4f} | {m['dice_per_subject']:.4f} | {m['dice_per_slice']:.4f} "
                  f"| {m['precision']:.3f} | {m['recall']:.3f} |")
        for key in gains:
            gains[key] += (figures["ensemble 42 + 7"][key] - figures["seed 42 (shipped recipe)"][key]) / 2
    kept = gains["dice_per_subject"] >= 0.01 and gains["dice"] >= 0
    print(f"\nmean ensemble - seed 42: whole-image {gains['dice']:+.4f} (needs >= 0), per subject "
          f"{gains['dice_per_subject']:+.4f} (needs >= +0.01) -> {'KEPT' if kept else 'NOT kept'}")


if __name__ == "__main__":
    main()
