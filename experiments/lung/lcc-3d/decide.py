"""Apply RULES.md to eval/fold0.json and eval/fold1.json (paired.py's output) and print the table and the screen.

    python experiments/lung/lcc-3d/decide.py
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
GPU_TB8 = {0: (0.500, 0.625), 1: (0.576, 0.533)}  # ../loss-gpu/: the same recipe trained on a GPU


def cell(m: dict) -> str:
    return f"{m['dice']:.4f} / {m['dice_per_subject']:.4f} | {m['precision']:.3f} / {m['recall']:.3f}"


def main() -> None:
    runs = {f: json.loads((HERE / f"eval/fold{f}.json").read_text())
            for f in (0, 1) if (HERE / f"eval/fold{f}.json").is_file()}
    print("| fold | GPU Tb8 (../loss-gpu/) | plain: Dice / per subject | precision / recall | LCC: Dice / per subject "
          "| precision / recall | LCC - plain, per subject |\n|---|---|---|---|---|---|---|")
    for f, r in runs.items():
        gain = r["lcc"]["dice_per_subject"] - r["plain"]["dice_per_subject"]
        print(f"| {f} | {GPU_TB8[f][0]:.3f} / {GPU_TB8[f][1]:.3f} | {cell(r['plain'])} | {cell(r['lcc'])} "
              f"| {gain:+.4f} |")
    if len(runs) < 2:
        print("\nfolds 0 and 1 are not both evaluated: no decision")
        return
    subject = [r["lcc"]["dice_per_subject"] - r["plain"]["dice_per_subject"] for r in runs.values()]
    whole = [r["lcc"]["dice"] - r["plain"]["dice"] for r in runs.values()]
    mean_s, mean_w = sum(subject) / 2, sum(whole) / 2
    passed = mean_s >= 0.01 and mean_w >= 0 and min(subject) >= 0
    print(f"\nmean LCC - plain: per subject {mean_s:+.4f} (needs >= +0.01), whole-image {mean_w:+.4f} (needs >= 0), "
          f"per-subject lowest fold {min(subject):+.4f} (needs >= 0) -> screen {'PASSED' if passed else 'FAILED'}")


if __name__ == "__main__":
    main()
