"""Do averaged models beat the kept one? Flip-TTA probabilities of each variant, averaged over
subsets, scored at several thresholds: split-X models on the 10 held-out subjects (the decision),
full-X models on val (for the record).

Frozen: ran at commit ff30299 (2026-11-27); it imports APIs that have since changed. Kept as the record of what
ran; not linted, not run.

    python experiments/lung/gpu-h100-tversky/ensemble.py MODELS_DIR HELDOUT_DIR VAL_DIR > ensemble.txt

MODELS_DIR holds split-X.pt and full-X.pt (README.md, "How it ran"); each model reads its own input
(the 2.5D one its neighbours), so members may differ in input.
"""

import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tumorseg.evaluate import dataset_for
from tumorseg.inference import load_predictor
from tumorseg.metrics import SegMetrics

VARIANTS = ("Tall", "Tctx", "T", "Tb8", "Tema")
SUBSETS = [("Tall",), ("Tall", "Tctx"), ("Tall", "Tema"), ("Tall", "Tb8"), ("Tall", "Tctx", "Tb8"), VARIANTS]
THRESHOLDS = (0.2, 0.3, 0.4, 0.5)


def tta_probabilities(model: Path, folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flip-TTA probabilities, masks and subject ids of every slice of folder."""
    predictor = load_predictor(model)
    batches = [(predictor.probabilities(x, tta=True), y, s)
               for x, y, s in DataLoader(dataset_for(predictor, folder), batch_size=16)]
    return tuple(torch.cat(part) for part in zip(*batches))


def main(models: Path, heldout: Path, val: Path) -> None:
    for kind, folder in (("split", heldout), ("full", val)):
        runs = {v: tta_probabilities(models / f"{kind}-{v}.pt", folder) for v in VARIANTS}
        _, truth, subjects = runs["Tall"]
        print(f"{kind}-X on {folder.name}: Dice / Dice per subject")
        for subset in SUBSETS:
            mean = torch.stack([runs[v][0] for v in subset]).mean(0)
            cells = []
            for threshold in THRESHOLDS:
                metric = SegMetrics(threshold)
                metric.update(mean, truth, subjects)
                figures = metric.compute()
                cells.append(f"{threshold}: {figures['dice']:.3f} / {figures['dice_per_subject']:.3f}")
            print(f"  {'+'.join(subset):24s} " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:4]))
