"""Predict tumor masks for new images: masks, overlays and a summary per image.

    python -m tumorseg.predict ckpt_path=CKPT input=FILE_OR_FOLDER output=DIR
"""

import csv
import sys
from pathlib import Path

import cv2
import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from rich.progress import track

from tumorseg.data.decode import read_gray
from tumorseg.data.layout import IMAGE_EXTS
from tumorseg import CONF_DIR
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.inference import count_components, load_predictor, remove_small
from tumorseg.pictures import overlay, save_rgb

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
    files = sorted(f for f in base.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS
                   and "masks" not in f.relative_to(base).parts[:-1])
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


def predict_one(gray: np.ndarray, prob: np.ndarray, cfg: DictConfig) -> tuple[np.ndarray, dict]:
    """Mask at the image's own size (0/1) and its summary row, from the model-size probability map."""
    h, w = gray.shape
    prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR) if prob.shape != (h, w) else prob
    mask = remove_small((prob > cfg.threshold).astype(np.uint8), cfg.postprocess.min_size)
    pixels = int(mask.sum())
    row = dict(tumor_pixels=pixels, tumor_fraction=round(pixels / (h * w), 6),
               max_probability=round(float(prob.max()), 6), components=count_components(mask))
    return mask, row


def predict(cfg: DictConfig) -> tuple[Path, list[dict], list[str]]:
    """Write masks/, overlays/ and summary.csv; return (output dir, rows, failures)."""
    if not cfg.ckpt_path:
        raise UserError("ckpt_path is not set: ckpt_path=<run dir>/checkpoints/last.ckpt")
    predictor = load_predictor(cfg.ckpt_path)
    base, files = find_images(cfg.input)
    out = Path(cfg.output or cfg.paths.output_dir).expanduser()
    rows, failures = [], []
    batches = [files[i:i + cfg.batch_size] for i in range(0, len(files), cfg.batch_size)]
    for batch in track(batches, description=f"predicting {len(files)} images", transient=True):
        grays = []
        for path in batch:
            try:
                grays.append((path, read_gray(path, cfg.max_pixels)))
            except UserError as err:
                failures.append(str(path))
                print(f"error: {err}", file=sys.stderr, flush=True)
        if not grays:
            continue
        size = predictor.image_size
        x = predictor.to_tensor([cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA) for _, g in grays])
        probs = predictor.probabilities(x, cfg.tta)[:, 0].numpy()
        for (path, gray), prob in zip(grays, probs):
            mask, row = predict_one(gray, prob, cfg)
            rel = path.relative_to(base).with_suffix(".png")
            (out / "masks" / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / "masks" / rel), mask * 255)
            save_rgb(out / "overlays" / rel, overlay(gray, mask, truth_beside(path)))
            rows.append({"path": str(path.relative_to(base)), **row})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return out, rows, failures


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    torch.set_grad_enabled(False)
    out, rows, failures = predict(cfg)
    print(f"{len(rows)} predicted, {len(failures)} failed: {out}/masks, {out}/overlays, {out}/summary.csv")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
