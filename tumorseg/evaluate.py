"""Evaluate a checkpoint on any folder in the data layout: pooled, per-slice, per-subject metrics.

    python -m tumorseg.evaluate ckpt_path=CKPT data_dir=FOLDER [split=val] [tta=true]
"""

import json
import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from torch.nn import functional as F

from tumorseg import CONF_DIR
from tumorseg.config_checks import check_config
from tumorseg.data.decode import MAX_PIXELS
from tumorseg.data.sources import labelled_subjects, resolve_part
from tumorseg.errors import exit_on_user_error
from tumorseg.metrics import SegMetrics
from tumorseg.progress import progress
from tumorseg.segment import segmenter_for
from tumorseg.tta import describe

log = logging.getLogger("tumorseg")


def evaluate(cfg: DictConfig) -> dict:
    """Metrics of cfg.ckpt_path on cfg.data_dir, each slice scored at its own size; also written to
    <output dir>/metrics.json."""
    check_config(cfg)
    segmenter = segmenter_for(cfg, log)
    folder = resolve_part(cfg.data_dir, cfg.split)
    subjects = labelled_subjects(folder, int(cfg.get("max_pixels") or MAX_PIXELS))
    metric, bce_sum, pixels = SegMetrics(threshold=0.5), 0.0, 0
    with progress(sum(len(s.files) for s in subjects), f"evaluating {folder}") as advance:
        for sid, subject in enumerate(subjects):
            result = segmenter.subject(subject.images, subject.files)
            for i, (mask, truth) in enumerate(zip(result.masks, subject.masks)):
                y = torch.from_numpy(truth)[None, None].float()
                prob = torch.from_numpy(np.ascontiguousarray(result.at_size(i, truth.shape, after_3d=False)))
                bce_sum += float(F.binary_cross_entropy(prob[None, None], y, reduction="sum"))
                pixels += truth.size
                metric.update(torch.from_numpy(mask)[None, None].float(), y, torch.tensor([sid]))
            advance(len(subject.files))
    values = {k: float(v) for k, v in metric.compute().items()}
    choices, runner = segmenter.settings, segmenter.runner
    result = {
        **{k: None if np.isnan(v) else round(v, 6) for k, v in values.items() if not k.startswith("n_")},
        "bce": round(bce_sum / max(1, pixels), 6),
        "n_images": int(values["n_images"]),
        "n_subjects": int(values["n_subjects"]),
        "threshold": choices.threshold,
        "tta": choices.tta,
        "seed_threshold": choices.seed_threshold,
        "inference_precision": runner.precision,  # "precision" is the metric
        "runtime": runner.runtime,
        "device": str(runner.device),
        "min_size": choices.min_size,
        "largest_3d": choices.largest_3d,
        "data_dir": str(folder),
        "ckpt_path": str(segmenter.model.path),
        "subjects": {subjects[i].name: {k: round(v, 6) for k, v in figures.items()}
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
                  f"{result['runtime']} {'fp32' if result['inference_precision'] == '32' else result['inference_precision']}")
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
