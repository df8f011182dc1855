"""A data set's faults (data/problems.py, data/layout.py) as train and check name them: `error: ...` lines naming
the file and its fix, exit 2."""

import shutil

import cv2
import numpy as np
import pytest

from tests.conftest import TINY, assert_errors, run_main
from tumorseg.data.phantom import generate_phantom


def phantom(root, train_subjects=3):
    """A small phantom data set of 64x64 slices at root."""
    return generate_phantom(root, train_subjects=train_subjects, val_subjects=1, slices=4, size=64, seed=0)


def train(root, tmp_path, *overrides):
    """tumorseg train on the data set at root, tiny and quick."""
    return run_main("tumorseg.train", *TINY, f"data.root={root}", "data.phantom=null",
                    f"hydra.run.dir={tmp_path / 'run'}", *overrides)


def check(root, tmp_path, *overrides):
    """tumorseg check of the data set at root."""
    return run_main("tumorseg.check", f"data.root={root}", "data.image_size=64", f"hydra.run.dir={tmp_path / 'log'}",
                    *overrides)


def move_masks_one_folder_down(part):
    """part/masks/<subject>/k.png -> part/masks/extra/<subject>/k.png."""
    shutil.move(part / "masks", part / "extra")
    (part / "masks").mkdir()
    shutil.move(part / "extra", part / "masks" / "extra")


def test_train_names_a_mismatched_pair_before_the_split_rules(tmp_path):
    root = phantom(tmp_path / "d", train_subjects=1)  # one subject: the split alone would refuse it
    mask = sorted((root / "train/masks").rglob("*.png"))[0]
    cv2.imwrite(str(mask), np.zeros((30, 64), np.uint8))
    result = train(root, tmp_path)
    assert_errors(result, mask, "same size")
    assert "cannot split" not in result.stderr


@pytest.mark.parametrize("command", [train, check], ids=["train", "check"])
def test_masks_one_folder_too_deep_are_named_with_the_move_that_fixes_them(command, tmp_path):
    root = phantom(tmp_path / "d")
    move_masks_one_folder_down(root / "train")
    result = command(root, tmp_path)
    assert_errors(result, root / "train/masks/extra", "one folder too deep", f"up into {root / 'train/masks'}")
    assert "cannot split" not in result.stderr


def test_check_names_a_part_whose_masks_folder_is_empty(tmp_path):
    root = phantom(tmp_path / "d")
    shutil.rmtree(root / "val/masks")
    (root / "val/masks").mkdir()
    assert_errors(check(root, tmp_path), f"{root / 'val/masks'} holds no masks")


def test_check_names_every_image_of_a_part_without_its_mask(tmp_path):
    root = phantom(tmp_path / "d")
    masks = sorted((root / "val/masks").rglob("*.png"))
    for mask in masks:
        mask.rename(mask.with_name(f"mask_{mask.name}"))
    images = sorted((root / "val/images").rglob("*.png"))
    assert_errors(check(root, tmp_path), *[f"{image} has no mask" for image in images])


@pytest.mark.parametrize("command", [train, check], ids=["train", "check"])
def test_a_data_root_that_is_a_file_is_called_a_file(command, tmp_path):
    root = tmp_path / "data.zip"
    root.write_bytes(b"PK")
    assert_errors(command(root, tmp_path), f"data.root={root} is a file", "must be a folder")








