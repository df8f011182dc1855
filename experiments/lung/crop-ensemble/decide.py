"""Apply RULES.md rules 1-2: the three crop-trained members' ensemble (C) against the shipped recipe's
two-seed ensemble (B, ../seed-ensemble/eval) on CV folds 0 and 1.

    python experiments/lung/crop-ensemble/decide.py
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
ROWS = {"B: whole slices, seeds 42 + 7 (shipped recipe)": "../seed-ensemble/eval/ensemble-fold{}.json",
        "crop 128, seed 42": "eval/s42-fold{}.json",
        "crop 128, seed 7": "eval/s7-fold{}.json",
        "crop 128, seed 1": "eval/s1-fold{}.json",
        "C: crop 128, seeds 42 + 7 + 1": "eval/ensemble-fold{}.json"}
B, C = "B: whole slices, seeds 42 + 7 (shipped recipe)", "C: crop 128, seeds 42 + 7 + 1"


def main() -> None:
    print("| fold | model | Dice | per subject | per slice | precision | recall |\n|---|---|---|---|---|---|---|")
    means = {name: {"dice": 0.0, "dice_per_subject": 0.0} for name in ROWS}
    for fold in (0, 1):
        for name, where in ROWS.items():
            m = json.loads((HERE / where.format(fold)).read_text())
            print(f"| {fold} | {name} | {m['dice']:.4f} | {m['dice_per_subject']:.4f} | {m['dice_per_slice']:.4f} "
                  f"| {m['precision']:.3f} | {m['recall']:.3f} |")
            for key in means[name]:
                means[name][key] += m[key] / 2
    b, c = means[B], means[C]
    passed = c["dice_per_subject"] >= b["dice_per_subject"] + 0.01 and c["dice"] >= b["dice"]
    level = c["dice_per_subject"] >= b["dice_per_subject"] - 0.01 and c["dice"] >= b["dice"] - 0.01
    verdict = "PASSED (rule 3: evaluate the approach=full ensemble on val)" if passed else (
        "failed, within 0.01 of B: a cheaper equivalent, not shipped" if level else "failed: not kept")
    print(f"\nmeans over folds 0 and 1: C {c['dice']:.4f} / {c['dice_per_subject']:.4f} against B "
          f"{b['dice']:.4f} / {b['dice_per_subject']:.4f} (whole-image / per subject; C needs >= "
          f"{b['dice']:.4f} / {b['dice_per_subject'] + 0.01:.4f}) -> {verdict}")


if __name__ == "__main__":
    main()
