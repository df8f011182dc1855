"""Pixel metrics of a whole split, from torchmetrics (confusion counts summed over all batches).

Empty masks: Dice and IoU are computed from the counts of the whole split, so one empty slice
cannot make them undefined; a split with no tumor pixels and no predicted pixels scores 1
(nothing to find, nothing wrongly found). Precision and recall keep torchmetrics' 0 for 0/0.
"""

from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryF1Score, BinaryJaccardIndex, BinaryPrecision, BinaryRecall

EMPTY_SCORE = 1.0


def pixel_metrics(prefix: str, threshold: float = 0.5) -> MetricCollection:
    """dice, iou, precision, recall of thresholded probabilities, named `<prefix>dice` etc."""
    return MetricCollection(
        {
            "dice": BinaryF1Score(threshold=threshold, zero_division=EMPTY_SCORE),
            "iou": BinaryJaccardIndex(threshold=threshold, zero_division=EMPTY_SCORE),
            "precision": BinaryPrecision(threshold=threshold),
            "recall": BinaryRecall(threshold=threshold),
        },
        prefix=prefix,
    )
