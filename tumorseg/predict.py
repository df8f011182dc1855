"""Predict tumor masks for new images or CT volumes: masks, overlays, a summary and a viewer page.

    python -m tumorseg.predict ckpt_path=CKPT input=FILE_OR_FOLDER output=DIR

2D images (PNG, JPEG, TIFF, BMP; a folder of them): masks/ and overlays/ per image, a summary row per image. A CT
volume (NIfTI, NRRD, MetaImage, a DICOM file or series folder; a folder of volumes): one subject each, with the
outputs of tumorseg.writers.volume_outputs and a summary row per volume. Both write index.html
(tumorseg.writers.viewer).
"""

import csv
import io
import logging
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from tumorseg import CONF_DIR
from tumorseg.data.decode import read_gray
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.files.output_files import OutputFiles, check_apart
from tumorseg.inference.postprocess import count_components
from tumorseg.inference.segment import Segmenter, segmenter_for
from tumorseg.inference.sources import Subject, VolumeSource, image_subjects, truth_beside, volume_sources
from tumorseg.inference.volume_segment import window_of
from tumorseg.settings.rules import check_config
from tumorseg.volumes.headers import read_limits
from tumorseg.volumes.io import slice_extent
from tumorseg.writers.pictures import bgr, overlay
from tumorseg.writers.progress import progress
from tumorseg.writers.viewer import PageSubject, layer_paths, write_layers, write_page
from tumorseg.writers.volume_outputs import COLUMNS, VolumeFiles, planned, predict_volume
from tumorseg.writers.volume_outputs import FIELDS as VOLUME_FIELDS

FIELDS = ("path", "tumor_pixels", "tumor_fraction", "max_probability", "components")
log = logging.getLogger("tumorseg")


def summary_row(mask: np.ndarray, prob: np.ndarray) -> dict:
    """A slice's line of summary.csv, from its mask and probabilities at its own size."""
    pixels = int(mask.sum())
    return dict(tumor_pixels=pixels, tumor_fraction=round(pixels / mask.size, 6),
                max_probability=round(float(prob.max()), 6), components=count_components(mask))


def predict(cfg: DictConfig) -> tuple[Path, list[dict], list[str]]:
    """Write the masks, overlays, summary.csv and index.html of cfg.input; return (output dir, rows, failures)."""
    check_config(cfg)
    out = Path(cfg.output or cfg.paths.output_dir).expanduser()
    sources = volume_sources(cfg.input, cfg.get("series"))
    if sources is not None:
        check_output(out, cfg.input)
        return predict_volumes(cfg, sources, out)
    segmenter = segmenter_for(cfg, log)
    base, subjects = image_subjects(cfg.input)
    check_output(out, cfg.input)
    written, viewer = OutputFiles(out, overwrite=bool(cfg.get("overwrite"))), cfg.get("viewer", True)
    files = [f for s in subjects for f in s.files]
    written.claim([out / kind / f.relative_to(base).with_suffix(".png")
                   for f in files for kind in ("masks", "overlays")] + [out / "summary.csv"]
                  + ([p for s in subjects for p in layer_paths(out, s.name, len(s.files))] + [out / "index.html"]
                     if viewer else []))
    rows, failures, page = [], [], []
    with progress(len(files), f"predicting {len(files)} images") as advance:
        for subject in subjects:
            subject_rows, entry = predict_subject(cfg, segmenter, subject, base, out, failures, written)
            rows += subject_rows
            page += [entry] if entry else []
            advance(len(subject.files))
    write_csv(written, out / "summary.csv", FIELDS, rows)
    if viewer:
        write_page(written, out, f"tumorseg predict: {cfg.input}", ["tumor px", "slices with tumor"], page,
                   note=f"{segmenter.model.path.name}, threshold {segmenter.settings.threshold}")
    return out, rows, failures


def check_output(out: Path, given: str) -> None:
    """Refuse an output folder that overlaps the input, or is a file."""
    check_apart(out, [Path(given)])
    if out.exists() and not out.is_dir():
        raise UserError(f"output={out} is a file: name a folder for masks/, overlays/ and summary.csv")


def write_csv(written: OutputFiles, path: Path, fields: tuple[str, ...], rows: list[dict]) -> None:
    """rows as a CSV file with a header line (None as an empty field)."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    written.text(path, table.getvalue())


def predict_volumes(cfg: DictConfig, sources: list[VolumeSource], out: Path) -> tuple[Path, list[dict], list[str]]:
    """Every volume's outputs (all of them claimed, every volume's header checked, before the model is loaded and
    the first file written), summary.csv (a row per volume) and index.html."""
    options = dict(series=cfg.get("series"), limits=read_limits(cfg), window=window_of(cfg),
                   viewer=cfg.get("viewer", True))
    written = VolumeFiles(out, overwrite=bool(cfg.get("overwrite")))
    # from each header, read once: a volume that cannot be read, several series without series=, or too many voxels
    # is refused here, before the model is loaded and anything written
    extents = [slice_extent(s.path, options["series"], **options["limits"]) for s in sources]
    written.claim([p for s, n in zip(sources, extents) for p in planned(out, s, n, options)]
                  + [out / "summary.csv", out / "index.html"])
    segmenter = segmenter_for(cfg, log)
    rows, failures, page = [], [], []
    total = sum(extents)
    with progress(total, f"predicting {len(sources)} volume(s), {total} slices") as advance:
        for source in sources:
            row, entry = predict_volume(segmenter, source, out, written, options, failures, advance)
            rows.append(row)
            page += [entry] if entry else []
    write_csv(written, out / "summary.csv", VOLUME_FIELDS, rows)
    if options["viewer"]:
        write_page(written, out, f"tumorseg predict: {cfg.input}", list(COLUMNS), page,
                   note=f"{segmenter.model.path.name}, threshold {segmenter.settings.threshold}; mL from the voxel "
                        f"spacing, 3D components 26-connected")
    return out, rows, failures


def predict_subject(cfg: DictConfig, segmenter: Segmenter, subject: Subject, base: Path, out: Path,
                    failures: list[str], written: OutputFiles) -> tuple[list[dict], PageSubject | None]:
    """Masks and overlays of one subject's files (post-processed together); their summary rows and the subject's
    viewer entry (None without viewer, or when no file could be read)."""
    paths, grays = [], []  # the readable files (an unreadable one is reported and left out, neighbours included)
    for path in subject.files:
        try:
            grays.append(read_gray(path, cfg.max_pixels))
            paths.append(path)
        except UserError as err:
            failures.append(str(path))
            print(f"error: {err}", file=sys.stderr, flush=True)
    if not paths:
        return [], None
    result = segmenter.subject(grays, paths)
    rows, truths = [], []
    for i, (path, gray, mask) in enumerate(zip(paths, grays, result.masks)):
        rel = path.relative_to(base).with_suffix(".png")
        truths.append(truth_beside(path, cfg.max_pixels))
        written.image(out / "masks" / rel, mask * 255)
        written.image(out / "overlays" / rel, bgr(overlay(gray, mask, truths[-1])))
        rows.append({"path": str(path.relative_to(base)), **summary_row(mask, result.at_size(i, gray.shape))})
    if not cfg.get("viewer", True):
        return rows, None
    layers = write_layers(written, out, subject.name, [p.stem for p in paths], grays, result.masks, truths)
    figures = {"tumor px": sum(r["tumor_pixels"] for r in rows),
               "slices with tumor": sum(r["tumor_pixels"] > 0 for r in rows)}
    return rows, PageSubject(subject.name, figures, layers)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    with torch.no_grad():
        out, rows, failures = predict(cfg)
    if rows and "tumor_ml" in rows[0]:
        print(f"{len(rows)} volume(s) predicted, {len(failures)} failed: {out}/<name>_mask.*, {out}/overlays, "
              f"{out}/summary.csv, {out}/index.html")
    else:
        print(f"{len(rows)} predicted, {len(failures)} failed: {out}/masks, {out}/overlays, {out}/summary.csv"
              f"{', ' + str(out / 'index.html') if cfg.get('viewer', True) else ''}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
