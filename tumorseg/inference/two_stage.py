"""The two-stage pipeline's second stage in the segmentation path (docs/two-stage.md): stage 1's probabilities
propose regions, a crop model outlines each one at a higher resolution (or rejects it: its mask comes out empty),
and its probabilities are pasted back on the slice's grid (0 outside every proposal).

    stage 1's probabilities (N x S x S) -> at stage 2's grid G (its data.image_size) -> proposals (components above
    the proposal threshold, boxes + margin) -> square windows -> crops at input_size -> crop net (TTA) -> back to
    each window's size -> inside each box, the largest probability of the crops over it

Boxes, windows and crops are tumorseg.data.crops's, as stage 2 was trained on them. A model file holds a crop model
as its `stage2` (tumorseg.inference.model_file); tumorseg.inference.combining joins the two stages.
"""

from collections.abc import Callable

import cv2
import numpy as np
import torch

from tumorseg.data.crops import CropSettings, crop_of, proposals, window_of
from tumorseg.errors import UserError
from tumorseg.inference.model_file import ModelFile
from tumorseg.inference.runtime import Runner, runner_for
from tumorseg.inference.tta import augmented_probabilities


def crop_settings(model: ModelFile) -> CropSettings | None:
    """A crop model's settings (its training's data.crops); None for a whole-image model."""
    return CropSettings.of(((model.run_config or {}).get("data") or {}).get("crops"))


def whole_image(model: ModelFile, option: str = "ckpt_path") -> ModelFile:
    """model, refused when it is a lone crop model: it reads crops that a whole-image model proposes."""
    if crop_settings(model) is not None:
        raise UserError(f"{option}={model.path} is a crop model (stage 2 of a two-stage pipeline, trained with "
                        f"data.crops): ship it with a whole-image model as one file: tumorseg ship "
                        f"ckpt_path=<stage 1 model> crop={model.path} output=two_stage.pt")
    return model


def runnable(model: ModelFile, runtime: str) -> ModelFile:
    """model, refused when it cannot run at all (a lone crop model) or not in runtime (a two-stage model in ONNX)."""
    if model.stage2 is not None and runtime == "onnxruntime":
        raise UserError(f"runtime=onnxruntime: {model.path} is a two-stage model, which has no ONNX export (its "
                        f"cropping between two nets is no graph): use runtime=auto or runtime=pytorch")
    return whole_image(model)


def single_graph(model: ModelFile) -> ModelFile:
    """model, refused when an ONNX file (one graph) cannot hold it: a two-stage model, or a lone crop model."""
    if model.stage2 is not None:
        raise UserError(f"ckpt_path={model.path} is a two-stage model: an ONNX file holds one graph, and the cropping "
                        f"between its two nets is no graph; evaluate and predict run the .pt (ckpt_path="
                        f"{model.path}), or export its stage-1 checkpoint alone")
    return whole_image(model)


def resized(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Probabilities (H x W float32) at shape: averaged over pixels when shrinking, interpolated when enlarging."""
    if prob.shape == tuple(shape):
        return prob
    shrink = shape[0] * shape[1] < prob.shape[0] * prob.shape[1]
    return cv2.resize(prob, shape[::-1], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def paste(canvas: np.ndarray, prob: np.ndarray, box: tuple, window: tuple) -> None:
    """canvas (H x W) inside box: the larger of itself and prob (a window's crop probabilities) at each pixel."""
    (y0, x0, y1, x1), (wy0, wx0, wy1, wx1) = box, window
    at_window = resized(prob, (wy1 - wy0, wx1 - wx0))
    np.maximum(canvas[y0:y1, x0:x1], at_window[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0], out=canvas[y0:y1, x0:x1])


def refined(raw: np.ndarray, inputs: np.ndarray, crops: CropSettings, threshold: float,
            probabilities_of: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Stage 1's probabilities raw (N x S x S) -> the two stages' (N x G x G float32): inside each proposal's box, the
    largest probability the crops over it give; 0 outside every box.

    inputs: N x C x G x G uint8, the subject's slices (and neighbours) at stage 2's grid; threshold: stage 1's
    probability that proposes a region; probabilities_of: uint8 crops M x C x s x s -> M x s x s probabilities."""
    grid = inputs.shape[-2:]
    out = np.zeros((len(inputs), *grid), np.float32)
    found = [(i, box, window_of(box, crops.size, grid)) for i, prob in enumerate(raw)
             for box in proposals(resized(prob, grid), threshold, crops.margin)]
    if not found:
        return out
    probs = probabilities_of(np.stack([crop_of(inputs[i], window, crops.input_size) for i, _, window in found]))
    for (i, box, window), prob in zip(found, probs):
        paste(out[i], prob, box, window)
    return out


class CropStage:
    """A two-stage model's crop model on its runner, with the TTA and batch size in force."""

    def __init__(self, model: ModelFile, runner: Runner, tta: bool | str, batch_size: int):
        self.model, self.runner, self.tta, self.batch_size = model, runner, tta, batch_size
        self.crops, self.preprocessing = crop_settings(model), model.preprocessing

    @classmethod
    def of(cls, model: ModelFile, runner: Runner, tta: bool | str, batch_size: int) -> "CropStage | None":
        """The stage 2 of a two-stage model, on stage 1's device in its arithmetic; None for a one-stage model."""
        if model.stage2 is None:
            return None
        return cls(model.stage2, runner_for(model.stage2, str(runner.device), runner.precision), tta, batch_size)

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops M x C x s x s -> sigmoid probabilities M x s x s, averaged over the TTA views."""
        parts = [augmented_probabilities(lambda view: torch.sigmoid(self.runner.logits(view)),
                                         self.preprocessing.normalize(crops[k:k + self.batch_size]), self.tta)[:, 0]
                 for k in range(0, len(crops), self.batch_size)]
        return torch.cat(parts).numpy()

    def refine(self, raw: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """Stage 1's probabilities (N x S x S) and the subject's inputs at the crop model's grid -> N x G x G."""
        return refined(raw, inputs, self.crops, self.model.stored.threshold, self.probabilities)
