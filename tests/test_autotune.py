"""runtime=auto on a CPU: each way the model vouches for measured once, the fastest kept in the cache and reused."""

import json
import logging
import time

import pytest
import torch

from tumorseg.inference import autotune, runtime
from tumorseg.inference.model_file import REFERENCE_MODEL, read
from tumorseg.inference.runtime import Runner

INT8 = REFERENCE_MODEL.with_name("lung_unet.int8.onnx")


@pytest.fixture
def bf16(monkeypatch):
    """A CPU with bf16 arithmetic: PyTorch bf16 is one of the ways (and runtime=pytorch's precision=auto)."""
    monkeypatch.setattr(autotune, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)


def auto(**options):
    """(file name, way) that runtime=auto runs the shipped model with on the CPU."""
    model, runner = autotune.auto_runner(read(REFERENCE_MODEL), device="cpu", **options)
    return model.path.name, f"{runner.runtime} {'fp32' if runner.precision == '32' else runner.precision}"


def cache_files():
    return list((autotune.cache_dir() / "runtime").glob("*.json"))


def test_the_pick_is_the_fastest_measured_way(bf16, fake_rates):
    fake_rates.set(pytorch_fp32=2.0, pytorch_bf16=5.0, onnxruntime_int8=4.0)
    assert auto() == ("lung_unet.pt", "pytorch bf16")
    fake_rates.set(onnxruntime_int8=7.9)
    assert auto(batch_size=8) == ("lung_unet.int8.onnx", "onnxruntime int8")  # another batch: measured anew
    assert fake_rates.calls == 2


def test_the_ways_are_those_the_model_file_vouches_for(bf16, monkeypatch, tmp_path):
    assert [w.name for w in autotune.ways_of(read(REFERENCE_MODEL))] == ["pytorch fp32", "pytorch bf16",
                                                                          "onnxruntime int8"]
    monkeypatch.setattr(autotune, "cpu_has_bf16", lambda: False)  # emulated bf16 is slower than fp32: not a way
    assert [w.name for w in autotune.ways_of(read(REFERENCE_MODEL))] == ["pytorch fp32", "onnxruntime int8"]


def test_a_cached_choice_is_reused_without_measuring(bf16, fake_rates):
    fake_rates.set(pytorch_fp32=1.0, pytorch_bf16=2.0, onnxruntime_int8=3.0)
    assert auto() == ("lung_unet.int8.onnx", "onnxruntime int8") and fake_rates.calls == 1
    (entry,) = cache_files()
    assert json.loads(entry.read_text())["choice"] == "onnxruntime int8"
    fake_rates.set(pytorch_bf16=9.0)  # a measurement now would pick bf16: the cached choice stands
    model, runner = autotune.auto_runner(read(REFERENCE_MODEL), device="cpu")
    assert (model.path, runner.runtime, fake_rates.calls) == (INT8, "onnxruntime", 1)
    assert str(entry) in runner.chosen_by


def test_a_corrupt_cache_entry_is_measured_again_and_rewritten(bf16, fake_rates):
    fake_rates.set(pytorch_fp32=1.0, pytorch_bf16=3.0, onnxruntime_int8=2.0)
    auto()
    (entry,) = cache_files()
    good = json.loads(entry.read_text())
    damages = [b"{not json", b"", b"[]", b'{"key": {}, "choice": "onnxruntime int8"}', b"\xff\xfe",
               json.dumps({**good, "choice": "tensorrt fp8"}).encode()]  # a way that is not one
    for calls, damage in enumerate(damages, 2):
        entry.write_bytes(damage)
        assert auto() == ("lung_unet.pt", "pytorch bf16") and fake_rates.calls == calls, damage  # never an error
        assert json.loads(entry.read_text()) == good, damage  # rewritten whole


def test_an_unwritable_cache_is_said_never_an_error(bf16, fake_rates, monkeypatch, tmp_path, caplog):
    (tmp_path / "a file").write_text("not a folder")
    monkeypatch.setenv("TUMORSEG_CACHE_DIR", str(tmp_path / "a file"))
    fake_rates.set(pytorch_bf16=3.0)
    with caplog.at_level(logging.INFO, logger=autotune.__name__):
        assert auto() == ("lung_unet.pt", "pytorch bf16")
    assert "not kept (" in caplog.text and (tmp_path / "a file").read_text() == "not a folder"


def test_the_cache_key_changes_with_threads_versions_and_files(bf16, monkeypatch, tmp_path):
    ways = autotune.ways_of(read(REFERENCE_MODEL))
    shape = (16, 1, 256, 256)
    first = autotune.entry_path(autotune.cache_key(ways, shape))
    assert autotune.entry_path(autotune.cache_key(ways, shape)) == first  # the same inputs: the same entry
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert autotune.entry_path(autotune.cache_key(ways, shape)) != first
    finally:
        torch.set_num_threads(threads)
    real = autotune.version
    for package in ("torch", "onnxruntime", "tumorseg"):
        monkeypatch.setattr(autotune, "version", lambda p, package=package: "9.9" if p == package else real(p))
        monkeypatch.setattr(torch, "__version__", "9.9" if package == "torch" else torch.__version__)
        assert autotune.entry_path(autotune.cache_key(ways, shape)) != first, package
        monkeypatch.undo()
    monkeypatch.setattr(autotune, "cpu_name", lambda: "another CPU")
    assert autotune.entry_path(autotune.cache_key(ways, shape)) != first
    monkeypatch.undo()
    assert autotune.entry_path(autotune.cache_key(ways, (8, 1, 256, 256))) != first
    copy = tmp_path / "lung_unet.pt"  # the same content elsewhere: the same model
    copy.write_bytes(REFERENCE_MODEL.read_bytes())
    assert autotune.cache_key(ways, shape)["ways"]["pytorch fp32"] == autotune.file_digest(copy)
    copy.write_bytes(REFERENCE_MODEL.read_bytes() + b"\0")
    assert autotune.cache_key(ways, shape)["ways"]["pytorch fp32"] != autotune.file_digest(copy)


def test_the_cache_folder_is_the_users(monkeypatch, tmp_path):
    monkeypatch.delenv("TUMORSEG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert autotune.cache_dir() == tmp_path / "xdg" / "tumorseg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert autotune.cache_dir() == tmp_path / "home" / ".cache" / "tumorseg"
    monkeypatch.setenv("TUMORSEG_CACHE_DIR", str(tmp_path / "mine"))
    assert autotune.cache_dir() == tmp_path / "mine"


def test_explicit_choices_a_gpu_and_onnx_files_measure_nothing(bf16, fake_rates, monkeypatch):
    fake_rates.set(onnxruntime_int8=9.0)
    assert auto(runtime="pytorch") == ("lung_unet.pt", "pytorch bf16")
    assert auto(precision="32") == ("lung_unet.pt", "pytorch fp32")
    model, runner = autotune.auto_runner(read(INT8), device="cpu")
    assert (model.path, runner.precision) == (INT8, "int8")
    monkeypatch.setattr(autotune, "torch_device", lambda name, model: torch.device("cuda"))
    monkeypatch.setattr(autotune, "runner_for", lambda model, device, precision: "today's GPU runner")
    assert autotune.auto_runner(read(REFERENCE_MODEL), device="cuda")[1] == "today's GPU runner"
    assert fake_rates.calls == 0 and not cache_files()


def test_the_measurement_is_said_in_one_log_line(bf16, fake_rates, caplog):
    fake_rates.set(pytorch_fp32=1.25, pytorch_bf16=2.5, onnxruntime_int8=3.75)
    with caplog.at_level(logging.INFO, logger=autotune.__name__):
        auto(batch_size=4)
    (record,) = [r for r in caplog.records if r.name == autotune.__name__]
    line = record.getMessage()
    assert "\n" not in line and line.startswith("runtime=auto measured lung_unet.pt")
    assert "pytorch fp32 1.2, pytorch bf16 2.5, onnxruntime int8 3.8 slices/s" in line
    assert "batches of 4x1x256x256" in line and "-> onnxruntime int8 (lung_unet.int8.onnx); kept in" in line


class Sleeper(torch.nn.Module):
    """A net that takes `seconds` a call."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x[:, :1]


def test_measure_warms_up_times_each_way_and_the_fastest_wins():
    calls = []
    runners = {name: Runner(Sleeper(seconds), torch.device("cpu"), "32", "pytorch")
               for name, seconds in (("slow", 0.03), ("fast", 0.005))}
    for runner in runners.values():
        runner.net.register_forward_hook(lambda module, args, out: calls.append((module.seconds, len(args[0]))))
    rates = autotune.measure(runners, (4, 1, 8, 8), budget=0.05, rounds=5)
    assert autotune.fastest(rates) == "fast" and rates["fast"] > 3 * rates["slow"]
    assert 4 / 0.03 / 2 < rates["slow"] <= 4 / 0.03 and calls[:2] == [(0.03, 1), (0.005, 1)]  # a warm-up slice
    # the slow way, 6x the fast one, is timed in the first round only; the budget ends the rounds
    assert calls.count((0.03, 4)) == 1 and 1 < calls.count((0.005, 4)) < 5
