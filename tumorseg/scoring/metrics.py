"""Segmentation metrics, defined once: pooled, per slice, per subject, and on empty slices.

Empty masks (reference libraries disagree: MONAI and nnU-Net drop empty-vs-empty cases, smp
counts them as 1). Here:
- `dice`, `iou`, `precision`, `recall` pool the confusion counts of every pixel of the split;
  Dice and IoU of a split (or subject) with no tumor and no prediction are 1: for a tumor-free
  case "nothing" is the right answer. Precision and recall are 0 when undefined (0/0).
- `dice_per_slice` averages only slices whose ground truth has tumor: the ~15% of empty slices
  would otherwise add easy 1s (or harsh 0s) that say nothing about segmentation quality.
- `empty_fp_rate` scores the empty slices instead: the share on which anything is predicted.
- `dice_per_subject` is the mean over subjects of each subject's pooled Dice (nnU-Net/MSD's
  per-case figure); a subject without tumor counts by the rule above. `by_subject()` gives each
  subject's own pooled figures, so that a mean over a few subjects can be read case by case.
"""

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

EMPTY_SCORE = 1.0
STATES = ("tp", "fp", "fn", "subject")


def ratio(num: torch.Tensor, den: torch.Tensor, empty: float) -> torch.Tensor:
    """num / den, with `empty` where den == 0."""
    num, den = num.double(), den.double()
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(den, empty))


def mean(values: torch.Tensor) -> torch.Tensor:
    """Mean, or NaN for no values (e.g. empty_fp_rate of a split without empty slices)."""
    return values.double().mean() if values.numel() else torch.tensor(float("nan"), dtype=torch.double)


def dice_of(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    """Dice = 2TP / (2TP + FP + FN); EMPTY_SCORE when there is nothing to find and nothing found."""
    return ratio(2 * tp, 2 * tp + fp + fn, EMPTY_SCORE)


def pooled(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dice, precision and recall of summed confusion counts."""
    return {"dice": dice_of(tp, fp, fn), "precision": ratio(tp, tp + fp, 0.0), "recall": ratio(tp, tp + fn, 0.0)}


class SegMetrics(Metric):
    """Per-slice confusion counts (a torchmetrics Metric: batched, DDP-synced) reduced to every figure above."""

    full_state_update = False

    def __init__(self, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold
        for name in STATES:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, target: torch.Tensor, subject: torch.Tensor) -> None:
        """probs and target: (N, 1, H, W); subject: (N,) integer ids."""
        # Counted here rather than with binary_stat_scores(samplewise), which fails on a batch of one.
        preds = (probs > self.threshold).flatten(1)
        truth = target.flatten(1) > 0
        self.tp.append((preds & truth).sum(1))
        self.fp.append((preds & ~truth).sum(1))
        self.fn.append((~preds & truth).sum(1))
        self.subject.append(subject.to(preds.device).long())

    def _counts(self) -> list[torch.Tensor]:
        if isinstance(self.tp, list) and not self.tp:
            return [torch.zeros(0, dtype=torch.long, device=self.device) for _ in STATES]
        return [dim_zero_cat(getattr(self, name)) for name in STATES]

    def by_subject(self) -> dict[int, dict[str, float]]:
        """Each subject's pooled Dice, precision, recall and slice count, by subject id."""
        tp, fp, fn, subject = self._counts()
        figures = {}
        for s in subject.unique().tolist():
            T, F, N = (c[subject == s].sum() for c in (tp, fp, fn))
            figures[s] = {name: float(v) for name, v in pooled(T, F, N).items()}
            figures[s]["n_images"] = int((subject == s).sum())
        return figures

    def compute(self) -> dict[str, torch.Tensor]:
        tp, fp, fn, _ = self._counts()
        T, F, N = tp.sum(), fp.sum(), fn.sum()
        has_tumor = (tp + fn) > 0
        empty = ~has_tumor
        per_subject = [f["dice"] for f in self.by_subject().values()]
        # pooled() gives dice, precision, recall; iou is put second, where the recorded metrics.json files have it
        whole = pooled(T, F, N)
        return {
            "dice": whole["dice"],
            "iou": ratio(T, T + F + N, EMPTY_SCORE),
            "precision": whole["precision"],
            "recall": whole["recall"],
            "dice_per_slice": mean(dice_of(tp, fp, fn)[has_tumor]),
            "dice_per_subject": mean(torch.tensor(per_subject, dtype=torch.double, device=self.device)),
            "empty_fp_rate": mean((fp[empty] > 0).double()),
            "n_images": torch.tensor(len(tp)),
            "n_subjects": torch.tensor(len(per_subject)),
        }
