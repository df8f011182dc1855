"""Evaluate a checkpoint on any folder in the data layout: pooled, per-slice, per-subject metrics.

    python -m tumorseg.evaluate ckpt_path=CKPT data_dir=FOLDER [split=val] [tta=true]
"""

import json
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from torch.nn import functional as F
from torch.utils.data import DataLoader

from tumorseg.data.dataset import SegDataset
from tumorseg.data.layout import PARTS, find_pairs
from tumorseg import CONF_DIR
from tumorseg.config_checks import check_config
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.inference import (Choices, Predictor, inference_settings, load_predictor, model_path, use_device,
                                use_precision)
from tumorseg.metrics import SegMetrics
from tumorseg.postprocess import remove_small, slice_index, subject_regions
from tumorseg.tta import describe


def resolve_folder(data_dir: str | None, split: str | None) -> Path:
    """The folder holding images/ and masks/: data_dir itself, or data_dir/<split> of a data set root."""
    if not data_dir:
        raise UserError("data_dir is not set: data_dir=FOLDER with images/ and masks/ (or a data set root and split=val)")
    folder = Path(data_dir).expanduser()
    if split:
        if split not in PARTS:
            raise UserError(f"split={split} is not one of {list(PARTS)}")
        folder = folder / split
    if (folder / "images").is_dir():
        return folder
    if not split and any((folder / p / "images").is_dir() for p in PARTS):
        raise UserError(f"data_dir={folder} is a data set root: add split=val (or train, test)")
    raise UserError(f"{folder} has no images/ folder: point data_dir at a folder with images/ and masks/")


def dataset_for(predictor: Predictor, folder: Path) -> SegDataset:
    """The slices and masks of folder as the predictor's model reads them (size, normalization, neighbours)."""
    return SegDataset(find_pairs(folder), predictor.image_size, None, predictor.mean, predictor.std,
                      context_slices=predictor.context_slices)


def by_subject(predictor: Predictor, dataset: SegDataset, batch_size: int, tta: bool | str):
    """(dataset positions, probabilities N x 1 x H x W, true masks N x 1 x H x W) per subject, in dataset order.

    The net runs in batches that may span subjects; a subject is handed on once all of its
    slices are through (a subject's slices are consecutive in the dataset: sorted by path).
    """
    ids = np.asarray(dataset.subject_ids)
    starts = [0, *(np.flatnonzero(np.diff(ids)) + 1).tolist(), len(ids)]
    bounds = list(zip(starts[:-1], starts[1:]))
    probs, truth, offset, count = [], [], 0, 0  # offset: dataset position of the first of `count` pending slices
    for x, y, _ in DataLoader(dataset, batch_size=batch_size):
        probs.append(predictor.probabilities(x, tta))
        truth.append(y)
        count += len(x)
        if bounds[0][1] > offset + count:  # the subject is not complete yet: concatenate once it is
            continue
        pending_p, pending_y = torch.cat(probs), torch.cat(truth)
        while bounds and bounds[0][1] <= offset + count:
            start, end = bounds.pop(0)
            yield range(start, end), pending_p[:end - offset], pending_y[:end - offset]
            pending_p, pending_y, count, offset = pending_p[end - offset:], pending_y[end - offset:], count - (end - offset), end
        probs, truth = [pending_p], [pending_y]


def final_masks(probs: np.ndarray, numbers: list[int | None], choices: Choices, min_size: int) -> np.ndarray:
    """0/1 masks (N x H x W, uint8) of one subject's probabilities: 3D regions, threshold, small components."""
    probs = subject_regions(probs, numbers, choices.threshold, choices.seed_threshold, choices.largest_3d)
    masks = (probs > choices.threshold).astype(np.uint8)
    return np.stack([remove_small(m, min_size) for m in masks]) if min_size > 1 else masks


def evaluate(cfg: DictConfig) -> dict:
    """Metrics of cfg.ckpt_path on cfg.data_dir; also written to <output dir>/metrics.json."""
    check_config(cfg)
    ckpt_path = model_path(cfg)
    predictor = load_predictor(ckpt_path)
    folder = resolve_folder(cfg.data_dir, cfg.split)
    dataset = dataset_for(predictor, folder)
    choices = inference_settings(cfg, predictor)
    device = use_device(cfg, predictor)
    precision = use_precision(cfg, predictor)
    metric, bce_sum = SegMetrics(threshold=0.5), 0.0
    for positions, probs, y in by_subject(predictor, dataset, cfg.batch_size, choices.tta):
        numbers = [slice_index(dataset.samples[i].image) for i in positions]
        masks = final_masks(probs[:, 0].numpy(), numbers, choices, cfg.postprocess.min_size)
        bce_sum += float(F.binary_cross_entropy(probs, y, reduction="sum"))
        metric.update(torch.from_numpy(masks)[:, None].float(), y, torch.tensor([dataset.subject_ids[i] for i in positions]))
    values = {k: float(v) for k, v in metric.compute().items()}
    result = {
        **{k: None if np.isnan(v) else round(v, 6) for k, v in values.items() if not k.startswith("n_")},
        "bce": round(bce_sum / max(1, len(dataset) * predictor.image_size**2), 6),
        "n_images": int(values["n_images"]),
        "n_subjects": int(values["n_subjects"]),
        "threshold": choices.threshold,
        "tta": choices.tta,
        "seed_threshold": choices.seed_threshold,
        "inference_precision": precision,  # "precision" is the metric
        "device": device,
        "min_size": int(cfg.postprocess.min_size),
        "largest_3d": choices.largest_3d,
        "data_dir": str(folder),
        "ckpt_path": str(ckpt_path),
        "subjects": {dataset.subject_names[i]: {k: round(v, 6) for k, v in figures.items()}
                     for i, figures in metric.by_subject().items()},
    }
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def print_table(result: dict) -> None:
    """The figures as a readable table (stdout)."""
    console = Console(width=120)
    console.print(f"{result['data_dir']}: {result['n_images']} slices, {result['n_subjects']} subjects, "
                  f"threshold {result['threshold']}, {describe(result['tta'])}, "
                  f"3D seed {result['seed_threshold'] if result['seed_threshold'] > result['threshold'] else 'off'}, "
                  f"{'largest 3D region only, ' if result['largest_3d'] else ''}"
                  f"{'fp32' if result['inference_precision'] == '32' else result['inference_precision']}")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, float) or value is None:
            table.add_row(key, "n/a" if value is None else f"{value:.4f}")
    console.print(table)
    subjects = Table("subject", "slices", "dice", "precision", "recall")
    for name, f in result["subjects"].items():
        subjects.add_row(name, str(f["n_images"]), *(f"{f[k]:.4f}" for k in ("dice", "precision", "recall")))
    console.print(subjects)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    result = evaluate(cfg)
    print_table(result)
    print(json.dumps(result), flush=True)
    return result["dice"]


if __name__ == "__main__":
    main()
