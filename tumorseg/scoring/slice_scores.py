"""evaluate's figures of a data part's slices at one threshold: predicted masks against their truth, pooled, per
slice and per subject (SegMetrics), as one Result; several thresholds of one pass of the net are several of these."""

import numpy as np
import torch

from tumorseg.scoring.metrics import SegMetrics
from tumorseg.scoring.result import Result


class SliceScores:
    """The confusion counts of one threshold's masks; subject ids index `names`."""

    def __init__(self, names: list[str]):
        self.names, self.metric = names, SegMetrics(threshold=0.5)

    def add(self, masks: list[np.ndarray], truths: list[np.ndarray], subject: int) -> None:
        """One subject's 0/1 masks and truths, each slice at its own size."""
        for mask, truth in zip(masks, truths):
            self.metric.update(torch.from_numpy(mask)[None, None].float(), torch.from_numpy(truth)[None, None].float(),
                               torch.tensor([subject]))

    def result(self, bce: float, source: str, ckpt_path: str, settings: dict) -> Result:
        """The figures in metrics.json's order (NaN as None), the BCE of the probabilities, the subjects' figures."""
        values = {k: float(v) for k, v in self.metric.compute().items()}
        figures = {
            **{k: None if np.isnan(v) else round(v, 6) for k, v in values.items() if not k.startswith("n_")},
            "bce": round(bce, 6),
            "n_images": int(values["n_images"]),
            "n_subjects": int(values["n_subjects"]),
        }
        per_subject = {self.names[i]: {k: round(v, 6) for k, v in f.items()}
                       for i, f in self.metric.by_subject().items()}
        return Result("slices", source, ckpt_path, figures, settings, per_subject)
