"""Every numeric option of every command passes one rule set: a wrong type or range is one line, exit 2."""

import pytest

from tests.conftest import TINY, phantom_overrides, run_main

CASES = [
    ("tumorseg.evaluate", "threshold=2", "threshold=2 must be a float between 0 and 1"),
    ("tumorseg.evaluate", "threshold=-1", "threshold=-1 must be a float between 0 and 1"),
    ("tumorseg.evaluate", "threshold=abc", "threshold='abc' must be a float"),
    ("tumorseg.evaluate", "batch_size=0", "batch_size=0 must be an int > 0"),
    ("tumorseg.evaluate", "postprocess.min_size=abc", "postprocess.min_size='abc' must be an int >= 0"),
    ("tumorseg.predict", "batch_size=-1", "batch_size=-1 must be an int > 0"),
    ("tumorseg.predict", "max_pixels=abc", "max_pixels='abc' must be an int > 0"),
    ("tumorseg.predict", "threshold=1.5", "threshold=1.5 must be a float between 0 and 1"),
    ("tumorseg.export", "calibration_slices=0", "calibration_slices=0 must be an int > 0"),
    ("tumorseg.export", "min_agreement=2", "min_agreement=2 must be a float between 0 and 1"),
    ("tumorseg.check", "data.image_size=0", "data.image_size=0 must be an int > 0"),
    ("tumorseg.train", "approach=cv approach.k=abc", "approach.k='abc' must be an int >= 2"),
    ("tumorseg.train", "approach.test_size=abc", "approach.test_size='abc' must be a float between 0 and 1"),
    ("tumorseg.train", "data.mean=abc", "data.mean='abc' must be a float"),
    ("tumorseg.train", "data.std=0", "data.std=0 must be a float > 0"),
    ("tumorseg.train", "optimizer.weight_decay=-1", "optimizer.weight_decay=-1 must be a float >= 0"),
    ("tumorseg.train", "data.tumor_share=abc", "data.tumor_share='abc' must be a float between 0 and 1"),
    ("tumorseg.train", "data.tumor_share=1.5", "data.tumor_share=1.5 must be a float between 0 and 1"),
    ("tumorseg.train", "trainer.limit_val_batches=0", "trainer.limit_val_batches=0 must be a float > 0: a number"),
    ("tumorseg.train", "trainer.limit_train_batches=1.5", "trainer.limit_train_batches=1.5 must be a float > 0"),
    ("tumorseg.ship", "seed_threshold=2", "seed_threshold=2 must be a float between 0 (off) and 1"),
]


@pytest.mark.parametrize("command, options, message", CASES, ids=[f"{c.split('.')[1]} {o}" for c, o, _ in CASES])
def test_a_value_out_of_its_rule_is_one_line(command, options, message, data_dir, tmp_path):
    val = data_dir / "phantom/val"
    needed = {"tumorseg.train": [*TINY, *phantom_overrides(data_dir)],
              "tumorseg.evaluate": [f"data_dir={val}"],
              "tumorseg.predict": [f"input={val / 'images'}", f"output={tmp_path / 'out'}"],
              "tumorseg.export": ["quantize=int8", f"calibration_dir={val}", f"output={tmp_path / 'm.onnx'}"],
              "tumorseg.ship": ["ckpt_path=x.ckpt", f"output={tmp_path / 'm.pt'}"],
              "tumorseg.check": [f"data.root={data_dir / 'phantom'}"]}[command]
    args = [*needed, *options.split(), f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_main(command, *args)
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not any((tmp_path / name).exists() for name in ("out", "m.pt", "m.onnx", "run/checkpoints"))


def test_a_model_files_own_threshold_outside_0_1_is_one_line(trained_run, data_dir, tmp_path):
    import torch

    content = torch.load(trained_run / "checkpoints/last.ckpt", weights_only=True)
    content["inference"] = {"threshold": 2.0}
    torch.save(content, tmp_path / "odd.ckpt")
    result = run_main("tumorseg.evaluate", f"ckpt_path={tmp_path / 'odd.ckpt'}", f"data_dir={data_dir / 'phantom/val'}",
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and f"{tmp_path / 'odd.ckpt'} stores threshold 2.0, outside (0, 1)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    ok = run_main("tumorseg.evaluate", f"ckpt_path={tmp_path / 'odd.ckpt'}", f"data_dir={data_dir / 'phantom/val'}",
                  "threshold=0.5", f"hydra.run.dir={tmp_path / 'run2'}")
    assert ok.returncode == 0, ok.stderr[-1000:]
