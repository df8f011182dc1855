"""Apply RULES.md rule 2 to eval/fold{0,1}.json against the default network's CPU fold models (../lcc-3d/eval, plain).

    python experiments/lung/lite-net/decide.py
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
KEYS = ("dice", "dice_per_subject")


def figures(path: Path) -> dict:
    return json.loads(path.read_text())


def main() -> None:
    print("| fold | network | Dice | per subject | per slice | precision | recall |\n|---|---|---|---|---|---|---|")
    diffs = []
    for f in (0, 1):
        default = figures(HERE.parent / f"lcc-3d/eval/fold{f}.json")["plain"]
        lite = figures(HERE / f"eval/fold{f}.json")
        for name, m in (("default (base 16, depth 4)", default), ("unet_lite", lite)):
            print(f"| {f} | {name} | {m['dice']:.4f} | {m['dice_per_subject']:.4f} | {m['dice_per_slice']:.4f} "
                  f"| {m['precision']:.3f} | {m['recall']:.3f} |")
        diffs.append([lite[k] - default[k] for k in KEYS])
    whole, subject = (sum(d[i] for d in diffs) / 2 for i in range(2))
    passed = whole >= -0.01 and subject >= -0.01
    print(f"\nmean unet_lite - default: whole-image {whole:+.4f}, per subject {subject:+.4f} (both need >= -0.01) "
          f"-> {'NON-INFERIOR' if passed else 'NOT non-inferior'}")


if __name__ == "__main__":
    main()
