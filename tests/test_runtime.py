"""runtime=: an explicit choice runs as asked; runtime=auto runs the fastest way measured (tests/test_autotune.py)."""

import shutil

import pytest
from omegaconf import OmegaConf

from tests.conftest import run_main
from tumorseg.errors import UserError
from tumorseg.inference import autotune, runtime
from tumorseg.inference.model_file import REFERENCE_MODEL, read
from tumorseg.inference.segment import segmenter_for


def chosen(**options) -> str:
    segmenter = segmenter_for(OmegaConf.create({"device": "cpu", **options}))
    return f"{segmenter.model.path.name} {segmenter.runner.runtime} {segmenter.runner.precision}"


@pytest.fixture
def no_bf16(monkeypatch):
    """A CPU without bf16 arithmetic, as runtime.py and autotune.py see it."""
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(autotune, "cpu_has_bf16", lambda: False)


def test_explicit_choices_run_as_asked_without_measuring(no_bf16, fake_rates):
    fake_rates.set(pytorch_fp32=1.0, onnxruntime_int8=3.0)
    assert chosen(precision="32") == "lung_unet.pt pytorch 32"  # fp32 asked for: the exact path
    assert chosen(runtime="pytorch") == "lung_unet.pt pytorch 32"
    assert chosen(runtime="onnxruntime") == "lung_unet.int8.onnx onnxruntime int8"
    assert fake_rates.calls == 0
    assert chosen() == "lung_unet.int8.onnx onnxruntime int8"  # runtime=auto: the fastest way measured
    assert fake_rates.calls == 1


def test_explicit_runtime_pytorch_runs_bf16_where_the_cpu_has_it(monkeypatch, fake_rates):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert chosen(runtime="pytorch") == "lung_unet.pt pytorch bf16" and fake_rates.calls == 0


def test_an_export_of_another_model_is_not_taken_for_this_one(no_bf16, fake_rates, tmp_path):
    mine = tmp_path / "mine.pt"
    shutil.copy(REFERENCE_MODEL, mine)
    fake_rates.set(pytorch_fp32=1.0, onnxruntime_int8=3.0)
    assert chosen(ckpt_path=str(mine)) == "mine.pt pytorch 32"  # no export beside it
    shutil.copy(REFERENCE_MODEL.with_name("lung_unet.int8.onnx"), tmp_path / "mine.int8.onnx")
    # the export beside it names lung_unet.pt as its source: not this file's export, not a way to measure
    assert chosen(ckpt_path=str(mine)) == "mine.pt pytorch 32"
    assert fake_rates.calls == 0  # one way only: nothing to measure
    with pytest.raises(UserError, match="is not an export of"):
        chosen(ckpt_path=str(mine), runtime="onnxruntime")
    with pytest.raises(UserError, match="runtime=fast is not one of auto, pytorch, onnxruntime"):
        chosen(runtime="fast")


def test_evaluate_reports_the_runtime_it_used(no_bf16, fake_rates, data_dir, tmp_path):
    fake_rates.set(pytorch_fp32=1.0, onnxruntime_int8=2.0)
    result = run_main("tumorseg.evaluate", f"data_dir={data_dir / 'phantom' / 'val'}", "tta=false", "device=cpu",
                      f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"runtime": "onnxruntime"' in result.stdout and '"inference_precision": "int8"' in result.stdout
    assert read(REFERENCE_MODEL.with_name("lung_unet.int8.onnx")).source == REFERENCE_MODEL.name


def test_batch_norms_fold_into_their_convs_for_inference():
    import torch

    from tumorseg.models.unet import UNet

    net = UNet(base_channels=4, depth=2).eval()
    for norm in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # statistics of a trained net
        norm.running_mean.uniform_(-0.5, 0.5), norm.running_var.uniform_(0.5, 2), norm.weight.data.uniform_(0.5, 2)
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = net(x)
        folded = runtime.fold_batch_norms(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        assert torch.allclose(folded(x), expected, atol=1e-5)
    training = UNet(base_channels=4, depth=2).train()  # a net in training keeps its norms
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in runtime.fold_batch_norms(training).modules()) == 10


def test_the_commands_that_only_read_images_start_without_lightning():
    """predict, evaluate and export import neither Lightning nor the training stack: seconds saved per call."""
    import subprocess
    import sys

    # one process (torch imported once): after each command's import, whether Lightning came with it
    code = ("import importlib, sys\nfor c in ('predict', 'evaluate', 'export'):\n"
            "    importlib.import_module('tumorseg.' + c)\n    print(c, 'lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    assert out == ["predict", "False", "evaluate", "False", "export", "False"], out
