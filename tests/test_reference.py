"""The shipped reference model: small, weights-only, the default of evaluate and predict, documented."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, run_main
from tumorseg.inference.model_file import REFERENCE_MODEL, read
from tumorseg.inference.runtime import OnnxNet, runner_for

CARD = REFERENCE_MODEL.with_name("MODEL_CARD.md")
RECORDED = REPO / "experiments" / "lung" / "reference" / "evaluate-val.json"


def test_reference_model_is_small_and_loads_without_pickled_code():
    assert REFERENCE_MODEL.stat().st_size <= 20 * 1024 * 1024
    content = torch.load(REFERENCE_MODEL, weights_only=True)
    assert set(content) - {"members", "tumorseg_format"} == {"state_dict", "hyper_parameters", "source", "inference"}
    prep = read(REFERENCE_MODEL).preprocessing
    x = torch.zeros(1, prep.channels, prep.image_size, prep.image_size)
    assert runner_for(read(REFERENCE_MODEL)).logits(x).shape == (1, 1, prep.image_size, prep.image_size)


def test_evaluate_and_predict_use_the_reference_model_without_ckpt_path(data_dir, tmp_path, fake_rates):
    val = data_dir / "phantom" / "val"
    fake_rates.set(onnxruntime_int8=2.0)  # runtime=auto: where it measures fastest, the int8 export runs instead
    result = run_main("tumorseg.evaluate", f"data_dir={val}", "device=cpu", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = REFERENCE_MODEL.with_name("lung_unet.int8.onnx")
    assert json.loads(result.stdout.strip().splitlines()[-1])["ckpt_path"] == str(expected)
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
    int8_file = REFERENCE_MODEL.with_name("lung_unet.int8.onnx")
    assert int8_file.stat().st_size <= 5 * 1024 * 1024
    ours, theirs = read(int8_file), read(REFERENCE_MODEL)
    assert ours.onnx_precision == "int8" and isinstance(runner_for(ours).net, OnnxNet)
    assert (ours.preprocessing, ours.stored) == (theirs.preprocessing, theirs.stored)
    size = ours.preprocessing.image_size
    x = torch.randn(2, 1, size, size, generator=torch.Generator().manual_seed(0))
    ours_logits, theirs_logits = runner_for(ours).logits(x), runner_for(theirs, "cpu", "32").logits(x)
    assert (ours_logits != theirs_logits).any()  # really rounded
    # int8 rounding of the same net, not another one: on noise the logits of the shipped net and its
    # export correlate at ~0.97, those of two trainings of the recipe at ~0.1.
    assert torch.corrcoef(torch.stack([ours_logits.flatten(), theirs_logits.flatten()]))[0, 1] > 0.9
    recorded = json.loads((REPO / "experiments/lung/reference/evaluate-val-int8.json").read_text())
    assert recorded["inference_precision"] == "int8" and f"{recorded['dice_per_subject']:.3f}" in CARD.read_text()


def real_val() -> Path:
    """The public lung CT val slices, where this machine has them ($TUMORSEG_DATA, or the workspace's shared copy)."""
    for root in (os.environ.get("TUMORSEG_DATA"), REPO.parent / "shared/data/lung-ct-slices",
                 REPO / "data/lung-ct-slices"):
        if root and (Path(root) / "val/images").is_dir():
            return Path(root) / "val"
    if os.environ.get("CI") and Path("/work/shared/data/lung-ct-slices/val").is_dir():
        return Path("/work/shared/data/lung-ct-slices/val")
    pytest.skip("the real val slices are not on this machine (make data, or TUMORSEG_DATA=...)")


@pytest.mark.slow
def test_shipped_model_fp32_val_figures_are_the_recorded_ones(tmp_path):
    """The one segmentation path gives the shipped model's recorded fp32 figures on a real val subject: the smallest
    (14 slices, where the model misses most), as a subject's figures do not depend on the others'."""
    subject = "Subject_60"
    for part in ("images", "masks"):
        shutil.copytree(real_val() / part / subject, tmp_path / "val" / part / subject)
    result = run_main("tumorseg.evaluate", f"data_dir={tmp_path / 'val'}", "precision=32", "runtime=pytorch",
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-2000:]
    got = json.loads((tmp_path / "run" / "metrics.json").read_text())
    recorded = json.loads((REPO / "experiments/lung/reference/evaluate-val-fp32.json").read_text())["subjects"][subject]
    assert (got["inference_precision"], got["runtime"], got["n_images"]) == ("32", "pytorch", recorded["n_images"])
    for key in ("dice", "precision", "recall"):
        assert got["subjects"][subject][key] == pytest.approx(recorded[key], abs=1e-4), key
        assert got[key] == pytest.approx(recorded[key], abs=1e-4), key  # one subject: the pooled figures are its own


def test_shipped_files_carry_the_model_file_format_version():
    """Format 1: written before format 2 added two-stage models, and read as they are."""
    from tumorseg.inference.model_file import FORMAT_VERSION

    assert read(REFERENCE_MODEL).version == 1 < FORMAT_VERSION
    assert read(REFERENCE_MODEL.with_name("lung_unet.int8.onnx")).version == 1


def test_files_written_before_the_format_version_still_load(tmp_path):
    """A model file of the layout before versions (no tumorseg_format key, flat ONNX metadata) reads as version 0."""
    from tumorseg.inference.model_file import read_onnx_metadata, write_onnx_metadata

    content = torch.load(REFERENCE_MODEL, weights_only=True)
    content.pop("tumorseg_format")
    torch.save(content, tmp_path / "old.pt")
    old, new = read(tmp_path / "old.pt"), read(REFERENCE_MODEL)
    assert old.version == 0 and (old.model, old.preprocessing, old.stored, old.members) == (
        new.model, new.preprocessing, new.stored, new.members)
    onnx_file = tmp_path / "old.int8.onnx"
    onnx_file.write_bytes(REFERENCE_MODEL.with_name("lung_unet.int8.onnx").read_bytes())
    info = read_onnx_metadata(onnx_file)
    write_onnx_metadata(onnx_file, {k: info[k] for k in ("image_size", "mean", "std", "context_slices", "threshold",
                                                         "tta", "seed_threshold", "precision", "source")})
    assert read(onnx_file).version == 0 and read(onnx_file).preprocessing == new.preprocessing
