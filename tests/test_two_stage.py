"""The two-stage pipeline: crops for training stage 2, proposals, paste-back, one model file of both stages through
ship, evaluate, predict (slices and a volume) and export; model files of the format before it still read."""

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import TINY, assert_one_error, make_cfg, phantom_overrides, run_main
from tumorseg.data.crops import CropDataset, CropSettings, boxes_of, proposals, window_of
from tumorseg.data.dataset import SegDataset
from tumorseg.data.layout import find_pairs
from tumorseg.inference import model_file
from tumorseg.inference.model_file import FORMAT_KEY, FORMAT_VERSION, REFERENCE_MODEL, read
from tumorseg.inference.two_stage import refined

CROPS = CropSettings(size=32, input_size=64, margin=4, negatives=1.5, proposal_threshold=0.5)


@pytest.fixture(scope="module")
def slices(data_dir) -> SegDataset:
    """The phantom's train part at 64 x 64, as stage 1 reads it."""
    return SegDataset(find_pairs(data_dir / "phantom" / "train"), 64)


def test_proposals_are_each_components_box_with_its_margin_clipped_at_the_border():
    prob = np.zeros((20, 30), np.float32)
    prob[2:5, 3:7] = 0.9  # near the top-left corner: its margin is clipped
    prob[15:20, 25:30] = 0.6  # on the bottom-right border
    prob[10, 12] = 0.4  # below the threshold: no proposal
    prob[9, 20], prob[10, 21] = 0.8, 0.8  # diagonal neighbours: one component
    assert proposals(prob, 0.5, 3) == [(0, 0, 8, 10), (6, 17, 14, 25), (12, 22, 20, 30)]
    assert proposals(prob, 0.95, 3) == [] and boxes_of(prob > 0.5, 0)[0] == (2, 3, 5, 7)
    # a window is a square of at least size, holding its box, inside the slice
    assert window_of((0, 0, 8, 10), 16, (20, 30)) == (0, 0, 16, 16)
    assert window_of((12, 22, 20, 30), 16, (20, 30)) == (4, 14, 20, 30)
    assert window_of((2, 2, 18, 26), 16, (20, 30)) == (0, 4, 20, 24)  # wider than size: the slice's side, centred


def test_crops_are_tumors_random_lung_crops_and_stage_1_false_alarms_with_their_true_masks(slices):
    alarms = slices.masks.astype(np.float32)
    alarms[:, 2:6, 2:6] = 0.9  # a false alarm in every slice's corner (no tumor there), tumors proposed too
    crops = CropDataset(slices, CROPS, seed=0, probabilities=alarms, jitter=True)
    n_tumors = sum(len(boxes_of(m, 0)) for m in slices.masks)
    assert n_tumors > 5 and crops.kinds.count("tumor") == n_tumors
    assert crops.kinds.count("random") == round(1.5 * n_tumors)
    assert crops.kinds.count("false alarm") == len(slices)  # the corners; proposals over a tumor are no alarms
    for k, ((i, (y0, x0, y1, x1)), kind) in enumerate(zip(crops.windows, crops.kinds)):
        truth = cv2.resize(slices.masks[i][y0:y1, x0:x1], (64, 64), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(crops.masks[k], truth)
        assert y1 - y0 == x1 - x0 >= CROPS.size and crops.stack[k].shape == (1, 64, 64)
        if kind == "tumor":
            assert crops.masks[k].any()
        if kind == "false alarm":
            assert (y0, x0) == (0, 0) and not slices.masks[i][:10, :10].any()  # its box holds no tumor
    # every tumor lies whole in its window, shifted by up to the margin; unshifted without jitter
    tumors = [(i, box, wide) for i, mask in enumerate(slices.masks)
               for box, wide in zip(boxes_of(mask, 0), boxes_of(mask, CROPS.margin))]
    centred = CropDataset(slices, CROPS, seed=0)
    assert centred.kinds.count("false alarm") == 0
    for (i, (y0, x0, y1, x1), wide), (j, window), (_, centre) in zip(tumors, crops.windows, centred.windows):
        assert i == j and window[0] <= y0 and window[1] <= x0 and window[2] >= y1 and window[3] >= x1
        assert centre == window_of(wide, CROPS.size, (64, 64))
    assert [w for _, w in crops.windows[:len(tumors)]] != [w for _, w in centred.windows[:len(tumors)]]
    x, y, subject = crops[0]
    assert x.shape == (1, 64, 64) and y.shape == (1, 64, 64) and subject == slices.subject_ids[crops.windows[0][0]]
    np.testing.assert_array_equal(y[0].numpy(), crops.masks[0])
    np.testing.assert_allclose(x[0].numpy(), (crops.images[0] / 255 - 0.5) / 0.25, atol=1e-6)


def test_paste_back_is_exact_inside_proposals_and_zero_outside(slices):
    """A crop model that returns its input (here: the truth mask as image) reproduces the truth inside every
    proposal, rejects a false alarm (its mask comes out empty), and leaves an unproposed tumor at 0."""
    truth = slices.masks.astype(bool)
    stage1 = truth.astype(np.float32)
    missed = int(np.flatnonzero(truth.any(axis=(1, 2)))[0])
    stage1[missed] = 0  # stage 1 misses this slice's tumor
    stage1[:, 2:6, 2:6] = 0.9  # a false alarm in every slice
    inputs = (truth * 255).astype(np.uint8)[:, None]
    out = refined(stage1, inputs, CROPS, 0.5, lambda crops: crops[:, 0].astype(np.float32) / 255)
    expected = truth.copy()
    expected[missed] = False
    np.testing.assert_array_equal(out > 0.5, expected)
    inside = np.zeros_like(truth)
    for i, prob in enumerate(stage1):
        for y0, x0, y1, x1 in proposals(prob, 0.5, CROPS.margin):
            inside[i, y0:y1, x0:x1] = True
    assert not out[~inside].any() and inside[:, 2:6, 2:6].all()
    # stage 1 at another size than the crop model's grid is resized to it first
    half = refined(np.stack([cv2.resize(p, (32, 32), interpolation=cv2.INTER_AREA) for p in truth.astype(np.float32)]),
                   inputs, CROPS, 0.5, lambda crops: crops[:, 0].astype(np.float32) / 255)
    assert half.shape == out.shape and ((half > 0.5) == truth).mean() > 0.99


def test_model_files_of_the_older_formats_still_read(tmp_path):
    """The shipped files are of format 1, before two-stage models; they read as they are, one stage. A file of a
    newer format than this tumorseg's is refused in one line."""
    model = read(REFERENCE_MODEL)
    assert FORMAT_VERSION == 2 and model.version == 1 and model.stage2 is None
    content = torch.load(REFERENCE_MODEL, weights_only=True)
    content[FORMAT_KEY] = FORMAT_VERSION + 1
    torch.save(content, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="upgrade tumorseg"):
        read(tmp_path / "future.pt")


@pytest.mark.parametrize(("overrides", "fragments"), [
    (["data.crops.size=96"], ["data.crops.size=96", "data.image_size=64"]),
    (["data.crops.size=32", "data.crops.input_size=66"], ["data.crops.input_size=66", "2**model.depth"]),
    (["data.crops.size=32", "data.crops.proposals_from=missing.ckpt"], ["data.crops.proposals_from=missing.ckpt"]),
    (["data.crops.size=32", "data.train_crop=32"], ["data.train_crop=null"]),
    (["data.crops.size=32", "data.crops.negatives=-1"], ["data.crops.negatives=-1"]),
])
def test_crop_settings_a_run_cannot_use_are_one_line_before_training(data_dir, tmp_path, overrides, fragments):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), *overrides,
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, *fragments)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.trains
def test_two_stages_train_ship_as_one_file_evaluate_predict_and_refuse_onnx(trained_run, data_dir, tmp_path):
    from tumorseg.inference.segment import segmenter_for
    from tumorseg.train import train
    from tumorseg.volumes.phantom import write_nifti

    stage1 = trained_run / "checkpoints" / "last.ckpt"  # the suite's whole-image run
    crops = ["data.crops.size=32", "data.crops.input_size=64", "data.crops.margin=4",
             f"data.crops.proposals_from={stage1}", "data.crops.proposal_threshold=0.3"]
    train(make_cfg(TINY + phantom_overrides(data_dir) + crops, tmp_path / "stage2"))  # a tiny crop model
    crop = tmp_path / "stage2" / "checkpoints" / "last.ckpt"
    two = tmp_path / "two.pt"
    val = data_dir / "phantom" / "val"
    # a proposal threshold that stage 1 surely crosses, so that the crop model runs
    whole = segmenter_for(OmegaConf.create({"ckpt_path": str(stage1), "device": "cpu", "runtime": "pytorch"}))
    grays = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((val / "images").rglob("*.png"))[:8]]
    names = sorted((val / "images").rglob("*.png"))[:8]
    stage1_raw = whole.subject(grays, names).raw
    low = float(np.quantile(stage1_raw, 0.95))
    result = run_main("tumorseg.ship", f"ckpt_path={stage1}", f"crop={crop}", f"output={two}",
                      f"proposal_threshold={low}", "threshold=0.5")
    assert result.returncode == 0, result.stderr[-2000:]
    content = torch.load(two, weights_only=True)
    assert content[FORMAT_KEY] == 2 and content["stage2"]["inference"]["threshold"] == pytest.approx(low)
    assert content["stage2"]["hyper_parameters"]["run_config"]["data"]["crops"]["size"] == 32
    model = read(two)
    assert model.stage2 is not None and model.stored.threshold == 0.5

    # the one segmentation path runs the crop model: 0 outside stage 1's proposals
    two_stage = segmenter_for(OmegaConf.create({"ckpt_path": str(two), "device": "cpu", "runtime": "pytorch"}))
    assert two_stage.crops is not None
    raw = two_stage.subject(grays, names).raw
    inside = np.zeros(raw.shape, bool)
    for i, prob in enumerate(stage1_raw):
        for y0, x0, y1, x1 in proposals(prob, low, 4):
            inside[i, y0:y1, x0:x1] = True
    assert inside.any() and not raw[~inside].any() and not np.array_equal(raw, stage1_raw)

    result = run_main("tumorseg.evaluate", f"ckpt_path={two}", f"data_dir={val}", f"hydra.run.dir={tmp_path / 'ev'}")
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert 0 <= figures["dice"] <= 1 and figures["n_subjects"] == 2
    assert figures["stage2"] == {"proposal_threshold": pytest.approx(low), "crop_size": 32, "margin": 4,
                                 "input_size": 64}
    out = tmp_path / "pred"
    result = run_main("tumorseg.predict", f"ckpt_path={two}", f"input={val / 'images'}", f"output={out}",
                      f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((out / "masks").rglob("*.png"))) == len(list((val / "images").rglob("*.png"))) > 0
    assert (out / "index.html").is_file()
    volume, _ = write_nifti(tmp_path / "in", "case", size=(64, 64, 12))
    result = run_main("tumorseg.predict", f"ckpt_path={two}", f"input={volume}", f"output={tmp_path / 'vol'}",
                      f"hydra.run.dir={tmp_path / 'log2'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "vol" / "case_mask.nii.gz").is_file() and (tmp_path / "vol" / "index.html").is_file()

    # refused in one line each: ONNX, a lone crop model, a whole-image model as crop=
    assert_one_error(run_main("tumorseg.export", f"ckpt_path={two}", f"output={tmp_path / 'two.onnx'}"),
                     "is a two-stage model", "one graph")
    assert_one_error(run_main("tumorseg.evaluate", f"ckpt_path={crop}", f"data_dir={val}",
                              f"hydra.run.dir={tmp_path / 'ev2'}"), "is a crop model", "crop=")
    assert_one_error(run_main("tumorseg.ship", f"ckpt_path={stage1}", f"crop={stage1}",
                              f"output={tmp_path / 'x.pt'}"), "is no crop model")
    # a crop model of slices made through another HU window than stage 1's (data.window)
    windowed = read(crop)
    config = {**windowed.run_config, "data": {**windowed.run_config["data"], "window": [-600, 1500]}}
    other = model_file.save(dataclasses.replace(windowed, run_config=config), tmp_path / "windowed-crop.pt")
    assert_one_error(run_main("tumorseg.ship", f"ckpt_path={stage1}", f"crop={other}", f"output={tmp_path / 'y.pt'}"),
                     "was trained on slices made with the window [-600,1500]", "with null", "one data root")
    assert_one_error(run_main("tumorseg.evaluate", f"ckpt_path={two}", f"data_dir={val}", "runtime=onnxruntime",
                              f"hydra.run.dir={tmp_path / 'ev3'}"), "two-stage model")
    assert_one_error(run_main("tumorseg.ship", f"ckpt_path={stage1}", f"output={tmp_path / 'x.pt'}",
                              "proposal_threshold=0.1"), "has one stage")
    assert not (tmp_path / "two.onnx").exists() and not (tmp_path / "x.pt").exists()
    # re-shipped: the proposal threshold changes, both nets stay
    result = run_main("tumorseg.ship", f"ckpt_path={two}", f"output={tmp_path / 'two2.pt'}", "proposal_threshold=0.9")
    assert result.returncode == 0, result.stderr[-2000:]
    again = read(tmp_path / "two2.pt")
    assert again.stage2.stored.threshold == 0.9 and again.stage2.source == model.stage2.source
