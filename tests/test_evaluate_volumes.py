"""tumorseg evaluate on CT volumes with labels: per-case 3D Dice, volume error, detection; its figures and page."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY, make_cfg, run_main
from tests.test_viewer import green_pixels, screenshot
from tumorseg.errors import UserError
from tumorseg.inference import model_file
from tumorseg.scoring.volume_metrics import case_scores, components, dice, mean_scores, volume_figures
from tumorseg.volumes.io import read_volume
from tumorseg.volumes.orientation import slice_stack
from tumorseg.volumes.phantom import write_msd_task

SIZE = (64, 64, 16)


def evaluate(tmp: Path, run: str, *args: str):
    return run_main("tumorseg.evaluate", *args, f"hydra.run.dir={tmp / run}")


def refused(tmp: Path, *args: str) -> str:
    """Run evaluate; fail unless it stops with one error line; that line."""
    result = evaluate(tmp, "refused", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def page_data(page: Path) -> dict:
    return json.loads(page.read_text().split('type="application/json">')[1].split("</script>")[0])


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Path:
    return write_msd_task(tmp_path_factory.mktemp("task") / "Task99_Phantom", cases=3, test_cases=0, size=SIZE)


def two_balls() -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction) K x H x W: truth two balls apart; the prediction finds one, half-shifted, plus a blob."""
    truth, pred = np.zeros((10, 20, 20), np.uint8), np.zeros((10, 20, 20), np.uint8)
    truth[2:5, 2:6, 2:6], truth[6:9, 12:18, 12:18] = 1, 1
    pred[2:5, 3:7, 3:7], pred[8:10, 0:2, 18:20] = 1, 1
    return truth, pred


def test_3d_figures_of_masks():
    truth, pred = two_balls()
    assert components(truth)[1] == 2
    corner = np.zeros((3, 3, 3), np.uint8)
    corner[0, 0, 0] = corner[1, 1, 1] = 1
    assert components(corner)[1] == 1  # 26-connected: a corner across slices links
    scores = case_scores(pred, truth, voxel_ml=0.5)
    overlap = int((pred & truth).sum())
    assert scores["dice"] == pytest.approx(2 * overlap / (pred.sum() + truth.sum()), abs=1e-6)
    assert scores["volume_error_ml"] == pytest.approx((int(pred.sum()) - int(truth.sum())) * 0.5)
    assert (scores["true_components"], scores["found_components"]) == (2, 1)
    assert (scores["predicted_components"], scores["false_positive_components"]) == (2, 1)
    figures = volume_figures(pred, 0.5)
    assert (figures["components"], figures["first_slice"], figures["last_slice"]) == (2, 2, 9)
    assert figures["largest_ml"] == 48 * 0.5 and figures["tumor_ml"] == int(pred.sum()) * 0.5
    empty = np.zeros_like(truth)
    assert dice(empty, empty) is None and volume_figures(empty, 1.0)["first_slice"] is None
    mean = mean_scores([scores, case_scores(empty, empty, 0.5)])
    assert mean["dice"] == scores["dice"] and mean["n_cases_without_dice"] == 1  # an empty case is left out
    assert mean["detection_rate"] == 0.5 and mean["false_positive_components_per_case"] == 0.5
    assert mean["volume_error_ml_mean_abs"] == pytest.approx(abs(scores["volume_error_ml"]) / 2)


def test_volume_options_are_checked_before_the_model_loads(task, tmp_path):
    assert "labels=" in refused(tmp_path, f"images={task / 'imagesTr'}")
    assert "give one of them" in refused(tmp_path, f"images={task / 'imagesTr'}", f"labels={task / 'labelsTr'}",
                                         f"data_dir={task}")
    assert "label=0" in refused(tmp_path, f"images={task / 'imagesTr'}", f"labels={task / 'labelsTr'}", "label=0")
    line = refused(tmp_path, f"data_dir={task}", "label=3")
    assert "label=3" in line and "dataset.json" in line
    assert "lung_009" in refused(tmp_path, f"data_dir={task}", "cases=[lung_009]")
    assert "split=" in refused(tmp_path, f"data_dir={task}", "split=val")
    lonely = tmp_path / "lonely"
    shutil.copytree(task / "imagesTr", lonely)
    (lonely / "phantom_001.nii.gz").rename(lonely / "phantom_099.nii.gz")
    assert "phantom_099" in refused(tmp_path, f"images={lonely}", f"labels={task / 'labelsTr'}")


@pytest.mark.trains
def test_convert_train_and_evaluate_per_case_end_to_end(task, tmp_path):
    """Slices made through a fixed HU window: training must name it (data.window), the model records it, and
    evaluate reads the volumes through it."""
    data = tmp_path / "slices"
    converted = run_main("tumorseg.convert", f"input={task}", f"output={data}", "val_cases=[phantom_003]",
                         "slices=all", "preprocess.window=[-600,1500]")
    assert converted.returncode == 0, converted.stderr[-2000:]
    from tumorseg.train import train

    overrides = [o for o in TINY if o != "data=phantom"] + ["debug=fast", "approach=full", f"data.root={data}"]
    with pytest.raises(UserError, match=r"data.window=null, but .* preprocess.window=\[-600,1500\]"):
        train(make_cfg(overrides, tmp_path / "refused"))
    train(make_cfg(overrides + ["data.window=[-600,1500]"], tmp_path / "run"))
    assert model_file.read(tmp_path / "run/checkpoints/last.ckpt").preprocessing.window == (-600, 1500)
    ckpt = f"ckpt_path={tmp_path / 'run/checkpoints/last.ckpt'}"
    line = refused(tmp_path, ckpt, f"data_dir={task}", "preprocess.window=[40,400]")
    assert "last.ckpt was trained on slices made with the window [-600,1500]" in line
    result = evaluate(tmp_path, "ev", ckpt, f"data_dir={task}", "threshold=0.5")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "ev/metrics.json").read_text())
    assert json.loads(result.stdout.strip().splitlines()[-1]) == metrics
    assert set(metrics["cases"]) == {"phantom_001", "phantom_002", "phantom_003"} and metrics["n_cases"] == 3
    assert all(name in result.stdout for name in metrics["cases"])  # the printed per-case table
    for name, case in metrics["cases"].items():
        truth = slice_stack(read_volume(task / "labelsTr" / f"{name}.nii.gz")) == 1
        assert case["slices"] == SIZE[2] and case["true_ml"] == pytest.approx(truth.sum() * 0.7 * 0.7 * 2.5 / 1000,
                                                                            abs=1e-3)
        assert case["volume_error_ml"] == pytest.approx(case["predicted_ml"] - case["true_ml"], abs=1e-3)
        assert case["dice"] is None or 0 <= case["dice"] <= 1
        assert 0 <= case["found_components"] <= case["true_components"]
    dices = [c["dice"] for c in metrics["cases"].values() if c["dice"] is not None]
    assert metrics["dice"] == pytest.approx(np.mean(dices), abs=1e-5)
    assert metrics["volume_error_ml_mean_abs"] == pytest.approx(
        np.mean([abs(c["volume_error_ml"]) for c in metrics["cases"].values()]), abs=1e-3)
    # the same cases as two folders, one case chosen: the same figures
    folders = evaluate(tmp_path, "ev2", ckpt, f"images={task / 'imagesTr'}", f"labels={task / 'labelsTr'}",
                       "threshold=0.5", "cases=[phantom_003]")
    assert folders.returncode == 0, folders.stderr[-2000:]
    chosen = json.loads((tmp_path / "ev2/metrics.json").read_text())
    assert chosen["cases"] == {"phantom_003": metrics["cases"]["phantom_003"]}
    # the page: worst Dice first, truth and prediction layers, the truth shown on a slice that has some
    page = tmp_path / "ev/index.html"
    subjects = page_data(page)["subjects"]
    order = [s["figures"]["dice"] for s in subjects]
    assert [s["name"] for s in subjects] == sorted(metrics["cases"], key=lambda n: (
        metrics["cases"][n]["dice"] is None, metrics["cases"][n]["dice"] or 0)) and len(order) == 3
    truth_slice = next(s["label"] for s in subjects[0]["slices"] if s["truth"])
    shown = screenshot(page, tmp_path, f"#subject={subjects[0]['name']}&slice={truth_slice}")
    assert green_pixels(shown) > 0
    # the 2D evaluate of the converted val part writes its page too, worst subject first
    flat = evaluate(tmp_path, "ev3", ckpt, f"data_dir={data / 'val'}")
    assert flat.returncode == 0, flat.stderr[-2000:]
    assert [s["name"] for s in page_data(tmp_path / "ev3/index.html")["subjects"]] == ["phantom_003"]


def relabelled(task: Path, folder: Path, change) -> Path:
    """task's label volumes, each with its voxel array passed through change(array), in folder."""
    import SimpleITK as sitk

    folder.mkdir(parents=True)
    for path in sorted((task / "labelsTr").glob("*.nii.gz")):
        image = sitk.ReadImage(str(path))
        changed = sitk.GetImageFromArray(change(sitk.GetArrayFromImage(image)))
        changed.CopyInformation(image)
        sitk.WriteImage(changed, str(folder / path.name))
    return folder


def to_0_255(labels: np.ndarray) -> np.ndarray:
    return (labels == 1).astype(np.uint8) * 255


def test_label_values_are_checked_against_the_label_volumes(task, tmp_path):
    images, labels = f"images={task / 'imagesTr'}", f"labels={task / 'labelsTr'}"
    line = refused(tmp_path, images, labels, "label=7")
    assert "label=7 occurs in no label volume" in line and "they hold 0, 1, 2" in line
    assert "label=7 occurs" in refused(tmp_path, images, labels, "label=[1,7]")
    masks = relabelled(task, tmp_path / "masks", to_0_255)
    line = refused(tmp_path, images, f"labels={masks}")  # the default label=1 on 0/255 masks
    assert "label=1 occurs in no label volume" in line and "they hold 0, 255" in line and "label=255" in line
    line = refused(tmp_path, images, f"labels={task / 'imagesTr'}")  # the CT images named as the labels
    assert "phantom_001.nii.gz is not a label volume" in line and "-1024 to" in line
    fractional = relabelled(task, tmp_path / "fractional", lambda a: a.astype(np.float32) * 0.5)
    assert "fractional" in refused(tmp_path, images, f"labels={fractional}")
    # a task folder: the same rule (its dataset.json says label 1, its label volumes hold 0/255)
    copy = tmp_path / "Task98_Masks"
    shutil.copytree(task, copy, ignore=shutil.ignore_patterns("labelsTr"))
    relabelled(task, copy / "labelsTr", to_0_255)
    line = refused(tmp_path, f"data_dir={copy}")
    assert "label=1 occurs in no label volume" in line and "they hold 0, 255" in line


def test_an_empty_selection_of_cases_is_one_line(task, tmp_path):
    line = refused(tmp_path, f"data_dir={task}", "cases=[]")
    assert "cases=[] chooses no case" in line and "phantom_001" in line
    assert "cases=[]" in refused(tmp_path, f"images={task / 'imagesTr'}", f"labels={task / 'labelsTr'}", "cases=[]")


def test_the_data_is_checked_before_the_model_is_read(tmp_path):
    """evaluate resolves its job (a slice folder that is missing here) before it reads the model file."""
    (tmp_path / "bad.pt").write_text("not a model")
    line = refused(tmp_path, f"data_dir={tmp_path / 'nowhere'}", f"ckpt_path={tmp_path / 'bad.pt'}")
    assert "nowhere" in line and "bad.pt" not in line


def test_one_result_type_reads_as_metrics_json():
    """Result of either kind: its kind, and to_json() (also its dict view) with today's metrics.json keys."""
    from tumorseg.scoring.result import Result

    settings = {"threshold": 0.5}
    slices = Result("slices", "data/val", "m.pt", {"dice": 0.5}, settings, {"s1": {"dice": 0.5}})
    volumes = Result("volumes", "data=t", "m.pt", {"dice": 0.4, "n_cases": 1}, settings, {"c1": {"dice": 0.4}}, (1,))
    assert list(slices.to_json()) == ["dice", "threshold", "data_dir", "ckpt_path", "subjects"]
    assert list(volumes.to_json()) == ["dice", "n_cases", "threshold", "data", "label", "ckpt_path", "cases"]
    assert volumes["label"] == [1] and dict(slices) == slices.to_json() and json.dumps(dict(volumes))
