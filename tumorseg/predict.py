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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
from tumorseg.inference.volume_segment import VolumeOptions, segment_volume
from tumorseg.settings.rules import check_config
from tumorseg.writers.pictures import bgr, overlay
from tumorseg.writers.progress import progress
from tumorseg.writers.viewer import PageSubject, layer_paths, write_layers, write_page
from tumorseg.writers.volume_outputs import COLUMNS, VolumeFiles, planned, write_volume_outputs
from tumorseg.writers.volume_outputs import FIELDS as VOLUME_FIELDS

FIELDS = ("path", "tumor_pixels", "tumor_fraction", "max_probability", "components")
log = logging.getLogger("tumorseg")


@dataclass(frozen=True)
class Prediction:
    """What predict did, either kind: the output folder, summary.csv's rows (a row per image, or per volume) and the
    inputs that failed."""

    kind: Literal["images", "volumes"]
    out: Path
    rows: list[dict]
    failures: list[str]


def predict(cfg: DictConfig) -> Prediction:
    """Write the masks, overlays, summary.csv and index.html of cfg.input: resolve the job (inputs found and checked,
    every output claimed), then load the model, then run the job."""
    check_config(cfg)
    job = resolve(cfg)
    segmenter = segmenter_for(cfg, log)
    return job.run(segmenter)


def resolve(cfg: DictConfig) -> "ImageJob | VolumeJob":
    """cfg.input's job: CT volumes, or 2D images."""
    out = Path(cfg.output or cfg.paths.output_dir).expanduser()
    sources = volume_sources(cfg.input, cfg.get("series"))
    return ImageJob.claimed(cfg, out) if sources is None else VolumeJob.claimed(cfg, sources, out)


def summary_row(mask: np.ndarray, prob: np.ndarray) -> dict:
    """A slice's line of summary.csv, from its mask and probabilities at its own size."""
    pixels = int(mask.sum())
    return dict(tumor_pixels=pixels, tumor_fraction=round(pixels / mask.size, 6),
                max_probability=round(float(prob.max()), 6), components=count_components(mask))


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


@dataclass(frozen=True)
class ImageJob:
    """2D images (subjects below base), their outputs claimed: masks/ and overlays/ per image, summary.csv, the
    viewer."""

    input: str
    out: Path
    base: Path
    subjects: list[Subject]
    written: OutputFiles
    max_pixels: int
    viewer: bool

    @classmethod
    def claimed(cls, cfg: DictConfig, out: Path) -> "ImageJob":
        """cfg.input's images, with every output claimed."""
        base, subjects = image_subjects(cfg.input)
        check_output(out, cfg.input)
        written, viewer = OutputFiles(out, overwrite=bool(cfg.get("overwrite"))), bool(cfg.get("viewer", True))
        files = [f for s in subjects for f in s.files]
        written.claim([out / kind / f.relative_to(base).with_suffix(".png")
                       for f in files for kind in ("masks", "overlays")] + [out / "summary.csv"]
                      + ([p for s in subjects for p in layer_paths(out, s.name, len(s.files))] + [out / "index.html"]
                         if viewer else []))
        return cls(cfg.input, out, base, subjects, written, cfg.max_pixels, viewer)

    def run(self, segmenter: Segmenter) -> Prediction:
        """Every subject's masks and overlays, summary.csv and index.html."""
        rows, failures, page = [], [], []
        files = sum(len(s.files) for s in self.subjects)
        with progress(files, f"predicting {files} images") as advance:
            for subject in self.subjects:
                subject_rows, entry = self.subject(segmenter, subject, failures)
                rows += subject_rows
                page += [entry] if entry else []
                advance(len(subject.files))
        write_csv(self.written, self.out / "summary.csv", FIELDS, rows)
        if self.viewer:
            write_page(self.written, self.out, f"tumorseg predict: {self.input}", ["tumor px", "slices with tumor"],
                       page, note=f"{segmenter.model.path.name}, threshold {segmenter.settings.threshold}")
        return Prediction("images", self.out, rows, failures)

    def subject(self, segmenter: Segmenter, subject: Subject,
                failures: list[str]) -> tuple[list[dict], PageSubject | None]:
        """Masks and overlays of one subject's files (post-processed together); their summary rows and the
        subject's viewer entry (None without viewer, or when no file could be read)."""
        paths, grays = [], []  # the readable files (an unreadable one is reported and left out, neighbours included)
        for path in subject.files:
            try:
                grays.append(read_gray(path, self.max_pixels))
                paths.append(path)
            except UserError as err:
                failures.append(str(path))
                print(f"error: {err}", file=sys.stderr, flush=True)
        if not paths:
            return [], None
        result = segmenter.subject(grays, paths)
        rows, truths = [], []
        for i, (path, gray, mask) in enumerate(zip(paths, grays, result.masks)):
            rel = path.relative_to(self.base).with_suffix(".png")
            truths.append(truth_beside(path, self.max_pixels))
            self.written.image(self.out / "masks" / rel, mask * 255)
            self.written.image(self.out / "overlays" / rel, bgr(overlay(gray, mask, truths[-1])))
            rows.append({"path": str(path.relative_to(self.base)), **summary_row(mask, result.at_size(i, gray.shape))})
        if not self.viewer:
            return rows, None
        layers = write_layers(self.written, self.out, subject.name, [p.stem for p in paths], grays, result.masks,
                              truths)
        figures = {"tumor px": sum(r["tumor_pixels"] for r in rows),
                   "slices with tumor": sum(r["tumor_pixels"] > 0 for r in rows)}
        return rows, PageSubject(subject.name, figures, layers)


@dataclass(frozen=True)
class VolumeJob:
    """CT volumes (each one subject), every header checked and every output claimed (tumorseg.writers.volume_outputs:
    masks, DICOM SEGs, overlays, the viewer), summary.csv (a row per volume) and index.html."""

    input: str
    out: Path
    sources: list[VolumeSource]
    extents: list[int]
    options: VolumeOptions
    written: VolumeFiles

    @classmethod
    def claimed(cls, cfg: DictConfig, sources: list[VolumeSource], out: Path) -> "VolumeJob":
        """The volumes' job: from each header, read once, a volume that cannot be read, several series without
        series=, or too many voxels is refused here, before the model is loaded and anything written."""
        check_output(out, cfg.input)
        options = VolumeOptions.of(cfg)
        written = VolumeFiles(out, overwrite=bool(cfg.get("overwrite")))
        extents = [options.extent(s.path) for s in sources]
        written.claim([p for s, n in zip(sources, extents) for p in planned(out, s, n, options)]
                      + [out / "summary.csv", out / "index.html"])
        return cls(cfg.input, out, sources, extents, options, written)

    def run(self, segmenter: Segmenter) -> Prediction:
        """Each volume read, segmented and its outputs written; summary.csv and index.html."""
        rows, failures, page = [], [], []
        total = sum(self.extents)
        with progress(total, f"predicting {len(self.sources)} volume(s), {total} slices") as advance:
            for source in self.sources:
                image = self.options.read(source.path)
                slices, result = segment_volume(segmenter, image, self.options.window, str(source.path), advance)
                row, entry = write_volume_outputs(self.written, self.out, source, image, slices, result,
                                                  self.options, segmenter.model.path.name, failures)
                rows.append(row)
                page += [entry] if entry else []
        write_csv(self.written, self.out / "summary.csv", VOLUME_FIELDS, rows)
        if self.options.viewer:
            write_page(self.written, self.out, f"tumorseg predict: {self.input}", list(COLUMNS), page,
                       note=f"{segmenter.model.path.name}, threshold {segmenter.settings.threshold}; mL from the "
                            f"voxel spacing, 3D components 26-connected")
        return Prediction("volumes", self.out, rows, failures)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    with torch.no_grad():
        result = predict(cfg)
    out, done, failed = result.out, len(result.rows), len(result.failures)
    if result.kind == "volumes":
        print(f"{done} volume(s) predicted, {failed} failed: {out}/<name>_mask.*, {out}/overlays, "
              f"{out}/summary.csv, {out}/index.html")
    else:
        print(f"{done} predicted, {failed} failed: {out}/masks, {out}/overlays, {out}/summary.csv"
              f"{', ' + str(out / 'index.html') if cfg.get('viewer', True) else ''}")
    if result.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
