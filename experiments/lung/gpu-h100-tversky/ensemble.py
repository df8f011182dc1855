"""Do averaged models beat the kept one? Flip-TTA probabilities of each variant, averaged over
subsets, scored at several thresholds: split-X models on the 10 held-out subjects (the decision),
full-X models on val (for the record).

    python experiments/lung/gpu-h100-tversky/ensemble.py MODELS_DIR HELDOUT_DIR VAL_DIR > ensemble.txt

MODELS_DIR holds split-X.pt and full-X.pt (README.md, "How it ran"); each model reads its own input
(the 2.5D one its neighbours), so members may differ in input.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from tumorseg.data.dataset import SegDataset
from tumorseg.data.layout import find_pairs
from tumorseg.inference import load_predictor

VARIANTS = ("Tall", "Tctx", "T", "Tb8", "Tema")
SUBSETS = [("Tall",), ("Tall", "Tctx"), ("Tall", "Tema"), ("Tall", "Tb8"), ("Tall", "Tctx", "Tb8"), VARIANTS]
THRESHOLDS = (0.2, 0.3, 0.4, 0.5)


def tta_probabilities(model: Path, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flip-TTA probabilities, masks and subject ids of every slice of folder."""
    p = load_predictor(model)
    dataset = SegDataset(find_pairs(folder), p.image_size, None, p.mean, p.std, context_slices=p.context_slices)
    probs, masks, subjects = [], [], []
    for x, y, s in DataLoader(dataset, batch_size=16):
        probs.append(p.probabilities(x, tta=True)), masks.append(y.bool()), subjects.append(s)
    return torch.cat(probs).numpy(), torch.cat(masks).numpy(), torch.cat(subjects).numpy()


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Pooled Dice; 1 when both are empty."""
    denominator = pred.sum() + truth.sum()
    return 1.0 if denominator == 0 else float(2 * (pred & truth).sum() / denominator)


def main(models: Path, heldout: Path, val: Path) -> None:
    for kind, folder in (("split", heldout), ("full", val)):
        runs = {v: tta_probabilities(models / f"{kind}-{v}.pt", folder) for v in VARIANTS}
        truth, subjects = runs["Tall"][1], runs["Tall"][2]
        print(f"{kind}-X on {folder.name}: Dice / Dice per subject")
        for subset in SUBSETS:
            mean = np.mean([runs[v][0] for v in subset], axis=0)
            cells = []
            for threshold in THRESHOLDS:
                pred = mean > threshold
                per_subject = np.mean([dice(pred[subjects == s], truth[subjects == s]) for s in np.unique(subjects)])
                cells.append(f"{threshold}: {dice(pred, truth):.3f} / {per_subject:.3f}")
            print(f"  {'+'.join(subset):24s} " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:4]))
