"""Evaluate a checkpoint on any folder in the data layout (pooled, per-slice, per-subject metrics) or on CT volumes
with labels (per-case 3D Dice, volume error, detection); both write metrics.json and index.html into the run dir.

    python -m tumorseg.evaluate ckpt_path=CKPT data_dir=FOLDER [split=val] [tta=true]
    python -m tumorseg.evaluate data_dir=TASK_FOLDER [label=1] [cases=[...]]     (MSD / nnU-Net v2 task)
    python -m tumorseg.evaluate images=VOLUMES labels=LABEL_VOLUMES [label=1]
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
from tumorseg.data.decode import MAX_PIXELS
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.files.output_files import OutputFiles
from tumorseg.inference.segment import Segmenter, segmenter_for
from tumorseg.inference.sources import labelled_subjects, resolve_part
from tumorseg.inference.tta import describe
from tumorseg.inference.volume_segment import segment_volume, window_of
from tumorseg.scoring.cases import evaluation_cases
from tumorseg.scoring.metrics import SegMetrics
from tumorseg.scoring.volume_metrics import case_scores, mean_scores
from tumorseg.settings.rules import check_config
from tumorseg.volumes.headers import read_limits, same_grid
from tumorseg.volumes.io import read_volume, slice_extent, voxel_ml
from tumorseg.volumes.orientation import slice_stack
from tumorseg.writers.progress import progress
from tumorseg.writers.viewer import PageSubject, layer_paths, write_layers, write_page

log = logging.getLogger("tumorseg")




def case_figures(f: dict) -> dict:
    """A case's figures as the viewer page lists them."""
    return {"dice": f["dice"], "pred mL": f["predicted_ml"], "true mL": f["true_ml"],
            "found": f"{f['found_components']}/{f['true_components']}", "false pos.": f["false_positive_components"]}


def subject_figures(f: dict) -> dict:
    """A subject's figures as the viewer page lists them."""
    return {"dice": f["dice"], "precision": f["precision"], "recall": f["recall"], "slices": f["n_images"]}


def evaluate(cfg: DictConfig) -> dict:
    """Metrics of cfg.ckpt_path on cfg.data_dir (or images=/labels=), each slice scored at its own size; also
    written to <output dir>/metrics.json, with the viewer page <output dir>/index.html."""
    check_config(cfg)
    found = evaluation_cases(cfg)  # a volume task's faults before the model is loaded
    segmenter = segmenter_for(cfg, log)
    if found is not None:
        return evaluate_volumes(cfg, segmenter, *found)
    folder = resolve_part(cfg.data_dir, cfg.split)
    subjects = labelled_subjects(folder, int(cfg.get("max_pixels") or MAX_PIXELS))
    out_dir, viewer = Path(cfg.paths.output_dir), cfg.get("viewer", True)
    written = run_dir_files(out_dir, [p for s in subjects for p in layer_paths(out_dir, s.name, len(s.files))]
                            if viewer else [])
    metric, bce_sum, pixels, layers = SegMetrics(threshold=0.5), 0.0, 0, {}
    with progress(sum(len(s.files) for s in subjects), f"evaluating {folder}") as advance:
        for sid, subject in enumerate(subjects):
            result = segmenter.subject(subject.images, subject.files)
            for i, (mask, truth) in enumerate(zip(result.masks, subject.masks)):
                y = torch.from_numpy(truth)[None, None].float()
                prob = torch.from_numpy(np.ascontiguousarray(result.at_size(i, truth.shape, after_3d=False)))
                bce_sum += float(F.binary_cross_entropy(prob[None, None], y, reduction="sum"))
                pixels += truth.size
                metric.update(torch.from_numpy(mask)[None, None].float(), y, torch.tensor([sid]))
            if viewer:
                layers[subject.name] = write_layers(written, out_dir, subject.name, [f.stem for f in subject.files],
                                                    subject.images, result.masks, subject.masks)
            advance(len(subject.files))
    values = {k: float(v) for k, v in metric.compute().items()}
    result = {
        **{k: None if np.isnan(v) else round(v, 6) for k, v in values.items() if not k.startswith("n_")},
        "bce": round(bce_sum / max(1, pixels), 6),
        "n_images": int(values["n_images"]),
        "n_subjects": int(values["n_subjects"]),
        **settings_record(segmenter),
        "data_dir": str(folder),
        "ckpt_path": str(segmenter.model.path),
        "subjects": {subjects[i].name: {k: round(v, 6) for k, v in figures.items()}
                     for i, figures in metric.by_subject().items()},
    }
    write_results(written, out_dir, result, "subjects", subject_figures, layers)
    return result


def settings_record(segmenter: Segmenter) -> dict:
    """The choices in force, as metrics.json records them."""
    choices, runner = segmenter.settings, segmenter.runner
    return {
        "threshold": choices.threshold,
        "tta": choices.tta,
        "seed_threshold": choices.seed_threshold,
        "inference_precision": runner.precision,  # "precision" is the metric
        "runtime": runner.runtime,
        "device": str(runner.device),
        "min_size": choices.min_size,
        "largest_3d": choices.largest_3d,
    }


def run_dir_files(out_dir: Path, layers: list[Path]) -> OutputFiles:
    """The files evaluate writes into its run dir (its own folder, so an earlier evaluate's files there are
    replaced, as metrics.json always was; never through a symlink below it), claimed."""
    written = OutputFiles(out_dir, overwrite=True, option="hydra.run.dir")
    written.claim([out_dir / "metrics.json", out_dir / "index.html", *layers])
    return written


def write_results(written: OutputFiles, out_dir: Path, result: dict, key: str, figures_of,
                  layers: dict[str, list]) -> None:
    """metrics.json, and index.html with result[key]'s subjects (or cases) worst Dice first (None, nothing to
    find and nothing found, last)."""
    written.text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    if not layers:
        return
    order = sorted(layers, key=lambda name: (result[key][name]["dice"] is None, result[key][name]["dice"] or 0))
    page = [PageSubject(name, figures_of(result[key][name]), layers[name]) for name in order]
    write_page(written, out_dir, f"tumorseg evaluate: {result.get('data_dir') or result.get('data')}",
               list(page[0].figures), page, note=f"{Path(result['ckpt_path']).name}, threshold {result['threshold']}; "
                                         f"worst Dice first; green: truth, red: prediction")


def evaluate_volumes(cfg: DictConfig, segmenter: Segmenter, cases: list, labels: tuple[int, ...], source: str) -> dict:
    """Per-case 3D figures of CT volumes against their label volumes (label values `labels` are tumor)."""
    window, limits = window_of(cfg), read_limits(cfg)
    out_dir, viewer = Path(cfg.paths.output_dir), cfg.get("viewer", True)
    written = run_dir_files(out_dir, [p for c in cases for p in layer_paths(out_dir, c.name, slice_extent(
        c.image, **limits))] if viewer else [])
    scores, layers = {}, {}
    with progress(len(cases), f"evaluating {len(cases)} volumes") as advance:
        for case in cases:
            image, label = (read_volume(path, **limits) for path in (case.image, case.label))
            if not same_grid(image, label):
                raise UserError(f"{case.label} does not lie on the grid of {case.image} (size, spacing, origin or "
                                f"direction differ): resample the label onto its image")
            truth = np.isin(slice_stack(label), labels).astype(np.uint8)
            slices, result = segment_volume(segmenter, image, window)
            scores[case.name] = case_scores(np.stack(result.masks), truth, voxel_ml(image))
            if viewer:
                layers[case.name] = write_layers(written, out_dir, case.name, [str(k) for k in range(len(slices))],
                                                 list(slices), result.masks, list(truth))
            advance(1)
    result = {**mean_scores(list(scores.values())), **settings_record(segmenter), "data": source,
              "label": list(labels), "ckpt_path": str(segmenter.model.path), "cases": scores}
    write_results(written, out_dir, result, "cases", case_figures, layers)
    return result


def settings_line(result: dict) -> str:
    """The choices in force, in words."""
    return (f"threshold {result['threshold']}, {describe(result['tta'])}, "
            f"3D seed {result['seed_threshold'] if result['seed_threshold'] > result['threshold'] else 'off'}, "
            f"{'largest 3D region only, ' if result['largest_3d'] else ''}"
            f"{result['runtime']} {'fp32' if result['inference_precision'] == '32' else result['inference_precision']}")


def figures_table(result: dict) -> Table:
    """The pooled figures (every float of the result) as a table."""
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, float) or value is None:
            table.add_row(key, "n/a" if value is None else f"{value:.4f}")
    return table


def print_table(result: dict) -> None:
    """The figures as a readable table (stdout)."""
    console = Console(width=120)
    if "cases" in result:
        print_cases(console, result)
        return
    console.print(f"{result['data_dir']}: {result['n_images']} slices, {result['n_subjects']} subjects, "
                  f"{settings_line(result)}")
    console.print(figures_table(result))
    subjects = Table("subject", "slices", "dice", "precision", "recall")
    for name, f in result["subjects"].items():
        subjects.add_row(name, str(f["n_images"]), *(f"{f[k]:.4f}" for k in ("dice", "precision", "recall")))
    console.print(subjects)


def print_cases(console: Console, result: dict) -> None:
    """The per-case 3D figures of evaluate_volumes, and their means."""
    console.print(f"{result['data']}: {result['n_cases']} cases, label {result['label']}, {settings_line(result)}")
    console.print(figures_table(result))
    cases = Table("case", "slices", "dice", "pred mL", "true mL", "error mL", "found/true", "false pos.")
    for name, f in result["cases"].items():
        cases.add_row(name, str(f["slices"]), "n/a" if f["dice"] is None else f"{f['dice']:.4f}",
                      f"{f['predicted_ml']:.3f}", f"{f['true_ml']:.3f}", f"{f['volume_error_ml']:+.3f}",
                      f"{f['found_components']}/{f['true_components']}", str(f["false_positive_components"]))
    console.print(cases)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    result = evaluate(cfg)
    print_table(result)
    print(json.dumps(result), flush=True)
    return result["dice"]


if __name__ == "__main__":
    main()
