"""Predict tumor masks for new images: masks, overlays and a summary per image.

    python -m tumorseg.predict ckpt_path=CKPT input=FILE_OR_FOLDER output=DIR
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
from tumorseg.config_checks import check_config
from tumorseg.data.decode import read_gray
from tumorseg.data.sources import Subject, image_subjects, truth_beside
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.output_files import OutputFiles, check_apart
from tumorseg.pictures import bgr, overlay
from tumorseg.postprocess import count_components
from tumorseg.progress import progress
from tumorseg.segment import Segmenter, segmenter_for

FIELDS = ("path", "tumor_pixels", "tumor_fraction", "max_probability", "components")
log = logging.getLogger("tumorseg")


def summary_row(mask: np.ndarray, prob: np.ndarray) -> dict:
    """A slice's line of summary.csv, from its mask and probabilities at its own size."""
    pixels = int(mask.sum())
    return dict(tumor_pixels=pixels, tumor_fraction=round(pixels / mask.size, 6),
                max_probability=round(float(prob.max()), 6), components=count_components(mask))


def predict(cfg: DictConfig) -> tuple[Path, list[dict], list[str]]:
    """Write masks/, overlays/ and summary.csv; return (output dir, rows, failures)."""
    check_config(cfg)
    segmenter = segmenter_for(cfg, log)
    base, subjects = image_subjects(cfg.input)
    out = Path(cfg.output or cfg.paths.output_dir).expanduser()
    check_apart(out, [Path(cfg.input)])
    if out.exists() and not out.is_dir():
        raise UserError(f"output={out} is a file: name a folder for masks/, overlays/ and summary.csv")
    written = OutputFiles(overwrite=bool(cfg.get("overwrite")))
    files = [f for s in subjects for f in s.files]
    written.claim([out / kind / f.relative_to(base).with_suffix(".png") for f in files for kind in ("masks", "overlays")]
                  + [out / "summary.csv"])
    rows, failures = [], []
    with progress(len(files), f"predicting {len(files)} images") as advance:
        for subject in subjects:
            rows += predict_subject(cfg, segmenter, subject, base, out, failures, written)
            advance(len(subject.files))
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    written.text(out / "summary.csv", table.getvalue())
    return out, rows, failures


def predict_subject(cfg: DictConfig, segmenter: Segmenter, subject: Subject, base: Path, out: Path,
                    failures: list[str], written: OutputFiles) -> list[dict]:
    """Masks and overlays of one subject's files (post-processed together); their summary rows."""
    paths, grays = [], []  # the readable files (an unreadable one is reported and left out, neighbours included)
    for path in subject.files:
        try:
            grays.append(read_gray(path, cfg.max_pixels))
            paths.append(path)
        except UserError as err:
            failures.append(str(path))
            print(f"error: {err}", file=sys.stderr, flush=True)
    if not paths:
        return []
    result = segmenter.subject(grays, paths)
    rows = []
    for i, (path, gray, mask) in enumerate(zip(paths, grays, result.masks)):
        rel = path.relative_to(base).with_suffix(".png")
        written.image(out / "masks" / rel, mask * 255)
        written.image(out / "overlays" / rel, bgr(overlay(gray, mask, truth_beside(path, cfg.max_pixels))))
        rows.append({"path": str(path.relative_to(base)), **summary_row(mask, result.at_size(i, gray.shape))})
    return rows


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    with torch.no_grad():
        out, rows, failures = predict(cfg)
    print(f"{len(rows)} predicted, {len(failures)} failed: {out}/masks, {out}/overlays, {out}/summary.csv")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
