"""2.5D input (data.context_slices): neighbours by slice index, through training, evaluate and predict."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import assert_one_error, run_main, train_run
from tumorseg.data.context import context_table
from tumorseg.data.dataset import SegDataset
from tumorseg.data.layout import find_pairs
from tumorseg.errors import UserError
from tumorseg.inference.model_file import read
from tumorseg.train import train


def files(subject: str, numbers: list[int]) -> list[tuple[str, Path]]:
    return [(subject, Path(f"{subject}/{k}.png")) for k in numbers]


def test_neighbours_are_found_by_slice_index_not_by_file_order():
    # Lexicographic order (10 before 100, 101 before 11) must not matter.
    items = files("a", [0, 1, 10, 100, 101, 102, 11]) + files("b", [2, 3])
    table = context_table(items, 1)
    by_name = {(s, int(p.stem)): row for (s, p), row in zip(items, table)}
    assert list(by_name[("a", 101)]) == [3, 4, 5]
    assert list(by_name[("a", 0)]) == [0, 0, 1]      # no slice -1: repeat slice K
    assert list(by_name[("a", 10)]) == [2, 2, 6]     # 9 missing, 11 present
    assert list(by_name[("a", 100)]) == [3, 3, 4]    # 99 missing
    assert list(by_name[("b", 2)]) == [7, 7, 8]      # subject a's slice 1 is not b's neighbour
    assert context_table(items, 2)[4].tolist() == [4, 3, 4, 5, 4]  # slice 101: 99 and 103 missing -> K
    assert context_table(items, 0).tolist() == [[i] for i in range(len(items))]


def test_a_file_not_named_by_its_index_is_a_clear_error():
    with pytest.raises(UserError, match=r"a/scan_b\.png: data.context_slices needs files named by their slice index"):
        context_table(files("a", [1]) + [("a", Path("a/scan_b.png"))], 1)
    assert context_table([("a", Path("a/scan_b.png"))], 0).shape == (1, 1)  # 2D needs no numbers


def test_dataset_stacks_neighbours_as_channels_with_slice_k_in_the_middle(data_dir):
    samples = find_pairs(data_dir / "phantom" / "train")
    flat = SegDataset(samples, 64)
    deep = SegDataset(samples, 64, context_slices=1)
    index = {(s.subject, int(s.image.stem)): i for i, s in enumerate(flat.samples)}
    (subject, k), i = next((key, i) for key, i in index.items() if (key[0], key[1] - 1) in index
                           and (key[0], key[1] + 1) in index)
    x, y, _ = deep[i]
    assert x.shape == (3, 64, 64) and y.shape == (1, 64, 64)
    assert np.array_equal(x[0], flat[index[(subject, k - 1)]][0][0])
    assert np.array_equal(x[1], flat[i][0][0])
    assert np.array_equal(x[2], flat[index[(subject, k + 1)]][0][0])
    assert np.array_equal(y, flat[i][1])


def test_augmentation_moves_neighbours_with_slice_k(data_dir):
    import albumentations as A

    samples = find_pairs(data_dir / "phantom" / "train")
    flip = A.Compose([A.HorizontalFlip(p=1.0)])
    plain, flipped = SegDataset(samples, 64, context_slices=1), SegDataset(samples, 64, flip, context_slices=1)
    assert np.array_equal(flipped[5][0].numpy(), plain[5][0].numpy()[:, :, ::-1])
    assert np.array_equal(flipped[5][1].numpy(), plain[5][1].numpy()[:, :, ::-1])


@pytest.fixture(scope="module")
def run_25d(data_dir, tmp_path_factory):
    """A tiny training run with data.context_slices=1."""
    from tests.conftest import TINY, make_cfg, phantom_overrides

    run = tmp_path_factory.mktemp("run25d") / "run"
    metrics = train(make_cfg(TINY + phantom_overrides(data_dir) + ["data.context_slices=1"], run))
    return run, metrics


def test_training_evaluate_and_predict_with_context_slices(run_25d, data_dir, tmp_path):
    run, metrics = run_25d
    assert metrics["val/dice"] is not None
    model = read(run / "checkpoints/last.ckpt")
    assert model.preprocessing.context_slices == 1 and model.net().inc[0].in_channels == 3
    ckpt = f"ckpt_path={run / 'checkpoints/last.ckpt'}"
    result = run_main("tumorseg.evaluate", ckpt, f"data_dir={data_dir / 'phantom' / 'val'}",
                      f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["n_images"] > 0
    out = tmp_path / "pred"
    result = run_main("tumorseg.predict", ckpt, f"input={data_dir / 'phantom' / 'val'}", f"output={out}",
                      f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode == 0, result.stderr[-2000:]
    n_images = len(list((data_dir / "phantom" / "val" / "images").rglob("*.png")))
    assert len(list((out / "masks").rglob("*.png"))) == n_images


def test_training_and_inference_stack_the_same_neighbours(run_25d, data_dir):
    """The dataset training reads and the segmentation path give each slice the same input channels."""
    from tumorseg.data.decode import read_gray
    from tumorseg.inference.segment import model_inputs
    from tumorseg.inference.sources import image_subjects

    run, _ = run_25d
    model = read(run / "checkpoints/last.ckpt")
    folder = data_dir / "phantom" / "val"
    dataset = SegDataset(find_pairs(folder), model.preprocessing.image_size, context_slices=1)
    _, subjects = image_subjects(str(folder))
    assert len(subjects) == len(dataset.subject_names)
    for subject in subjects:
        stacked = model_inputs(model.preprocessing, [read_gray(f) for f in subject.files], subject.files)
        for path, channels in zip(subject.files, stacked):
            j = next(n for n, s in enumerate(dataset.samples) if s.image == path)
            assert np.array_equal(channels, dataset.images[dataset.context[j]]), path
            x, _, _ = dataset[j]
            assert torch.equal(x, model.preprocessing.normalize(channels)), path


def test_predict_needs_numbered_files_for_a_25d_model(run_25d, tmp_path):
    run, _ = run_25d
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "scan.png"), np.zeros((64, 64), np.uint8))
    result = run_main("tumorseg.predict", f"ckpt_path={run / 'checkpoints/last.ckpt'}", f"input={folder}",
                      f"output={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'log'}")
    assert_one_error(result, "scan.png: data.context_slices needs files named by their slice index")


@pytest.mark.trains
@pytest.mark.parametrize("context", [2, 3])
def test_wider_25d_context_trains_and_sets_the_input_channels(data_dir, tmp_path, context):
    run, metrics = train_run(data_dir, tmp_path, f"data.context_slices={context}")
    assert metrics["val/dice"] is not None
    model = read(run / "checkpoints" / "last.ckpt")
    assert model.model["in_channels"] == 1 + 2 * context and model.preprocessing.context_slices == context
    assert model.net().inc[0].in_channels == 1 + 2 * context
