"""One model file of several: runs of one recipe as an ensemble (logits averaged) or a soup (weights averaged), and
a whole-image model with a crop model as a two-stage model (tumorseg.inference.two_stage). `tumorseg ship` writes
what these return."""

from dataclasses import replace

import torch

from tumorseg.data.preprocessing import shown_window
from tumorseg.errors import UserError
from tumorseg.inference.model_file import ModelFile, Stored
from tumorseg.inference.two_stage import crop_settings, whole_image
from tumorseg.models import LogitMean


def combine(models: list[ModelFile], how: str, stored: Stored) -> ModelFile:
    """One model of several runs of one recipe: "ensemble" averages their logits, "soup" their weights."""
    first = models[0]
    for other in models:
        if other.members > 1 or other.stage2 is not None:
            raise UserError(f"{other.path} is already an ensemble or a two-stage model: combine the checkpoints it was "
                            f"made of instead")
        if (other.model, other.preprocessing) != (first.model, first.preprocessing):
            raise UserError(f"{other.path} differs from {first.path} in its model or input (model config, image size, "
                            f"normalization or context slices): combine runs of one recipe")
    sources = [m.source for m in models]
    if how == "ensemble":
        weights = LogitMean([m.net() for m in models]).state_dict()
        return replace(first, stored=stored, members=len(models), weights=dict(weights), source={"ensemble": sources},
                       extra={})
    weights = {k: mean_of([m.weights[k] for m in models]) for k in first.weights}
    return replace(first, stored=stored, weights=weights, source={"soup": sources}, extra={})


def mean_of(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise mean of float tensors; integer ones (BatchNorm's batch counter) are taken from the first."""
    if not tensors[0].is_floating_point():
        return tensors[0].clone()
    return torch.stack([t.float() for t in tensors]).mean(0).to(tensors[0].dtype)


def joined(whole: ModelFile, crop: ModelFile | None, proposal_threshold: float | None) -> ModelFile:
    """whole (stage 1, with its choices) and crop (a crop model's file) as one two-stage model; crop None: whole with
    its own stage 2, if any. proposal_threshold (stage 1's probability that proposes a region; stage 2's stored
    threshold): None keeps a shipped stage 2's, or takes the one the crop model was trained with."""
    whole_image(whole)
    if crop is None:
        if whole.stage2 is None and proposal_threshold is not None:
            raise UserError(f"proposal_threshold= is a two-stage model's choice and {whole.path} has one stage: add "
                            f"crop=<a crop model's checkpoint>")
        if whole.stage2 is None or proposal_threshold is None:
            return whole
        return replace(whole, stage2=whole.stage2.with_choices(Stored(proposal_threshold)))
    settings = crop_settings(crop)
    if whole.stage2 is not None:
        raise UserError(f"ckpt_path={whole.path} already has a stage 2: ship its stage-1 checkpoint with "
                        f"crop={crop.path}")
    if settings is None or crop.is_onnx or crop.members > 1 or crop.stage2 is not None:
        raise UserError(f"crop={crop.path} is no crop model: crop= takes the checkpoint of a run trained on crops "
                        f"(tumorseg train data.crops.size=64 ..., or data=lung_crops)")
    if crop.preprocessing.window != whole.preprocessing.window:
        raise UserError(f"crop={crop.path} was trained on slices made with the window "
                        f"{shown_window(crop.preprocessing.window)}, ckpt_path={whole.path} with "
                        f"{shown_window(whole.preprocessing.window)}: stage 2 reads crops of stage 1's slices, so "
                        f"train both stages on one data root (the same data.window)")
    threshold = settings.proposal_threshold if proposal_threshold is None else proposal_threshold
    return replace(whole, stage2=replace(crop, stored=Stored(threshold), extra={}))
