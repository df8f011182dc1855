"""Evaluate a checkpoint on any folder in the data layout (pooled, per-slice, per-subject metrics) or on CT volumes
with labels (per-case 3D Dice, volume error, detection); both write metrics.json and index.html into the run dir.

    python -m tumorseg.evaluate ckpt_path=CKPT data_dir=FOLDER [split=val] [tta=true]
    python -m tumorseg.evaluate data_dir=TASK_FOLDER [label=1] [cases=[...]]     (MSD / nnU-Net v2 task)
    python -m tumorseg.evaluate images=VOLUMES labels=LABEL_VOLUMES [label=1]
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
from tumorseg.inference.volume_segment import VolumeOptions, segment_volume
from tumorseg.scoring.cases import evaluation_cases
from tumorseg.scoring.result import Result
from tumorseg.scoring.slice_scores import SliceScores
from tumorseg.scoring.volume_metrics import case_scores, mean_scores
from tumorseg.settings.rules import check_config
from tumorseg.volumes.headers import same_grid
from tumorseg.volumes.io import voxel_ml
from tumorseg.volumes.orientation import slice_stack
from tumorseg.writers.progress import progress
from tumorseg.writers.viewer import PageSubject, layer_paths, write_layers, write_page

log = logging.getLogger("tumorseg")


@dataclass(frozen=True)
class Job:
    """What evaluate scores, resolved before the model is loaded: the slices of a data part (items: its labelled
    subjects) or CT volumes (items: their cases, labels: the tumor label values), inputs checked and every output
    (metrics.json, index.html, the viewer's layers, metrics_t<T>.json for each of thresholds) claimed in `written`."""

    kind: Literal["slices", "volumes"]
    source: str
    items: list
    written: OutputFiles
    out_dir: Path
    viewer: bool
    options: VolumeOptions
    labels: tuple[int, ...] = ()
    thresholds: tuple[float, ...] = ()


def evaluate(cfg: DictConfig) -> Result:
    """Metrics of cfg.ckpt_path on cfg.data_dir (or images=/labels=), each slice scored at its own size; also
    written to <output dir>/metrics.json, with the viewer page <output dir>/index.html."""
    return evaluate_thresholds(cfg)[0]


def evaluate_thresholds(cfg: DictConfig) -> tuple[Result, dict[float, Result]]:
    """evaluate's result, and the figures at each of cfg.thresholds (written to metrics_t<T>.json) from the same
    pass of the net. Resolve the job (inputs checked, outputs claimed), then load the model, then run the job."""
    check_config(cfg)
    job = resolve(cfg)
    segmenter = segmenter_for(cfg, log)
    result, layers, by_threshold = (score_slices if job.kind == "slices" else score_volumes)(job, segmenter)
    for t, scored in by_threshold.items():
        job.written.text(threshold_file(job.out_dir, t), json.dumps(scored.to_json(), indent=2) + "\n")
    write_results(job, result, layers)
    return result, by_threshold


def threshold_file(out_dir: Path, threshold: float) -> Path:
    """Where the figures at one of thresholds=[...] go: metrics_t0.3.json, as metrics.json at threshold=0.3 (the
    shortest text of the number that reads back as it: two thresholds never share a file, nor 0.9999999 passes as 1)."""
    return out_dir / f"metrics_t{threshold!r}.json"


def resolve(cfg: DictConfig) -> Job:
    """cfg's job: a volume task's or images=/labels= cases (every label volume read and checked, every image's
    header), else a data part's labelled slices; its outputs claimed."""
    out_dir, viewer, options = Path(cfg.paths.output_dir), bool(cfg.get("viewer", True)), VolumeOptions.of(cfg)
    found, thresholds = evaluation_cases(cfg), tuple(sorted({float(t) for t in cfg.get("thresholds") or ()}))
    if thresholds and found is not None:
        raise UserError("thresholds= scores the slices of a data part (data_dir=); for CT volumes run evaluate once "
                        "per threshold=")
    if found is None:
        folder = resolve_part(cfg.data_dir, cfg.split)
        subjects = labelled_subjects(folder, int(cfg.get("max_pixels") or MAX_PIXELS))
        layers = [p for s in subjects for p in layer_paths(out_dir, s.name, len(s.files))]
        kind, source, items, labels = "slices", str(folder), subjects, ()
    else:
        items, labels, source = found
        layers = [p for c in items for p in layer_paths(out_dir, c.name, options.extent(c.image))]
        kind = "volumes"
    written = run_dir_files(out_dir, (layers if viewer else []) + [threshold_file(out_dir, t) for t in thresholds])
    return Job(kind, source, items, written, out_dir, viewer, options, labels, thresholds)


def case_figures(f: dict) -> dict:
    """A case's figures as the viewer page lists them."""
    return {"dice": f["dice"], "pred mL": f["predicted_ml"], "true mL": f["true_ml"],
            "found": f"{f['found_components']}/{f['true_components']}", "false pos.": f["false_positive_components"]}


def subject_figures(f: dict) -> dict:
    """A subject's figures as the viewer page lists them."""
    return {"dice": f["dice"], "precision": f["precision"], "recall": f["recall"], "slices": f["n_images"]}


def score_slices(job: Job, segmenter: Segmenter) -> tuple[Result, dict[str, list], dict[float, Result]]:
    """Pooled, per-slice and per-subject figures of a data part's slices, each scored at its own size; the viewer's
    layers by subject (written as each subject is scored); the figures at each of job.thresholds, from the same
    probabilities."""
    subjects, out_dir, main = job.items, job.out_dir, segmenter.settings.threshold
    scores = {t: SliceScores([s.name for s in subjects]) for t in (main, *job.thresholds)}
    bce_sum, pixels, layers = 0.0, 0, {}
    with progress(sum(len(s.files) for s in subjects), f"evaluating {job.source}") as advance:
        for sid, subject in enumerate(subjects):
            result = segmenter.subject(subject.images, subject.files)
            for i, truth in enumerate(subject.masks):
                prob = torch.from_numpy(np.ascontiguousarray(result.at_size(i, truth.shape, after_3d=False)))
                bce_sum += float(F.binary_cross_entropy(prob[None, None], torch.from_numpy(truth)[None, None].float(),
                                                        reduction="sum"))
                pixels += truth.size
            for t, score in scores.items():
                masks = result.masks if t == main else segmenter.thresholded(result.raw, subject.images,
                                                                             subject.files, t).masks
                score.add(masks, subject.masks, sid)
            if job.viewer:
                layers[subject.name] = write_layers(job.written, out_dir, subject.name, [f.stem for f in subject.files],
                                                    subject.images, result.masks, subject.masks)
            advance(len(subject.files))
    results = {t: score.result(bce_sum / max(1, pixels), job.source, str(segmenter.model.path),
                               {**segmenter.record(), "threshold": t}) for t, score in scores.items()}
    return results[main], layers, {t: results[t] for t in job.thresholds}


def run_dir_files(out_dir: Path, layers: list[Path]) -> OutputFiles:
    """The files evaluate writes into its run dir (its own folder, so an earlier evaluate's files there are
    replaced, as metrics.json always was; never through a symlink below it), claimed."""
    written = OutputFiles(out_dir, overwrite=True, option="hydra.run.dir")
    written.claim([out_dir / "metrics.json", out_dir / "index.html", *layers])
    return written


def write_results(job: Job, result: Result, layers: dict[str, list]) -> None:
    """metrics.json, and index.html with the subjects (or cases) worst Dice first (None, nothing to find and nothing
    found, last)."""
    job.written.text(job.out_dir / "metrics.json", json.dumps(result.to_json(), indent=2) + "\n")
    if not layers:
        return
    items, figures_of = result.per_item, subject_figures if result.kind == "slices" else case_figures
    order = sorted(layers, key=lambda name: (items[name]["dice"] is None, items[name]["dice"] or 0))
    page = [PageSubject(name, figures_of(items[name]), layers[name]) for name in order]
    write_page(job.written, job.out_dir, f"tumorseg evaluate: {result.source}", list(page[0].figures), page,
               note=f"{Path(result.ckpt_path).name}, threshold {result.settings['threshold']}; "
                    f"worst Dice first; green: truth, red: prediction")


def score_volumes(job: Job, segmenter: Segmenter) -> tuple[Result, dict[str, list], dict]:
    """Per-case 3D figures of CT volumes against their label volumes (label values job.labels are tumor), and
    their means; the viewer's layers by case."""
    options, scores, layers = job.options, {}, {}
    with progress(len(job.items), f"evaluating {len(job.items)} volumes") as advance:
        for case in job.items:
            image, label = options.read(case.image), options.read(case.label)
            if not same_grid(image, label):
                raise UserError(f"{case.label} does not lie on the grid of {case.image} (size, spacing, origin or "
                                f"direction differ): resample the label onto its image")
            truth = np.isin(slice_stack(label), job.labels).astype(np.uint8)
            slices, result = segment_volume(segmenter, image, options.window, str(case.image))
            scores[case.name] = case_scores(np.stack(result.masks), truth, voxel_ml(image))
            if job.viewer:
                layers[case.name] = write_layers(job.written, job.out_dir, case.name,
                                                 [str(k) for k in range(len(slices))], list(slices), result.masks,
                                                 list(truth))
            advance(1)
    return Result("volumes", job.source, str(segmenter.model.path), mean_scores(list(scores.values())),
                  segmenter.record(), scores, tuple(job.labels)), layers, {}


def settings_line(result: dict) -> str:
    """The choices in force (settings_record), in words."""
    return (f"threshold {result['threshold']}, {describe(result['tta'])}, "
            f"3D seed {result['seed_threshold'] if result['seed_threshold'] > result['threshold'] else 'off'}, "
            f"{'largest 3D region only, ' if result['largest_3d'] else ''}"
            f"{result['runtime']} {'fp32' if result['inference_precision'] == '32' else result['inference_precision']}")


def figures_table(result: Result) -> Table:
    """The pooled figures (every float of metrics.json) as a table."""
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.to_json().items():
        if isinstance(value, float) or value is None:
            table.add_row(key, "n/a" if value is None else f"{value:.4f}")
    return table


def print_table(result: Result) -> None:
    """The figures as a readable table (stdout)."""
    console = Console(width=120)
    if result.kind == "volumes":
        print_cases(console, result)
        return
    console.print(f"{result.source}: {result['n_images']} slices, {result['n_subjects']} subjects, "
                  f"{settings_line(result.settings)}")
    console.print(figures_table(result))
    subjects = Table("subject", "slices", "dice", "precision", "recall")
    for name, f in result.per_item.items():
        subjects.add_row(name, str(f["n_images"]), *(f"{f[k]:.4f}" for k in ("dice", "precision", "recall")))
    console.print(subjects)


def print_thresholds(by_threshold: dict[float, Result]) -> None:
    """The main figures at each of thresholds=[...] and the file each went to."""
    table = Table("threshold", "dice", "dice/subject", "precision", "recall", "written")
    for t, r in by_threshold.items():
        table.add_row(f"{t:g}", *(f"{r[k]:.4f}" for k in ("dice", "dice_per_subject", "precision", "recall")),
                      threshold_file(Path(""), t).name)
    Console(width=120).print(table)


def print_cases(console: Console, result: Result) -> None:
    """The per-case 3D figures of score_volumes, and their means."""
    console.print(f"{result.source}: {result['n_cases']} cases, label {list(result.labels)}, "
                  f"{settings_line(result.settings)}")
    console.print(figures_table(result))
    cases = Table("case", "slices", "dice", "pred mL", "true mL", "error mL", "found/true", "false pos.")
    for name, f in result.per_item.items():
        cases.add_row(name, str(f["slices"]), "n/a" if f["dice"] is None else f"{f['dice']:.4f}",
                      f"{f['predicted_ml']:.3f}", f"{f['true_ml']:.3f}", f"{f['volume_error_ml']:+.3f}",
                      f"{f['found_components']}/{f['true_components']}", str(f["false_positive_components"]))
    console.print(cases)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    result, by_threshold = evaluate_thresholds(cfg)
    print_table(result)
    if by_threshold:
        print_thresholds(by_threshold)
    print(json.dumps(result.to_json()), flush=True)
    return result.figures["dice"]


if __name__ == "__main__":
    main()
