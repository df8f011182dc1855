"""Apply RULES.md to the evaluations in outputs/lung/seeded-3d/ and print the tables and the decision.

    python experiments/lung/seeded-3d/decide.py [--copy experiments/lung/seeded-3d/eval]
"""

import argparse
import json
import shutil
from pathlib import Path

RUNS = Path("outputs/lung/seeded-3d")
BASELINE = ("0.3", "0")
GRID = [(t, s) for t in ("0.3", "0.2") for s in ("0.5", "0.7", "0.9")]


def metrics(fold: int, t: str, s: str) -> dict | None:
    path = RUNS / f"fold{fold}-t{t}-s{s}" / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def row(name: str, m: dict) -> str:
    return (f"| {name} | {m['dice']:.4f} | {m['dice_per_subject']:.4f} | {m['dice_per_slice']:.4f} | "
            f"{m['precision']:.3f} | {m['recall']:.3f} | {m['empty_fp_rate']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copy", type=Path, help="copy the metrics.json files used here into this folder")
    args = parser.parse_args()
    if args.copy:
        args.copy.mkdir(parents=True, exist_ok=True)
        for path in RUNS.glob("*/metrics.json"):
            shutil.copy(path, args.copy / f"{path.parent.name}.json")
    head = ("| threshold, seed | Dice | per subject | per slice | precision | recall | empty FP rate |\n"
            "|---|---|---|---|---|---|---|")
    for fold in (0, 1, 2):
        print(f"\nfold {fold}\n{head}")
        for t, s in [BASELINE, *GRID]:
            if (m := metrics(fold, t, s)) is not None:
                print(row(f"{t}, {'off' if s == '0' else s}", m))
    score = {}
    for t, s in GRID:
        ms = [metrics(f, t, s) for f in (0, 1)]
        if all(ms):
            score[(t, s)] = (sum(m["dice_per_subject"] for m in ms) / 2, sum(m["dice"] for m in ms) / 2)
    if len(score) < len(GRID):
        print("\nfolds 0 and 1 are not complete: no choice yet")
        return
    top = max(v[0] for v in score.values())
    chosen = max((k for k, v in score.items() if v[0] > top - 0.002), key=lambda k: score[k][1])
    print(f"\nchosen on folds 0+1: threshold {chosen[0]}, seed {chosen[1]} "
          f"(mean per subject {score[chosen][0]:.4f}, mean Dice {score[chosen][1]:.4f})")
    base, cand = metrics(2, *BASELINE), metrics(2, *chosen)
    if not (base and cand):
        print("fold 2 not evaluated yet: no decision")
        return
    gain, loss = cand["dice_per_subject"] - base["dice_per_subject"], base["dice"] - cand["dice"]
    kept = gain >= 0.005 and loss <= 0.005
    print(f"fold 2: per subject {cand['dice_per_subject']:.4f} vs {base['dice_per_subject']:.4f} "
          f"({gain:+.4f}, needs >= +0.005); "
          f"Dice {cand['dice']:.4f} vs {base['dice']:.4f} ({-loss:+.4f}, needs >= -0.005) "
          f"-> {'KEPT' if kept else 'NOT KEPT'}")


if __name__ == "__main__":
    main()
