"""Predict tumor masks for new images: masks, overlays and a summary per image.

    python -m tumorseg.predict ckpt_path=CKPT input=FILE_OR_FOLDER output=DIR
"""

import csv
import io
import sys
from pathlib import Path

import cv2
import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from rich.progress import Progress

from tumorseg.data.context import context_table
from tumorseg.data.decode import read_gray
from tumorseg.data.layout import IMAGE_EXTS, files_below
from tumorseg import CONF_DIR
from tumorseg.config_checks import check_config
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.inference import (Choices, Predictor, inference_settings, load_predictor, model_path, use_device,
                                use_precision)
from tumorseg.postprocess import count_components, remove_small, slice_index, subject_regions
from tumorseg.output_files import OutputFiles, check_apart
from tumorseg.pictures import bgr, overlay

FIELDS = ("path", "tumor_pixels", "tumor_fraction", "max_probability", "components")


def find_images(input_path: str | None) -> tuple[Path, list[Path]]:
    """(base folder, image files below it); a data set part's images/ is used when present."""
    if not input_path:
        raise UserError("input is not set: input=IMAGE_OR_FOLDER")
    path = Path(input_path).expanduser()
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise UserError(f"input={path} does not exist: point it at an image or a folder of images")
    base = path / "images" if (path / "images").is_dir() else path
    files = [f for f in files_below(base) if f.suffix.lower() in IMAGE_EXTS
             and "masks" not in f.relative_to(base).parts[:-1]]
    if not files:
        raise UserError(f"{base} holds no images ({', '.join(IMAGE_EXTS)})")
    return base, files


def truth_beside(image: Path) -> np.ndarray | None:
    """The ground-truth mask of .../images/<rel> at .../masks/<rel>.<any ext>, as 0/1, if there is one."""
    parts = image.parts
    if "images" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("images")
    stem = Path(*parts[:i], "masks", *parts[i + 1:]).with_suffix("")
    for ext in IMAGE_EXTS:
        if stem.with_suffix(ext).is_file():
            try:
                return (read_gray(stem.with_suffix(ext)) > 0).astype(np.uint8)
            except UserError:
                return None
    return None


def predict_one(gray: np.ndarray, prob: np.ndarray, threshold: float, min_size: int) -> tuple[np.ndarray, dict]:
    """Mask at the image's own size (0/1) and its summary row, from the model-size probability map."""
    h, w = gray.shape
    prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR) if prob.shape != (h, w) else prob
    mask = remove_small((prob > threshold).astype(np.uint8), min_size)
    pixels = int(mask.sum())
    row = dict(tumor_pixels=pixels, tumor_fraction=round(pixels / (h * w), 6),
               max_probability=round(float(prob.max()), 6), components=count_components(mask))
    return mask, row


class ModelInputs:
    """Model-size slices of the input files, stacked with their neighbours for a 2.5D model."""

    def __init__(self, predictor: Predictor, files: list[Path], max_pixels: int):
        self.size, self.files, self.max_pixels = predictor.image_size, files, max_pixels
        # A subject is a folder: neighbours are slices K-c..K+c in the same folder.
        self.table = context_table([(str(f.parent), f) for f in files], predictor.context_slices)
        self.cache: dict[int, np.ndarray | None] = {}

    def resize(self, gray: np.ndarray) -> np.ndarray:
        return cv2.resize(gray, (self.size, self.size), interpolation=cv2.INTER_AREA)

    def neighbour(self, j: int) -> np.ndarray | None:
        """File j at model size, read once (None when unreadable; its own turn reports why)."""
        if j not in self.cache:
            try:
                self.cache[j] = self.resize(read_gray(self.files[j], self.max_pixels))
            except UserError:
                self.cache[j] = None
        return self.cache[j]

    def __call__(self, i: int, gray: np.ndarray) -> np.ndarray:
        """H x W for a 2D model, C x H x W for a 2.5D one (an unreadable neighbour is replaced by slice K)."""
        if self.table.shape[1] == 1:
            return self.resize(gray)
        own = self.cache.get(i)
        if own is None:  # not read yet as a neighbour of an earlier slice
            own = self.cache[i] = self.resize(gray)
        return np.stack([own if (n := self.neighbour(int(j))) is None else n for j in self.table[i]])


def by_folder(files: list[Path]) -> list[list[int]]:
    """Positions of files grouped by folder (a subject: its slices are post-processed together), in order."""
    groups: dict[Path, list[int]] = {}
    for i, f in enumerate(files):
        groups.setdefault(f.parent, []).append(i)
    return list(groups.values())


def predict(cfg: DictConfig) -> tuple[Path, list[dict], list[str]]:
    """Write masks/, overlays/ and summary.csv; return (output dir, rows, failures)."""
    check_config(cfg)
    predictor = load_predictor(model_path(cfg))
    choices = inference_settings(cfg, predictor)
    use_device(cfg, predictor)
    use_precision(cfg, predictor)
    base, files = find_images(cfg.input)
    out = Path(cfg.output or cfg.paths.output_dir).expanduser()
    check_apart(out, [Path(cfg.input)])
    if out.exists() and not out.is_dir():
        raise UserError(f"output={out} is a file: name a folder for masks/, overlays/ and summary.csv")
    written = OutputFiles(overwrite=bool(cfg.get("overwrite")))
    written.claim([out / kind / f.relative_to(base).with_suffix(".png") for f in files for kind in ("masks", "overlays")]
                  + [out / "summary.csv"])
    inputs = ModelInputs(predictor, files, cfg.max_pixels)
    rows, failures = [], []
    with Progress(transient=True) as progress:
        task = progress.add_task(f"predicting {len(files)} images", total=len(files))
        for group in by_folder(files):
            rows += predict_folder(cfg, predictor, choices, inputs, [(i, files[i]) for i in group], base, out, failures,
                                   written)
            progress.advance(task, len(group))
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    written.text(out / "summary.csv", table.getvalue())
    return out, rows, failures


def predict_folder(cfg: DictConfig, predictor: Predictor, choices: Choices, inputs: ModelInputs, group: list[tuple[int, Path]],
                   base: Path, out: Path, failures: list[str], written: OutputFiles) -> list[dict]:
    """Masks and overlays of one folder's files (a subject: post-processed together); their summary rows."""
    read, rows = [], []  # (file, gray, position) of the readable files
    for i, path in group:
        try:
            read.append((path, read_gray(path, cfg.max_pixels), i))
        except UserError as err:
            failures.append(str(path))
            print(f"error: {err}", file=sys.stderr, flush=True)
    if not read:
        return rows
    batches = [read[k:k + cfg.batch_size] for k in range(0, len(read), cfg.batch_size)]
    probs = np.concatenate([predictor.probabilities(predictor.to_tensor([inputs(i, g) for _, g, i in batch]),
                                                    choices.tta)[:, 0].numpy() for batch in batches])
    probs = subject_regions(probs, [slice_index(f) for f, _, _ in read], choices.threshold, choices.seed_threshold,
                            choices.largest_3d)
    for (path, gray, _), prob in zip(read, probs):
        mask, row = predict_one(gray, prob, choices.threshold, cfg.postprocess.min_size)
        rel = path.relative_to(base).with_suffix(".png")
        written.image(out / "masks" / rel, mask * 255)
        written.image(out / "overlays" / rel, bgr(overlay(gray, mask, truth_beside(path))))
        rows.append({"path": str(path.relative_to(base)), **row})
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
