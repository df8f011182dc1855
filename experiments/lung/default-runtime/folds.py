"""The shipped model's figures under the old default (PyTorch fp32) and the new one on a CPU without bf16 (its
int8 export through ONNX Runtime), on val and on the subjects of each of the recipe's 5 CV folds.

    python experiments/lung/default-runtime/folds.py DATA_ROOT OUT_DIR

The fold subject sets are approach=cv's (GroupKFold, k=5, random_state=42) over train/. The shipped model has
seen those subjects in training, so their figures are not its quality: they measure what the arithmetic alone
changes, subject set by subject set, which is what the default's switch may change (by at most 0.005).
"""

import json
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from tumorseg.data.layout import find_pairs
from tumorseg.data.splits import fold_indices
from tumorseg.evaluate import evaluate

KEYS = ("dice", "dice_per_subject", "dice_per_slice", "precision", "recall")


def subset(train: Path, subjects: set[str], into: Path) -> Path:
    """A part of symlinked subject folders: train/'s subjects of one fold."""
    for kind in ("images", "masks"):
        (into / kind).mkdir(parents=True)
        for name in subjects:
            (into / kind / name).symlink_to(train / kind / name, target_is_directory=True)
    return into


def figures(folder: Path, runtime: str, out: Path) -> dict:
    cfg = OmegaConf.create(dict(ckpt_path=None, data_dir=str(folder), split=None, threshold=None, tta=None,
                                precision="32" if runtime == "pytorch" else "auto", device="cpu", runtime=runtime,
                                postprocess={"min_size": 0, "seed_threshold": None, "largest_3d": False},
                                batch_size=16, paths={"output_dir": str(out)}))
    result = evaluate(cfg)
    return {k: result[k] for k in (*KEYS, "inference_precision", "runtime", "n_images", "n_subjects")}


def main(root: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    samples = find_pairs(root / "train")
    names = [s.subject for s in samples]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        parts = {"val": root / "val"}
        for fold in range(5):
            _, held = fold_indices(names, 5, fold, 42)
            parts[f"fold{fold}"] = subset(root / "train", {names[i] for i in held}, Path(tmp) / f"fold{fold}")
        for part, folder in parts.items():
            rows[part] = {runtime: figures(folder, runtime, out / part / runtime)
                          for runtime in ("pytorch", "onnxruntime")}
            change = {k: round(rows[part]["onnxruntime"][k] - rows[part]["pytorch"][k], 6) for k in KEYS}
            rows[part]["change"] = change
            print(part, change, flush=True)
            (out / "folds.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
