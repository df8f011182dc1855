"""The benchmark's quick mode runs end to end and writes its table and JSON; its options are checked first."""

import dataclasses
import importlib
import json
import pkgutil

import pytest
from hydra import compose, initialize_config_module

import tumorseg.benchmark
from tests.conftest import assert_one_error, run_main
from tumorseg.bench import run_bench
from tumorseg.benchmark.settings import PARTS, settings_from
from tumorseg.errors import UserError


def main(overrides: list[str]) -> dict:
    """tumorseg bench OVERRIDES..., in this process."""
    with initialize_config_module(config_module="tumorseg.conf", version_base="1.3"):
        return run_bench(compose("bench", overrides=overrides))


QUICK = ["quick=true", "image_size=64", "batch_size=4"]


@pytest.mark.slow
@pytest.mark.trains
def test_quick_benchmark_of_training_and_data_writes_table_and_json(tmp_path):
    """The training and data parts (the inference parts in the next test: two workers can time them at once)."""
    results = main([*QUICK, "parts=[train,data]", f"out={tmp_path}"])
    saved = json.loads((tmp_path / "benchmarks-quick.json").read_text())
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["torch"]
    assert set(saved["summary"]) == {"lightning_over_plain", "default_over_unet_seed_fp32",
                                     "train_gflops_share_of_matmul", "data_all_over_train_step"}
    assert set(results["data_images_per_s"]) == {"none", "flip", "rotate", "elastic", "all"}
    table = (tmp_path / "BENCHMARKS-quick.md").read_text()
    assert "## Targets" in table and "Lightning/plain" in table and "## Data pipeline" in table
    for setting in ("unet fp32 NCHW", "unet_seed fp32 NCHW"):  # both nets: Lightning and a plain loop
        assert set(results["train_images_per_s"][setting]) == {"lightning", "plain"}
        assert all(v > 0 for v in results["train_images_per_s"][setting].values())
    for other in ("unet_classic", "unet_fast"):
        assert results["train_images_per_s"][f"{other} {results['default_setting']}"]["lightning"] > 0
        assert other in table
    assert set(results["train_gflop_per_image"]) == {"unet", "unet_classic", "unet_fast", "unet_seed"}
    # memory of the default batch size (the config's 16, not the timed batch of 4), in a fresh process
    assert results["train_peak_memory_batch_size"] == 16 and 200 < results["train_peak_memory_mb"] < 20_000


@pytest.mark.slow
def test_quick_benchmark_of_inference_writes_table_and_json(tmp_path):
    results = main([*QUICK, "parts=[infer,segment,volume]", f"out={tmp_path}"])
    saved = json.loads((tmp_path / "benchmarks-quick.json").read_text())
    assert set(saved["summary"]) == {"inference_best_images_per_s_b16", "segment_int8_default_over_fp32",
                                     "segment_auto_over_fastest"}
    expected = {"eager fp32 NCHW", "eager bf16 channels_last", "ONNX Runtime fp32", "ONNX Runtime int8"}
    assert expected <= set(results["inference"])
    ways = results["segment"]  # the shipped model through evaluate/predict's path, each runtime side by side
    assert {w["model"] for w in ways.values()} == {"lung_unet.pt", "lung_unet.int8.onnx"}
    assert all(w["slices_per_s"] > 0 for w in ways.values())
    auto = ways["default here (runtime=auto, precision=auto)"]  # the way runtime=auto picked, beside the others
    assert auto["chosen_by"].startswith("runtime=auto") and max(w["over_fastest"] for w in ways.values()) == 1
    assert auto["runs"] in {w["runs"] for k, w in ways.items() if not k.startswith("default")}
    table = (tmp_path / "BENCHMARKS-quick.md").read_text()
    assert "runtime=auto" in table and "through evaluate/predict's path" in table and "## Targets" in table
    assert all(w["slices_per_s"] > 0 and w["slices"] == 2 for w in results["volume"].values())


def test_image_size_the_deepest_model_cannot_halve_is_refused(tmp_path):
    with pytest.raises(UserError, match="image_size=80 does not divide by 32.*use image_size=64"):
        main(["quick=true", "image_size=80", f"out={tmp_path}"])
    assert not list(tmp_path.iterdir())


def test_cuda_benchmark_without_a_gpu_says_so(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="device=cuda, but torch sees no GPU"):
        main(["quick=true", "device=cuda", f"out={tmp_path}"])
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("parts", ["[train,bogus]", "'train,bogus'", "bogus"])
def test_an_unknown_part_is_refused_in_one_line(tmp_path, parts):
    result = run_main("tumorseg.bench", f"parts={parts}", "quick=true", f"out={tmp_path / 'out'}")
    assert_one_error(result)
    assert result.stderr.startswith("error: ")
    assert "'bogus'" in result.stderr and ", ".join(PARTS) in result.stderr
    assert not (tmp_path / "out").exists()


def test_settings_are_frozen_and_bench_holds_no_module_state():
    options = {"device": "cpu", "quick": True, "parts": "segment,infer", "batch_size": 4, "image_size": 512,
               "steps": 10, "out": "outputs/bench", "compile": None}
    settings = settings_from(options)
    assert (settings.parts, settings.image_size, settings.steps, settings.compile) == (("segment", "infer"), 128, 3,
                                                                                      False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.device = "cuda"
    modules = [importlib.import_module(f"tumorseg.benchmark.{m.name}") for m in
               pkgutil.iter_modules(tumorseg.benchmark.__path__)]
    for module in [importlib.import_module("tumorseg.bench"), *modules]:
        mutable = [name for name, value in vars(module).items() if not name.startswith("__")
                   and isinstance(value, (list, dict, set, bytearray))]
        assert not mutable, f"{module.__name__} holds module-level mutable state: {mutable}"
