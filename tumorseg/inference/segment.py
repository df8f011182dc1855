"""The one segmentation path: a subject's slices (uint8, any size) to probabilities and masks at their own size.

    resize -> neighbours (2.5D) -> normalize -> net (TTA views, ensemble members) -> probabilities
    -> 3D steps over the subject (seeded regions, largest region) -> back to each slice's size -> threshold
    -> small components removed

`evaluate` is this plus metrics, `predict` this plus writers; training's dataset and the ONNX export read slices
through the same tumorseg.data.preprocessing.Preprocessing.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch

from tumorseg.data.context import context_table
from tumorseg.data.layout import slice_index
from tumorseg.data.preprocessing import Preprocessing
from tumorseg.errors import UserError
from tumorseg.inference.autotune import auto_runner
from tumorseg.inference.model_file import ModelFile, model_path, read
from tumorseg.inference.postprocess import remove_small, subject_regions
from tumorseg.inference.runtime import Runner, chosen_model, runner_for
from tumorseg.inference.tta import augmented_probabilities, tta_choice
from tumorseg.inference.two_stage import CropStage, runnable, whole_image


def model_inputs(preprocessing: Preprocessing, slices: list[np.ndarray], names: list[Path]) -> np.ndarray:
    """One subject's uint8 slices (any sizes) -> N x C x S x S uint8 at the model's size S: each slice with its
    neighbours of the subject (found by the slice index in the file name; a missing one is the slice itself)."""
    table = context_table([("", name) for name in names], preprocessing.context_slices)
    return np.stack([preprocessing.resize(g) for g in slices])[table]


class Settings(NamedTuple):
    """The choices in force: pixel threshold, TTA, 3D seed threshold (<= threshold: off), largest 3D region only,
    smallest 2D component kept (pixels), slices per batch."""

    threshold: float
    tta: bool | str
    seed_threshold: float
    largest_3d: bool = False
    min_size: int = 0
    batch_size: int = 16


def settings_of(cfg, model: ModelFile) -> Settings:
    """threshold, tta, postprocess.seed_threshold: the command's when set, else the model file's; the rest from cfg."""
    threshold = model.stored.threshold if cfg.get("threshold") is None else float(cfg.threshold)
    if not 0 < threshold < 1:  # the command's own threshold= is checked with its other options
        raise UserError(f"{model.path} stores threshold {threshold}, outside (0, 1): set threshold= (e.g. "
                        f"threshold=0.5), or re-ship the model with tumorseg ship threshold=")
    tta = model.stored.tta if cfg.get("tta") is None else tta_choice(cfg.tta)
    post = cfg.get("postprocess") or {}
    seed = model.stored.seed_threshold if post.get("seed_threshold") is None else float(post.get("seed_threshold"))
    if not 0 <= seed <= 1:  # the command's own postprocess.seed_threshold= is checked with its other options
        raise UserError(f"{model.path} stores seed_threshold {seed}, outside [0, 1]: set postprocess.seed_threshold= "
                        f"(e.g. 0.7), or re-ship the model with tumorseg ship seed_threshold=")
    return Settings(threshold, tta, seed, bool(post.get("largest_3d")), int(post.get("min_size") or 0),
                    int(cfg.get("batch_size") or 16))


@dataclass
class Segmented:
    """One subject's result. raw / probabilities: N x S x S float32 at the model's size S (a two-stage model's:
    at its crop model's grid), before / after the 3D steps; masks: N 0/1 uint8 arrays, each at its slice's size."""

    raw: np.ndarray
    probabilities: np.ndarray
    masks: list[np.ndarray]

    def at_size(self, i: int, shape: tuple[int, int], after_3d: bool = True) -> np.ndarray:
        """Slice i's probabilities at shape (H, W)."""
        prob = (self.probabilities if after_3d else self.raw)[i]
        return prob if prob.shape == shape else cv2.resize(prob, shape[::-1], interpolation=cv2.INTER_LINEAR)


class Segmenter:
    """A model file's net on its runner, with the settings in force."""

    def __init__(self, model: ModelFile, runner: Runner, settings: Settings):
        self.model, self.runner, self.settings = model, runner, settings
        self.preprocessing = model.preprocessing
        self.crops = CropStage.of(model, runner, settings.tta, settings.batch_size)  # a two-stage model's stage 2

    def record(self) -> dict:
        """The choices in force, as evaluate's metrics.json records them; a two-stage model's stage 2 with its own
        (the probability above which stage 1 proposes a region, the crops' size, margin and input size)."""
        choices, runner = self.settings, self.runner
        record = {"threshold": choices.threshold, "tta": choices.tta, "seed_threshold": choices.seed_threshold,
                  "inference_precision": runner.precision,  # "precision" is the metric
                  "runtime": runner.runtime, "device": str(runner.device), "min_size": choices.min_size,
                  "largest_3d": choices.largest_3d}
        if self.crops is not None:
            crops = self.crops.crops
            record["stage2"] = {"proposal_threshold": self.crops.model.stored.threshold, "crop_size": crops.size,
                                "margin": crops.margin, "input_size": crops.input_size}
        return record

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized N x C x S x S -> sigmoid probabilities N x 1 x S x S, averaged over the TTA views."""
        return augmented_probabilities(lambda view: torch.sigmoid(self.runner.logits(view)), x, self.settings.tta)

    def subject(self, slices: list[np.ndarray], names: list[Path], advance=None) -> Segmented:
        """slices: one subject's uint8 H x W images (any sizes); names: their files (the name is the slice index
        that neighbours and the 3D steps go by: .../117.png); advance(n): told of every n slices through the net
        (a progress bar over a long volume)."""
        s = self.settings
        inputs = model_inputs(self.preprocessing, slices, names)
        parts = []
        for k in range(0, len(inputs), s.batch_size):
            batch = inputs[k:k + s.batch_size]
            parts.append(self.probabilities(self.preprocessing.normalize(batch))[:, 0].numpy())
            if advance is not None:
                advance(len(batch))
        raw = np.concatenate(parts)
        if self.crops is not None:  # a two-stage model: its crop model outlines the regions stage 1 proposes
            raw = self.crops.refine(raw, model_inputs(self.crops.preprocessing, slices, names))
        return self.thresholded(raw, slices, names, s.threshold)

    def thresholded(self, raw: np.ndarray, slices: list[np.ndarray], names: list[Path], threshold: float) -> Segmented:
        """The steps after the net at a pixel threshold: 3D steps, each slice's size, threshold, small components.
        Another threshold on the same raw probabilities (evaluate thresholds=[...]) needs no second pass."""
        s = self.settings
        probs = subject_regions(raw, [slice_index(n) for n in names], threshold, s.seed_threshold, s.largest_3d)
        result = Segmented(raw, probs, [])
        for i, gray in enumerate(slices):
            mask = (result.at_size(i, gray.shape) > threshold).astype(np.uint8)
            result.masks.append(remove_small(mask, s.min_size))
        return result


def segmenter_for(cfg, log=None) -> Segmenter:
    """The Segmenter of a command's cfg: ckpt_path (else the shipped model), runtime=, the settings, then device=
    and precision= (with runtime=auto and precision=auto on a CPU: the fastest way measured, inference/autotune.py)."""
    runtime = str(cfg.get("runtime") or "auto")
    model = chosen_model(runnable(read(model_path(cfg.get("ckpt_path"), log)), runtime), runtime)
    settings = settings_of(cfg, model)  # before measuring: a vouched export stores the model's own choices
    model, runner = auto_runner(model, runtime, cfg.get("device"), cfg.get("precision"), settings.batch_size, log)
    return Segmenter(model, runner, settings)


def slice_probabilities(path: str, slices) -> np.ndarray:
    """A whole-image model's probabilities (N x H x W float32, before the 3D steps) of a data set's decoded slices
    (a SegDataset: uint8 N x H x W, by subject), with the model's stored TTA on the first GPU, else the CPU: stage 1's
    proposals for training a crop model on its false alarms (data.crops.proposals_from=path)."""
    model = whole_image(read(path, "data.crops.proposals_from"), "data.crops.proposals_from")
    segmenter = Segmenter(model, runner_for(model), Settings(model.stored.threshold, model.stored.tta, 0.0))
    out = np.zeros(slices.images.shape, np.float32)
    ids = np.asarray(slices.subject_ids)
    for subject in np.unique(ids):
        rows = np.flatnonzero(ids == subject)
        result = segmenter.subject([slices.images[i] for i in rows], [slices.samples[i].image for i in rows])
        out[rows] = [result.at_size(k, slices.images.shape[1:], after_3d=False) for k in range(len(rows))]
    return out
