"""Threshold sweep on the 5-fold CV predictions (RULES.md): one forward pass per fold, every threshold scored.

Frozen: ran at commit 5c49a0d (2026-11-28; the flip sweep at 4a5c043, 2026-11-27); it imports APIs that have since
changed. Kept as the record of what ran; not linted, not run.

    python experiments/lung/cv-threshold/sweep.py > experiments/lung/cv-threshold/sweep.json
    python experiments/lung/cv-threshold/sweep.py affine > experiments/lung/tta-affine/threshold-sweep.json
"""

import json
import sys
from pathlib import Path

import torch

from tumorseg.evaluate import by_subject, dataset_for, final_masks
from tumorseg.inference import Choices, load_predictor
from tumorseg.metrics import SegMetrics
from tumorseg.postprocess import slice_index
from tumorseg.tta import tta_choice

THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
FOLDS = {
    0: ("outputs/lung/split-all-16ep-tversky/checkpoints/last.ckpt", "outputs/lung/heldout-split42"),
    **{f: (f"outputs/lung/cv-all-16ep-tversky/fold{f}/checkpoints/last.ckpt", f"outputs/lung/cv-fold{f}-test")
       for f in (1, 2, 3, 4)},
}


def fold_scores(ckpt: str, folder: str, tta: bool | str = True) -> dict:
    """{threshold: {dice, dice_per_subject}} of one fold model on its unseen subjects (flip or affine TTA, fp32)."""
    predictor = load_predictor(ckpt)
    dataset = dataset_for(predictor, Path(folder))
    metrics = {t: SegMetrics(threshold=0.5) for t in THRESHOLDS}
    for positions, probs, y in by_subject(predictor, dataset, 16, tta=tta):
        numbers = [slice_index(dataset.samples[i].image) for i in positions]
        subjects = torch.tensor([dataset.subject_ids[i] for i in positions])
        for t, metric in metrics.items():
            masks = final_masks(probs[:, 0].numpy(), numbers, Choices(t, tta, 0.0), 0)
            metric.update(torch.from_numpy(masks)[:, None].float(), y, subjects)
    return {t: {k: round(float(v), 6) for k, v in m.compute().items() if k in ("dice", "dice_per_subject")}
            for t, m in metrics.items()}


def main() -> None:
    torch.set_grad_enabled(False)
    scores, tta = {}, tta_choice(sys.argv[1] if len(sys.argv) > 1 else True)
    for fold, (ckpt, folder) in FOLDS.items():
        scores[fold] = fold_scores(ckpt, folder, tta)
        print(f"fold {fold}: " + "  ".join(f"{t}: {s['dice']:.3f}/{s['dice_per_subject']:.3f}"
                                           for t, s in scores[fold].items()), file=sys.stderr, flush=True)
    print(json.dumps({str(f): {str(t): s for t, s in v.items()} for f, v in scores.items()}, indent=1))


if __name__ == "__main__":
    main()
