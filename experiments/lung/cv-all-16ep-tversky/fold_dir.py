"""Copy the test subjects of one CV fold (approach=cv, k=5, random_state=42) into a folder for evaluate.

    python experiments/lung/cv-all-16ep-tversky/fold_dir.py FOLD DATA_ROOT OUT
    python -m tumorseg.evaluate ckpt_path=outputs/lung/cv-all-16ep-tversky/foldFOLD/checkpoints/last.ckpt data_dir=OUT

The subjects are those that training held out: the same file list and the same split function.
"""

import shutil
import sys
from pathlib import Path

from tumorseg.data.layout import find_pairs
from tumorseg.data.splits import fold_indices


def main(fold: int, root: Path, out: Path) -> None:
    samples = find_pairs(root / "train")
    _, held = fold_indices([s.subject for s in samples], k=5, fold=fold, random_state=42)
    subjects = sorted({samples[i].subject for i in held}, key=lambda s: int(s.rsplit("_", 1)[-1]))
    for part in ("images", "masks"):
        for subject in subjects:
            if not (out / part / subject).is_dir():  # copies: evaluate does not follow linked folders
                shutil.copytree(root / "train" / part / subject, out / part / subject)
    print(f"fold {fold}: {len(held)} slices of {' '.join(s.rsplit('_', 1)[-1] for s in subjects)} in {out}")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
