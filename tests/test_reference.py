"""The shipped reference model: small, weights-only, the default of evaluate and predict, documented."""

import json
import re

import torch

from tests.conftest import REPO, run_main
from tumorseg.inference import REFERENCE_MODEL, load_predictor

CARD = REFERENCE_MODEL.with_name("MODEL_CARD.md")
RECORDED = REPO / "experiments" / "lung" / "reference" / "evaluate-val.json"


def test_reference_model_is_small_and_loads_without_pickled_code():
    assert REFERENCE_MODEL.stat().st_size <= 20 * 1024 * 1024
    content = torch.load(REFERENCE_MODEL, weights_only=True)
    assert set(content) - {"members"} == {"state_dict", "hyper_parameters", "source", "inference"}  # members: an ensemble
    predictor = load_predictor(REFERENCE_MODEL)
    x = torch.zeros(1, predictor.channels, predictor.image_size, predictor.image_size)
    assert predictor.logits(x).shape == (1, 1, predictor.image_size, predictor.image_size)


def test_evaluate_and_predict_use_the_reference_model_without_ckpt_path(data_dir, tmp_path):
    val = data_dir / "phantom" / "val"
    result = run_main("tumorseg.evaluate", f"data_dir={val}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["ckpt_path"] == str(REFERENCE_MODEL)
    subject = next((val / "images").iterdir())
    result = run_main("tumorseg.predict", f"input={subject}", f"output={tmp_path / 'pred'}",
                      f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "pred" / "overlays").glob("*.png"))) == len(list(subject.glob("*.png")))


def test_model_card_quotes_the_recorded_evaluation_and_the_shipped_config():
    card = CARD.read_text()
    recorded = json.loads(RECORDED.read_text())
    for key in ("dice", "dice_per_subject", "iou", "dice_per_slice"):
        assert f"{recorded[key]:.3f}" in card, key
    config = torch.load(REFERENCE_MODEL, weights_only=True)["hyper_parameters"]["run_config"]
    assert f"data.context_slices={config['data'].get('context_slices', 0)}" in card
    assert re.search(rf"\b{config['trainer']['max_epochs']} epochs\b", card)
    assert config["loss"]["_target_"].rsplit(".", 1)[-1] in card  # the loss it was trained with
    assert "not a medical device" in card


def test_shipped_int8_export_is_the_reference_model_in_int8():
    from tumorseg.onnx_model import OnnxNet

    int8_file = REFERENCE_MODEL.with_name("lung_unet.int8.onnx")
    assert int8_file.stat().st_size <= 5 * 1024 * 1024
    ours, theirs = load_predictor(int8_file), load_predictor(REFERENCE_MODEL)
    assert isinstance(ours.net, OnnxNet) and ours.net.precision == "int8"
    assert (ours.image_size, ours.mean, ours.std, ours.threshold, ours.tta, ours.context_slices) == (
        theirs.image_size, theirs.mean, theirs.std, theirs.threshold, theirs.tta, theirs.context_slices)
    x = torch.randn(2, 1, ours.image_size, ours.image_size, generator=torch.Generator().manual_seed(0))
    ours_logits, theirs_logits = ours.logits(x), theirs.logits(x)
    assert (ours_logits != theirs_logits).any()  # really rounded
    # int8 rounding of the same net, not another one: on noise the logits of the shipped net and its
    # export correlate at ~0.97, those of two trainings of the recipe at ~0.1.
    assert torch.corrcoef(torch.stack([ours_logits.flatten(), theirs_logits.flatten()]))[0, 1] > 0.9
    recorded = json.loads((REPO / "experiments/lung/reference/evaluate-val-int8.json").read_text())
    assert recorded["inference_precision"] == "int8" and f"{recorded['dice_per_subject']:.3f}" in CARD.read_text()
