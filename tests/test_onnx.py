"""Exported ONNX models (fp32 and int8) run in evaluate and predict, with the checkpoint's preprocessing."""

import json
import os

import numpy as np
import onnx
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import assert_one_error, run_main
from tumorseg.errors import UserError
from tumorseg.evaluate import evaluate
from tumorseg.inference.model_file import read, write_onnx_metadata
from tumorseg.inference.onnx_export import for_export
from tumorseg.inference.runtime import OnnxNet, runner_for
from tumorseg.models import UNet


def ckpt(run):
    return str(run / "checkpoints/last.ckpt")


def eval_cfg(model, data_dir, out, **extra):
    cfg = dict(ckpt_path=str(model), data_dir=str(data_dir / "phantom/val"), split=None, threshold=0.5, tta=True,
               precision="auto", postprocess={"min_size": 0}, batch_size=5, paths={"output_dir": str(out)})
    return OmegaConf.create({**cfg, **extra})


@pytest.fixture(scope="module")
def exported(trained_run, data_dir, tmp_path_factory):
    """{"32": fp32 .onnx, "int8": int8 .onnx} of the tiny trained run."""
    out = tmp_path_factory.mktemp("onnx")
    files = {"32": out / "m.onnx", "int8": out / "m.int8.onnx"}
    for precision, path in files.items():
        extra = [] if precision == "32" else ["quantize=int8", f"calibration_dir={data_dir / 'phantom/train'}",
                                              "calibration_slices=16"]
        result = run_main("tumorseg.export", f"ckpt_path={ckpt(trained_run)}", f"output={path}", *extra,
                          f"hydra.run.dir={out / precision}")
        assert result.returncode == 0, result.stderr[-2000:]
        # the quantizer's notices about unquantized shape tensors are not shown to the user
        assert "unsupported type to quantize" not in result.stdout + result.stderr
    return files


def test_up_as_conv_gives_the_transposed_convolutions_numbers():
    torch.manual_seed(0)
    net = UNet(base_channels=8, depth=3, up="transpose").eval()
    twin = for_export(net)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in twin.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())  # the original is untouched
    x = torch.randn(3, 1, 32, 48)
    with torch.no_grad():
        assert torch.allclose(twin(x), net(x), atol=1e-5)


def test_fp32_onnx_evaluates_as_the_checkpoint(exported, trained_run, data_dir, tmp_path):
    ours = evaluate(eval_cfg(exported["32"], data_dir, tmp_path / "onnx"))
    theirs = evaluate(eval_cfg(ckpt(trained_run), data_dir, tmp_path / "torch", precision="32"))
    assert ours["inference_precision"] == "32" and ours["n_images"] == theirs["n_images"]
    for key in ("dice", "dice_per_subject", "bce"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-4), key


def test_int8_onnx_is_int8_and_close_to_fp32(exported, trained_run, data_dir, tmp_path):
    model = read(exported["int8"])
    assert isinstance(runner_for(model).net, OnnxNet) and model.preprocessing == read(ckpt(trained_run)).preprocessing
    ops = {node.op_type for node in onnx.load(str(exported["int8"])).graph.node}
    assert "QLinearConv" in ops and "ConvTranspose" not in ops
    ours = evaluate(eval_cfg(exported["int8"], data_dir, tmp_path / "int8"))
    theirs = evaluate(eval_cfg(ckpt(trained_run), data_dir, tmp_path / "torch", precision="32"))
    assert ours["inference_precision"] == "int8"
    assert ours["bce"] != theirs["bce"]  # really another arithmetic
    assert ours["dice"] == pytest.approx(theirs["dice"], abs=0.05)


def test_predict_runs_an_int8_model(exported, data_dir, tmp_path):
    result = run_main("tumorseg.predict", f"ckpt_path={exported['int8']}", f"input={data_dir / 'phantom/val/images'}",
                      f"output={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((tmp_path / "out/summary.csv").read_text().splitlines()) == 1 + 16
    assert len(list((tmp_path / "out/masks").rglob("*.png"))) == 16


def test_onnx_model_refuses_gpu_and_bf16(exported, data_dir, tmp_path):
    with pytest.raises(UserError, match="precision=bf16 does not apply to the ONNX model"):
        evaluate(eval_cfg(exported["int8"], data_dir, tmp_path, precision="bf16"))
    with pytest.raises(UserError, match="runs on the CPU here; use device=cpu"):
        evaluate(eval_cfg(exported["int8"], data_dir, tmp_path, device="cuda"))


def test_export_errors_are_one_line_and_keep_what_was_there(exported, trained_run, data_dir, tmp_path):
    keep = tmp_path / "kept.onnx"
    keep.write_bytes(b"an earlier export")
    cases = {
        (): f"output={keep} exists: choose another file, or add overwrite=true",
        ("overwrite=true", "quantize=int8"): "needs calibration_dir=<data>/train",
        ("overwrite=true", "quantize=int4"): "quantize=int4 is not one of null (fp32), int8",
        ("overwrite=true", "quantize=int8", f"calibration_dir={data_dir / 'phantom/train'}", "calibration_slices=8",
         "min_agreement=1.0"): "not written: export without quantize",
        ("overwrite=true", f"output={tmp_path}"): f"output={tmp_path} is a folder",
        ("overwrite=true", f"output={ckpt(trained_run)}"): "is the model it exports",
    }
    for args, message in cases.items():
        result = run_main("tumorseg.export", f"ckpt_path={ckpt(trained_run)}", f"output={keep}", *args,
                          f"hydra.run.dir={tmp_path / 'log'}")
        assert_one_error(result, message)
        assert keep.read_bytes() == b"an earlier export" and not list(tmp_path.glob("kept.onnx.*"))
    result = run_main("tumorseg.export", f"ckpt_path={exported['int8']}", f"output={keep}", "overwrite=true",
                      f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode == 2 and "is already ONNX" in result.stderr


def test_an_onnx_file_without_tumorseg_metadata_is_refused(tmp_path):
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    torch.onnx.export(net, (torch.randn(1, 1, 8, 8),), str(tmp_path / "foreign.onnx"), dynamo=False,
                      input_names=["image"], output_names=["logits"])
    assert onnx.load(str(tmp_path / "foreign.onnx")).graph.node
    with pytest.raises(UserError, match="has no tumorseg metadata"):
        read(tmp_path / "foreign.onnx")
    write_onnx_metadata(tmp_path / "foreign.onnx", {"image_size": 8})
    with pytest.raises(UserError, match="lacks context_slices, mean, precision"):
        read(tmp_path / "foreign.onnx")
    write_onnx_metadata(tmp_path / "foreign.onnx", ["not", "an", "object"])
    with pytest.raises(UserError, match="metadata is not a JSON object"):
        read(tmp_path / "foreign.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(UserError, match="is not a readable ONNX model"):
        read(tmp_path / "junk.onnx")
    with pytest.raises(UserError, match="is not a file"):
        read(tmp_path / "missing.onnx")


def test_metadata_carries_the_model_files_choices(exported, trained_run):
    from tumorseg.inference.model_file import read_onnx_metadata

    info = read_onnx_metadata(exported["32"])
    onnx_side, torch_side = read(exported["32"]), read(ckpt(trained_run))
    assert (onnx_side.preprocessing, onnx_side.stored) == (torch_side.preprocessing, torch_side.stored)
    assert info["format_version"] == 1 and info["model"] == torch_side.model
    assert json.loads(json.dumps(info)) == info and info["precision"] == "32"
    assert np.isclose(info["threshold"], 0.5)


def int8_weight_extremes(path) -> int:
    """The largest |int8 weight| of the QLinearConv nodes of an ONNX file."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {init.name: init for init in model.graph.initializer}
    return max(int(np.abs(numpy_helper.to_array(weights[node.input[3]]).astype(np.int32)).max())
               for node in model.graph.node if node.op_type == "QLinearConv")


@pytest.mark.parametrize("which", ["phantom export", "shipped int8 file"])
def test_int8_weights_cannot_saturate_the_avx2_kernels(which, exported):
    """Without VNNI, ONNX Runtime adds u8 x s8 products pairwise in int16: 2 x 255 x |w| must stay <= 32767."""
    from tumorseg.inference.model_file import REFERENCE_MODEL

    path = exported["int8"] if which == "phantom export" else REFERENCE_MODEL.with_name("lung_unet.int8.onnx")
    assert 2 * 255 * int8_weight_extremes(path) <= 32767


RUN_ON_EMULATED_AVX2 = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
np.save(sys.argv[3], session.run(None, {"image": np.load(sys.argv[2])})[0])
"""


def emulated_avx2_logits(model, x: np.ndarray, tmp_path) -> np.ndarray:
    """ONNX Runtime's logits of model on x under qemu-x86_64 -cpu Haswell: AVX2, no AVX-512, no VNNI."""
    import platform
    import shutil
    import subprocess
    import sys

    if platform.machine() != "x86_64" or (not shutil.which("qemu-x86_64") and not os.environ.get("CI")):
        pytest.skip("needs qemu-x86_64 on x86-64 (Debian's qemu-user; make test installs it where it can)")
    np.save(tmp_path / "x.npy", x)
    subprocess.run(["qemu-x86_64", "-cpu", "Haswell-v4", sys.executable, "-c", RUN_ON_EMULATED_AVX2, str(model),
                    str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                   check=True, stderr=subprocess.DEVNULL, timeout=300)
    return np.load(tmp_path / "y.npy")


@pytest.mark.parametrize("which", ["phantom export", "shipped int8 file"])
def test_int8_gives_the_same_logits_on_a_cpu_without_vnni(which, exported, tmp_path):
    from tumorseg.inference.model_file import REFERENCE_MODEL

    path = exported["int8"] if which == "phantom export" else REFERENCE_MODEL.with_name("lung_unet.int8.onnx")
    prep = read(path).preprocessing
    x = torch.randn(2, prep.channels, prep.image_size, prep.image_size, generator=torch.Generator().manual_seed(0))
    here = runner_for(read(path)).logits(x).numpy()
    avx2 = emulated_avx2_logits(path, x.numpy(), tmp_path)
    # the integer sums are exact on both paths; only the float requantization may round differently
    assert np.abs(avx2 - here).max() <= 1e-3 * max(1.0, float(np.abs(here).max()))


@pytest.mark.parametrize("form", ["onnx", "web"])
def test_export_without_an_output_is_one_line(form, tmp_path):
    """output=null (or ~output) is a setting to give, not a traceback: the shipped model, nothing written."""
    for unset in ("output=null", "~output"):
        result = run_main("tumorseg.export", f"format={form}", unset, f"hydra.run.dir={tmp_path / 'run'}")
        assert_one_error(result, "output is not set: output=model.onnx")
