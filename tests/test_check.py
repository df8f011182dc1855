"""Broken data sets built on the fly: `tumorseg.check` names each file and exits 0 (usable) or 2."""

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import assert_errors, assert_one_error, run_main


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def make_dataset(root, val_tumor=True):
    """A small valid data set: train 3 subjects x 3 slices, val 1 subject; 32x32, masks 0/255."""
    for part, subjects in (("train", range(3)), ("val", [9])):
        for s in subjects:
            for k in range(3):
                image = np.full((32, 32), 60, np.uint8)
                mask = np.zeros((32, 32), np.uint8)
                if part == "train" or val_tumor:
                    mask[10:14, 10 + k:14 + k] = 255
                    image[mask > 0] = 200
                write(root / part / "images" / f"S{s}" / f"{k}.png", image)
                write(root / part / "masks" / f"S{s}" / f"{k}.png", mask)
    return root


def check(root, *overrides):
    return run_main("tumorseg.check", f"data.root={root}", "data.image_size=32", f"hydra.run.dir={root}/../log",
                   *overrides)


def test_valid_data_set_is_usable_with_a_summary(tmp_path):
    root = make_dataset(tmp_path / "d")
    result = run_main("tumorseg.check", f"data.root={root}", "data.image_size=32", f"hydra.run.dir={tmp_path}/log")
    assert result.returncode == 0, result.stderr
    assert "train: 3 subjects, 9 slices, 9 with tumor" in result.stdout
    assert "sizes 32x32 (9)" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == f"usable: {root}"


def test_image_without_mask(tmp_path):
    root = make_dataset(tmp_path / "d")
    (root / "train/masks/S1/2.png").unlink()
    assert_errors(check(root), root / "train/images/S1/2.png")


def test_mask_without_image(tmp_path):
    root = make_dataset(tmp_path / "d")
    (root / "train/images/S0/1.png").unlink()
    assert_errors(check(root), root / "train/masks/S0/1.png")


def test_image_and_mask_of_different_sizes(tmp_path):
    root = make_dataset(tmp_path / "d")
    write(root / "train/masks/S2/0.png", np.zeros((30, 32), np.uint8))
    result = check(root)
    assert_errors(result, root / "train/masks/S2/0.png")
    assert "same size" in result.stderr


def test_mask_with_jpeg_artefacts_warns_or_fails_when_strict(tmp_path):
    root = make_dataset(tmp_path / "d")
    noisy = np.zeros((32, 32), np.uint8)
    noisy[8:16, 8:16] = 250
    noisy[16, 8:16] = 3  # artefacts around the edge
    (root / "train/masks/S0/0.png").unlink()
    write(root / "train/masks/S0/0.png", noisy)
    result = check(root)
    assert result.returncode == 0, result.stderr
    assert "1 mask(s) with values other than 0 and one level" in result.stdout
    assert str(root / "train/masks/S0/0.png") in result.stdout
    strict = check(root, "data.strict=true")
    assert_errors(strict, root / "train/masks/S0/0.png")
    assert "data.strict=false" in strict.stderr


def test_colour_images_and_masks_warn_once_per_data_set(tmp_path):
    root = make_dataset(tmp_path / "d")
    for k, mode in enumerate(("RGB", "RGBA")):
        img = cv2.imread(str(root / f"train/images/S0/{k}.png"), cv2.IMREAD_GRAYSCALE)
        Image.fromarray(img).convert(mode).save(root / f"train/images/S0/{k}.png")
    mask = cv2.imread(str(root / "train/masks/S1/0.png"), cv2.IMREAD_GRAYSCALE)
    Image.fromarray(mask).convert("P").save(root / "train/masks/S1/0.png")
    result = check(root)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if "converted to gray" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 3 RGB/RGBA/palette")
    assert "9 with tumor" in result.stdout  # the palette mask still counts as tumor


def test_16_bit_images_are_accepted_and_scaled(tmp_path):
    root = make_dataset(tmp_path / "d")
    img16 = (cv2.imread(str(root / "train/images/S0/0.png"), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 257)
    write(root / "train/images/S0/0.png", img16)
    result = check(root)
    assert result.returncode == 0 and "1 16-bit image(s) scaled to 8 bits" in result.stdout


@pytest.mark.parametrize(("content", "words"), [(b"", "zero-byte"), (b"\x89PNG\r\n\x1a\n\x00\x00trunc", "corrupt")])
def test_corrupt_and_zero_byte_files(tmp_path, content, words):
    root = make_dataset(tmp_path / "d")
    (root / "train/images/S2/1.png").write_bytes(content)
    result = check(root)
    assert_errors(result, root / "train/images/S2/1.png")
    assert words in result.stderr


def test_truncated_png_is_named(tmp_path):
    root = make_dataset(tmp_path / "d")
    path = root / "val/images/S9/0.png"
    path.write_bytes(path.read_bytes()[:40])
    assert_errors(check(root), path)


def test_non_image_files_are_ignored_with_one_warning(tmp_path):
    root = make_dataset(tmp_path / "d")
    (root / "train/images/notes.txt").write_text("scanner settings")
    (root / "train/images/S0/Thumbs.db").write_bytes(b"\x00\x01")
    result = check(root)
    assert result.returncode == 0, result.stderr
    assert "warning: 2 non-image file(s) ignored" in result.stdout


def test_missing_train_images_and_empty_split(tmp_path):
    root = make_dataset(tmp_path / "d")
    for path in (root / "val/images").rglob("*.png"):
        path.unlink()
    (root / "train/images").rename(root / "train/imgs")
    result = check(root)
    assert_errors(result, root / "train/images")
    assert str(root / "val/images") in result.stderr


def test_val_without_tumor_warns(tmp_path):
    root = make_dataset(tmp_path / "d", val_tumor=False)
    result = check(root)
    assert result.returncode == 0
    assert "warning: val (3 slices) has no tumor at all" in result.stdout


def test_training_runs_the_same_checks_before_fitting(tmp_path):
    root = make_dataset(tmp_path / "d")
    (root / "train/masks/S1/2.png").unlink()
    (root / "train/images/S2/1.png").write_bytes(b"")
    result = run_main("tumorseg.train", f"data.root={root}", "data.image_size=32", "model.depth=2",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "S1/2.png has no mask", "+1 more problem(s): python -m tumorseg.check")
    assert not (tmp_path / "run/checkpoints").exists()
