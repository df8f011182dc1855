"""A user's mistake in the data or the options: one line `error: ...` naming the file or option, exit 2."""

import shutil

import cv2
import numpy as np
import pytest

from tests.conftest import TINY, run_main
from tumorseg.cli import COMMANDS
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


def assert_user_error(result, *named):
    """Exit 2, no traceback, every `named` text on stderr, each error on a line of its own starting `error:`."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]
    for text in named:
        assert str(text) in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), result.stderr[-2000:]


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
    assert_user_error(result, mask, "same size")
    assert "cannot split" not in result.stderr


@pytest.mark.parametrize("command", [train, check], ids=["train", "check"])
def test_masks_one_folder_too_deep_are_named_with_the_move_that_fixes_them(command, tmp_path):
    root = phantom(tmp_path / "d")
    move_masks_one_folder_down(root / "train")
    result = command(root, tmp_path)
    assert_user_error(result, root / "train/masks/extra", "one folder too deep", f"up into {root / 'train/masks'}")
    assert "cannot split" not in result.stderr


def test_check_names_a_part_whose_masks_folder_is_empty(tmp_path):
    root = phantom(tmp_path / "d")
    shutil.rmtree(root / "val/masks")
    (root / "val/masks").mkdir()
    assert_user_error(check(root, tmp_path), f"{root / 'val/masks'} holds no masks")


def test_check_names_every_image_of_a_part_without_its_mask(tmp_path):
    root = phantom(tmp_path / "d")
    masks = sorted((root / "val/masks").rglob("*.png"))
    for mask in masks:
        mask.rename(mask.with_name(f"mask_{mask.name}"))
    images = sorted((root / "val/images").rglob("*.png"))
    assert_user_error(check(root, tmp_path), *[f"{image} has no mask" for image in images])


@pytest.mark.parametrize("command", [train, check], ids=["train", "check"])
def test_a_data_root_that_is_a_file_is_called_a_file(command, tmp_path):
    root = tmp_path / "data.zip"
    root.write_bytes(b"PK")
    assert_user_error(command(root, tmp_path), f"data.root={root} is a file", "must be a folder")


@pytest.mark.parametrize("option, message", [
    ("data.train_crop=50", "data.train_crop=50 must be a multiple of 32"),
    ("data.train_crop=abc", "data.train_crop='abc' must be an int"),
    ("data.tumor_share=0", "data.tumor_share=0 must be a float between 0 and 1"),
    ("approach.name=bogus", "approach.name='bogus' is not one of"),
])
def test_a_value_a_constructor_refuses_is_one_line(option, message, tmp_path):
    root = phantom(tmp_path / "d")
    assert_user_error(train(root, tmp_path, option), message)


@pytest.mark.parametrize("option, named", [
    ("foo.bar=1", "'foo.bar'"),
    ("approach.k=abc", "'approach.k'"),  # approach=split has no k
    ("approach=nonexistent", "approach/nonexistent"),
    ("data.mean=[", "'['"),
])
def test_an_override_hydra_cannot_parse_or_compose_is_one_line(option, named, tmp_path):
    result = train(tmp_path / "d", tmp_path, option)
    assert_user_error(result, named)
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", sorted(set(COMMANDS.values())))
def test_every_command_reports_an_unknown_key_in_one_line(command, tmp_path):
    result = run_main(command, "foo.bar=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert_user_error(result, "'foo.bar'")


def test_a_run_without_a_logger_trains(tmp_path):
    root = phantom(tmp_path / "d")
    result = train(root, tmp_path, "logger=none")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run/metrics.json").is_file()
