"""Crops for the two-stage pipeline's second stage (docs/two-stage.md): proposals, windows, and the crops dataset.

    box     a 2D component's bounding box widened by `margin`, clipped at the slice's border     (boxes_of, proposals)
    window  a square of side max(size, the box's sides) centred on the box, moved inside the slice   (window_of)
    crop    the window's pixels resized to input_size x input_size                                 (crop_of)

Stage 2 trains (`data.crops.size=...`) on a data set's slices at data.image_size, as stage 1 reads them: a crop
around each tumor (its window shifted by up to `margin`: the tumor stays inside), `negatives` random crops per
tumor crop centred in the lungs, and stage 1's false alarms (a proposal holding no tumor) where a stage-1 model is
given (`proposals_from`). Inference (tumorseg.inference.two_stage) uses the same boxes, windows and crops.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from tumorseg.data.dataset import SegDataset, item_tensors
from tumorseg.errors import UserError

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1): rows y0..y1-1, columns x0..x1-1
KINDS = ("tumor", "random", "false alarm")


@dataclass(frozen=True)
class CropSettings:
    """data.crops: windows of at least size x size pixels of a slice at data.image_size, read by the net at
    input_size; margin around a box; random negatives per tumor crop; the stage-1 model whose false alarms are
    hard negatives (proposals_from) and the probability above which stage 1 proposes a region."""

    size: int
    input_size: int = 128
    margin: int = 8
    negatives: float = 1.0
    proposals_from: str | None = None
    proposal_threshold: float = 0.2

    @classmethod
    def of(cls, values: Mapping | None) -> "CropSettings | None":
        """The settings of a data.crops mapping; None when crops are off (size null)."""
        values = dict(values or {})
        if not values.get("size"):
            return None
        return cls(**{f.name: values[f.name] for f in fields(cls) if values.get(f.name) is not None})


def boxes_of(mask: np.ndarray, margin: int) -> list[Box]:
    """The bounding box of each 8-connected component of an H x W mask, widened by margin on every side and clipped
    at the border (components in row-major order of their first pixel)."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    h, w = mask.shape
    return [(max(r.start - margin, 0), max(c.start - margin, 0), min(r.stop + margin, h), min(c.stop + margin, w))
            for r, c in ndimage.find_objects(labels)]


def proposals(probabilities: np.ndarray, threshold: float, margin: int) -> list[Box]:
    """Stage 1's candidate regions of one slice (H x W probabilities): the boxes of its components above threshold."""
    return boxes_of(probabilities > threshold, margin)


def window_of(box: Box, size: int, shape: tuple[int, int], shift: tuple[int, int] = (0, 0)) -> Box:
    """The square window a crop model reads around box: side max(size, the box's sides) (at most the slice's smaller
    side), centred on the box moved by shift, then moved inside the slice (it holds the box when shift is 0)."""
    (h, w), (y0, x0, y1, x1) = shape, box
    side = min(max(size, y1 - y0, x1 - x0), h, w)
    top = int(np.clip(round((y0 + y1 - side) / 2 + shift[0]), 0, h - side))
    left = int(np.clip(round((x0 + x1 - side) / 2 + shift[1]), 0, w - side))
    return top, left, top + side, left + side


def crop_of(stack: np.ndarray, window: Box, input_size: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """The window of stack (H x W, or C x H x W) resized to input_size x input_size, the leading axis kept."""
    y0, x0, y1, x1 = window
    part = stack[..., y0:y1, x0:x1]
    if part.shape[-2:] == (input_size, input_size):
        return part.copy()
    size = (input_size, input_size)
    if part.ndim == 2:
        return cv2.resize(part, size, interpolation=interpolation)
    out = cv2.resize(np.ascontiguousarray(np.moveaxis(part, 0, -1)), size, interpolation=interpolation)
    return np.moveaxis(out.reshape(input_size, input_size, -1), -1, 0)


def lung_pixels(gray: np.ndarray) -> np.ndarray:
    """Where a random negative is centred: the dark pixels the body encloses (the lungs; body = Otsu's bright pixels,
    holes filled); the body where it encloses none; the whole slice where there is no body."""
    _, bright = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    body = ndimage.binary_fill_holes(bright.astype(bool))
    for region in (body & (bright == 0), body):
        if region.any():
            return region
    return np.ones(gray.shape, bool)


def tumor_windows(masks: np.ndarray, crops: CropSettings, rng: np.random.Generator | None) -> list[tuple[int, Box]]:
    """(slice, window) around every tumor of masks (N x H x W): each component's box, its window shifted by up to
    margin pixels (drawn from rng; None: centred)."""
    out = []
    for i, mask in enumerate(masks):
        for box in boxes_of(mask, crops.margin):
            shift = (0, 0) if rng is None else tuple(int(v) for v in rng.integers(-crops.margin, crops.margin + 1, 2))
            out.append((i, window_of(box, crops.size, mask.shape, shift)))
    return out


def random_windows(images: np.ndarray, crops: CropSettings, count: int, rng: np.random.Generator) -> list:
    """count (slice, window) pairs of side crops.size on slices drawn at random, centred on a lung pixel."""
    out = []
    for i in sorted(rng.integers(0, len(images), count)) if len(images) else []:
        ys, xs = np.nonzero(lung_pixels(images[i]))
        k = int(rng.integers(0, len(ys)))
        out.append((int(i), window_of((int(ys[k]), int(xs[k]), int(ys[k]) + 1, int(xs[k]) + 1), crops.size,
                                      images[i].shape)))
    return out


def false_alarm_windows(probabilities: np.ndarray, masks: np.ndarray, crops: CropSettings) -> list[tuple[int, Box]]:
    """(slice, window) of each stage-1 proposal (probabilities N x H x W) whose box holds no tumor of masks."""
    out = []
    for i, (prob, mask) in enumerate(zip(probabilities, masks)):
        for y0, x0, y1, x1 in proposals(prob, crops.proposal_threshold, crops.margin):
            if not mask[y0:y1, x0:x1].any():
                out.append((i, window_of((y0, x0, y1, x1), crops.size, mask.shape)))
    return out


class CropDataset(Dataset):
    """Crops of a SegDataset's slices, served as SegDataset serves slices: (image C x s x s normalized, mask 1 x s x s,
    subject id) with s = input_size. images / masks: each crop's slice K and truth (M x s x s uint8); windows /
    kinds: where each crop comes from ((slice, window) in the slices' grid) and why (one of KINDS)."""

    def __init__(self, slices: SegDataset, crops: CropSettings, seed: int, transform: Callable | None = None,
                 probabilities: np.ndarray | None = None, jitter: bool = False):
        """probabilities: stage 1's (N x H x W, as slices.images) for the false alarms; jitter: shift tumor windows
        (training) or centre them (validation)."""
        rng = np.random.default_rng(seed)
        found = {"tumor": tumor_windows(slices.masks, crops, rng if jitter else None)}
        found["random"] = random_windows(slices.images, crops, round(crops.negatives * max(len(found["tumor"]), 1)),
                                         rng)
        found["false alarm"] = [] if probabilities is None else false_alarm_windows(probabilities, slices.masks, crops)
        self.windows = [w for kind in KINDS for w in found[kind]]
        self.kinds = [kind for kind in KINDS for _ in found[kind]]
        s, channels = crops.input_size, slices.context.shape[1]
        stacks = [crop_of(slices.images[slices.context[i]], w, s) for i, w in self.windows]
        self.stack = np.stack(stacks) if stacks else np.empty((0, channels, s, s), np.uint8)  # M x C x s x s
        self.images = self.stack[:, channels // 2]
        masks = [crop_of(slices.masks[i], w, s, cv2.INTER_NEAREST) for i, w in self.windows]
        self.masks = np.stack(masks) if masks else np.empty((0, s, s), np.uint8)
        self.subject_names = slices.subject_names
        self.subject_ids = [slices.subject_ids[i] for i, _ in self.windows]
        self.samples = [slices.samples[i] for i, _ in self.windows]
        self.preprocessing, self.transform = slices.preprocessing, transform

    def __len__(self) -> int:
        return len(self.windows)

    def counts(self) -> str:
        """How many crops of each kind, in words."""
        return ", ".join(f"{self.kinds.count(kind)} {kind}" for kind in KINDS)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """key: an index, or (index, augmentation seed) from EpochShuffle for repeatable augmentation."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        stack = self.stack[index]
        image = stack[0] if len(stack) == 1 else np.moveaxis(stack, 0, -1)  # H x W x C for albumentations
        x, y = item_tensors(image, self.masks[index], self.transform, seed, self.preprocessing)
        return x, y, self.subject_ids[index]


def cropped(datasets: dict[str, SegDataset], crops: CropSettings, seed: int, transform: Callable | None,
            proposer: Callable | None) -> dict[str, CropDataset]:
    """Every part's slices as crops (the train part's jittered, with transform); proposer(path, slices) gives stage
    1's probabilities of a part's slices where crops.proposals_from names a stage-1 model."""
    if crops.proposals_from and proposer is None:
        raise UserError("data.crops.proposals_from is read by tumorseg train (stage 1's false alarms as hard "
                        "negatives): train with it there, or set data.crops.proposals_from=null")
    return {part: CropDataset(slices, crops, seed, transform if part == "train" else None,
                              proposer(crops.proposals_from, slices) if crops.proposals_from else None,
                              jitter=part == "train")
            for part, slices in datasets.items()}
