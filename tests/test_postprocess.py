"""Post-processing: 3D seeded regions and the largest 3D region across neighbouring slices, in evaluate, predict
and ship."""

import csv
import json
import shutil

import numpy as np
import torch

from tests.conftest import assert_one_error, run_main
from tumorseg.inference.postprocess import (
    drop_unseeded,
    largest_region,
    runs_of_slices,
    seeded_regions,
    subject_regions,
)


def blob(probs: np.ndarray, k: int, y: int, x: int, p: float) -> None:
    probs[k, y:y + 3, x:x + 3] = p


def test_runs_follow_slice_indices_not_file_order():
    assert runs_of_slices([10, 11, 13, None, 12, 20]) == [[3], [0, 1, 4, 2], [5]]
    assert runs_of_slices([None, None]) == [[0], [1]]


def test_weak_pixels_survive_only_beside_a_confident_one_on_a_neighbouring_slice():
    probs = np.zeros((4, 16, 16), np.float32)
    blob(probs, 0, 2, 2, 0.95)   # slice 5: confident
    blob(probs, 1, 4, 4, 0.4)    # slice 6: weak, touches slice 5's blob by a corner across slices
    blob(probs, 3, 4, 4, 0.4)    # slice 8: weak, its neighbour 7 is not in the data
    blob(probs, 0, 10, 10, 0.4)  # slice 5: weak, apart from everything
    keep = seeded_regions(probs, [5, 6, 9, 8], threshold=0.3, seed=0.9)
    assert keep[0, 2:5, 2:5].all() and keep[1, 4:7, 4:7].all()
    assert not keep[3].any() and not keep[0, 10:13, 10:13].any()
    assert keep.sum() == 18
    dropped = drop_unseeded(probs, [5, 6, 9, 8], 0.3, 0.9)
    assert (dropped[keep] == probs[keep]).all() and (dropped[~keep] == 0).all()
    # the same slices unnumbered are each their own stack: slice 6's weak blob goes too
    assert seeded_regions(probs, [None] * 4, 0.3, 0.9).sum() == 9


def test_a_seed_at_or_below_the_threshold_changes_nothing():
    probs = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    assert drop_unseeded(probs, [1, 2, 3], 0.3, 0.3) is probs
    assert drop_unseeded(probs, [1, 2, 3], 0.3, 0.0) is probs


def test_the_largest_region_is_counted_in_3d_across_the_subjects_runs_of_slices():
    probs = np.zeros((4, 16, 16), np.float32)
    blob(probs, 0, 2, 2, 0.5)    # slice 5 ...
    blob(probs, 1, 4, 4, 0.5)    # ... and 6, touching by a corner: one region of 18 voxels
    probs[2, 8:12, 8:12] = 0.9   # slice 9: 16 voxels, the largest in one slice but not in 3D
    blob(probs, 3, 10, 10, 0.2)  # slice 8, below the threshold: not a region at all
    keep = largest_region(probs, [5, 6, 9, 8], 0.3)
    assert keep.sum() == 18 and keep[0, 2:5, 2:5].all() and keep[1, 4:7, 4:7].all()
    # unnumbered slices are each their own stack: then slice 9's 16 voxels are the largest
    assert largest_region(probs, [None] * 4, 0.3).sum() == 16
    kept = subject_regions(probs, [5, 6, 9, 8], 0.3, 0.0, largest=True)
    assert (kept[keep] == probs[keep]).all() and (kept[~keep] == 0).all()
    assert subject_regions(probs, [5, 6, 9, 8], 0.3, 0.0, largest=False) is probs
    assert not largest_region(np.zeros((2, 4, 4), np.float32), [1, 2], 0.3).any()


def evaluate(tmp_path, name, *args):
    result = run_main("tumorseg.evaluate", *args, f"hydra.run.dir={tmp_path / name}")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_evaluate_with_seeds_is_the_same_whatever_the_batches(trained_run, data_dir, tmp_path):
    ckpt, val = trained_run / "checkpoints/last.ckpt", data_dir / "phantom/val"
    common = (f"ckpt_path={ckpt}", f"data_dir={val}", "precision=32")
    plain = evaluate(tmp_path, "plain", *common)
    off = evaluate(tmp_path, "off", *common, "postprocess.seed_threshold=0")
    assert {k: v for k, v in off.items()} == plain
    # batches of 3 split the 8 slices of each subject across batches; batches of 64 hold both subjects
    small = evaluate(tmp_path, "small", *common, "postprocess.seed_threshold=0.9", "batch_size=3")
    large = evaluate(tmp_path, "large", *common, "postprocess.seed_threshold=0.9", "batch_size=64")
    assert small["seed_threshold"] == 0.9 and small["n_images"] == 16
    assert {k: v for k, v in small.items()} == {k: v for k, v in large.items()}
    assert small["recall"] <= plain["recall"]  # only removes pixels
    nothing = evaluate(tmp_path, "nothing", *common, "postprocess.seed_threshold=1")  # no pixel is above 1
    assert nothing["recall"] == 0 and nothing["precision"] == 0
    bad = run_main("tumorseg.evaluate", *common, "postprocess.seed_threshold=1.5", f"hydra.run.dir={tmp_path / 'bad'}")
    assert_one_error(bad, "postprocess.seed_threshold=1.5 must be a float between 0 (off) and 1")


def test_evaluate_and_predict_keep_only_the_largest_3d_region_when_told(trained_run, data_dir, tmp_path):
    ckpt, val = trained_run / "checkpoints/last.ckpt", data_dir / "phantom/val"
    common = (f"ckpt_path={ckpt}", f"data_dir={val}", "precision=32", "threshold=0.05")
    plain = evaluate(tmp_path, "plain", *common)
    small = evaluate(tmp_path, "small", *common, "postprocess.largest_3d=true", "batch_size=3")
    large = evaluate(tmp_path, "large", *common, "postprocess.largest_3d=true", "batch_size=64")
    assert plain["largest_3d"] is False and small["largest_3d"] is True
    assert small == large  # subjects are cut the same way whatever the batches
    assert small["recall"] <= plain["recall"]  # only removes pixels
    bad = run_main("tumorseg.evaluate", *common, "postprocess.largest_3d=maybe", f"hydra.run.dir={tmp_path / 'bad'}")
    assert_one_error(bad, "postprocess.largest_3d='maybe' must be true or false")

    # one subject folder holding the same slice twice, as slices 1 and 5: two regions of the same size
    def mask_size(f):
        return (val / "masks" / f.relative_to(val / "images")).stat().st_size

    image = max((val / "images").rglob("*.png"), key=mask_size)
    subject = tmp_path / "subject"
    subject.mkdir()
    for k in (1, 5):
        shutil.copy(image, subject / f"{k}.png")

    def pixels(name, *args):
        result = run_main("tumorseg.predict", f"ckpt_path={ckpt}", f"input={subject}", "threshold=0.05",
                         f"output={tmp_path / name}", f"hydra.run.dir={tmp_path / name}", *args)
        assert result.returncode == 0, result.stderr[-2000:]
        with open(tmp_path / name / "summary.csv") as fh:
            return [int(r["tumor_pixels"]) for r in csv.DictReader(fh)]

    both = pixels("all")
    assert both[0] == both[1] > 0
    assert pixels("largest", "postprocess.largest_3d=true") == [both[0], 0]  # a tie: the first region stays


def test_predict_applies_the_model_files_seed_per_folder(trained_run, data_dir, tmp_path):
    from tests.conftest import ship_main

    model = tmp_path / "seeded.pt"
    ship_main(trained_run / "checkpoints/last.ckpt", model, "seed_threshold=1")
    assert torch.load(model, weights_only=True)["inference"]["seed_threshold"] == 1.0

    def pixels(name, *args):
        result = run_main("tumorseg.predict", f"ckpt_path={model}", f"input={data_dir / 'phantom/val'}",
                         f"output={tmp_path / name}", f"hydra.run.dir={tmp_path / name}", *args)
        assert result.returncode == 0, result.stderr[-2000:]
        with open(tmp_path / name / "summary.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 16
        return sum(int(r["tumor_pixels"]) for r in rows)

    assert pixels("seeded") == 0  # the file's seed: no pixel is above 1
    assert pixels("off", "postprocess.seed_threshold=0") > 0
    evaluated = evaluate(tmp_path, "ev", f"ckpt_path={model}", f"data_dir={data_dir / 'phantom/val'}")
    assert evaluated["seed_threshold"] == 1.0
    result = run_main("tumorseg.ship", f"ckpt_path={model}", f"output={tmp_path / 'bad.pt'}", "seed_threshold=2")
    assert result.returncode == 2 and "seed_threshold=2 must be a float between 0 (off) and 1" in result.stderr


def test_evaluate_runs_where_it_is_told_and_refuses_a_missing_gpu(trained_run, data_dir, tmp_path):
    common = (f"ckpt_path={trained_run / 'checkpoints/last.ckpt'}", f"data_dir={data_dir / 'phantom/val'}")
    assert evaluate(tmp_path, "cpu", *common, "device=cpu")["device"] == "cpu"
    for device, message in (("tpu", "device=tpu is not one of auto, cpu, cuda, cuda:N"),
                            ("cuda:7", "device=cuda:7: ")):
        if device == "cuda:7" and torch.cuda.device_count() > 7:
            continue
        result = run_main("tumorseg.evaluate", *common, f"device={device}", f"hydra.run.dir={tmp_path / device}")
        assert_one_error(result, message)


def test_only_ascii_digits_name_a_slice_index(tmp_path):
    """A file named "².png" is not slice 2 (str.isdigit accepts it, int() does not): predict runs, no traceback."""
    import cv2

    from tests.conftest import run_main
    from tumorseg.data.layout import slice_index

    assert [slice_index(n) for n in ("17.png", "².png", "٣.png", "a1.png")] == [17, None, None, None]
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("².png", "3.png"):
        cv2.imwrite(str(folder / name), np.full((64, 64), 40, np.uint8))
    result = run_main("tumorseg.predict", f"input={folder}", f"output={tmp_path / 'out'}", "tta=false",
                      f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and (tmp_path / "out/masks/².png").is_file()
