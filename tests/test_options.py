"""Every numeric option of every command passes one rule set: a wrong type or range is one line, exit 2."""

import pytest

from tests.conftest import TINY, assert_one_error, phantom_overrides, run_main

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
    ("tumorseg.check", "data.image_size=0", "data.image_size=0 must be an int between 1 and 16384"),
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
    # non-finite numbers, booleans where a number is meant, list-valued options, every command's config
    ("tumorseg.evaluate", "threshold=nan", "threshold=nan must be a finite float between 0 and 1"),
    ("tumorseg.evaluate", "threshold=true", "threshold=True must be a float between 0 and 1"),
    ("tumorseg.evaluate", "postprocess.seed_threshold=nan", "postprocess.seed_threshold=nan must be a finite float"),
    ("tumorseg.evaluate", "label=[1,true]", "label=[1,True] must be a label value > 0"),
    ("tumorseg.predict", "preprocess.window=[true,1500]", "preprocess.window=[True,1500] must be [LEVEL,WIDTH]"),
    ("tumorseg.predict", "preprocess.window=[nan,1500]", "preprocess.window=[nan,1500] must be [LEVEL,WIDTH]"),
    ("tumorseg.predict", "preprocess.window=[40,inf]", "preprocess.window=[40,inf] must be [LEVEL,WIDTH]"),
    ("tumorseg.predict", "preprocess.window=[40,0]", "WIDTH > 0"),
    ("tumorseg.predict", "max_voxels=0", "max_voxels=0 must be an int > 0"),
    ("tumorseg.predict", "max_voxels=true", "max_voxels=True must be an int > 0"),
    ("tumorseg.predict", "postprocess.largest_3d=1", "postprocess.largest_3d=1 must be true or false"),
    ("tumorseg.export", "tolerance=inf", "tolerance=inf must be a finite float > 0"),
    ("tumorseg.train", "data.mean=nan", "data.mean=nan must be a finite float"),
    ("tumorseg.train", "optimizer.lr=true", "optimizer.lr=True must be a float > 0"),
    ("tumorseg.train", "trainer.precision=15", "trainer.precision=15 must be one of"),
    ("tumorseg.train", "loss=focal_dice loss.gamma=-inf", "loss.gamma=-inf must be a finite float >= 0"),
    ("tumorseg.convert", "preprocess.window=[-600,-inf]", "preprocess.window=[-600,-inf] must be [LEVEL,WIDTH]"),
    ("tumorseg.convert", "label=0", "label=0 must be a label value > 0 (0 is the background)"),
    ("tumorseg.bench", "steps=nan", "steps=nan must be an int > 0"),
    ("tumorseg.ship", "seed_threshold=inf", "seed_threshold=inf must be a finite float between 0 (off) and 1"),
]


@pytest.mark.parametrize("command, options, message", CASES, ids=[f"{c.split('.')[1]} {o}" for c, o, _ in CASES])
def test_a_value_out_of_its_rule_is_one_line(command, options, message, data_dir, tmp_path):
    val = data_dir / "phantom/val"
    needed = {"tumorseg.train": [*TINY, *phantom_overrides(data_dir)],
              "tumorseg.evaluate": [f"data_dir={val}"],
              "tumorseg.predict": [f"input={val / 'images'}", f"output={tmp_path / 'out'}"],
              "tumorseg.export": ["quantize=int8", f"calibration_dir={val}", f"output={tmp_path / 'm.onnx'}"],
              "tumorseg.ship": ["ckpt_path=x.ckpt", f"output={tmp_path / 'm.pt'}"],
              "tumorseg.check": [f"data.root={data_dir / 'phantom'}"],
              "tumorseg.convert": [f"input={tmp_path / 'task'}", f"output={tmp_path / 'out'}"],
              "tumorseg.bench": [f"out={tmp_path / 'out'}", "quick=true"]}[command]
    args = [*needed, *options.split(), f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_main(command, *args)
    assert_one_error(result, message)
    assert not any((tmp_path / name).exists() for name in ("out", "m.pt", "m.onnx", "run/checkpoints"))


def test_a_model_files_own_threshold_outside_0_1_is_one_line(trained_run, data_dir, tmp_path):
    import torch

    content = torch.load(trained_run / "checkpoints/last.ckpt", weights_only=True)
    content["inference"] = {"threshold": 2.0}
    torch.save(content, tmp_path / "odd.ckpt")
    result = run_main("tumorseg.evaluate", f"ckpt_path={tmp_path / 'odd.ckpt'}", f"data_dir={data_dir / 'phantom/val'}",
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, f"{tmp_path / 'odd.ckpt'} stores threshold 2.0, outside (0, 1)")
    ok = run_main("tumorseg.evaluate", f"ckpt_path={tmp_path / 'odd.ckpt'}", f"data_dir={data_dir / 'phantom/val'}",
                  "threshold=0.5", f"hydra.run.dir={tmp_path / 'run2'}")
    assert ok.returncode == 0, ok.stderr[-1000:]


# The classes a fuzz campaign found: a path given a number, bool or list; a group given a number; an interpolation
# that names nothing; a value left ???; a key no constructor takes; a size no machine holds.
SETTING_CASES = [
    ("tumorseg.predict", ["input=1", "output=OUT"], "input=1 must be text"),
    ("tumorseg.predict", ["input=VAL", "output=true"], "output=True must be text"),
    ("tumorseg.convert", ["input=[a,b]", "output=OUT"], "input=[a,b] must be text"),
    ("tumorseg.check", ["data.root=0"], "data.root=0 must be text"),
    ("tumorseg.ship", ["ckpt_path=x.ckpt", "output=OUT", "soup=114"], "soup=114 must be a list of paths"),
    ("tumorseg.check", ["approach=NaN"], "a config group (model=, loss=, approach=, ...) takes an option's name"),
    ("tumorseg.predict", ["input=VAL", "output=OUT", "viewer=${nope}"], "viewer: Interpolation key 'nope' not found"),
    ("tumorseg.ship", ["ckpt_path=x.ckpt", "output=OUT", "++threshold=${paths.root_dir}"], "threshold: Interpolation"),
    ("tumorseg.fetch", ["dest=???"], "dest: Missing mandatory value"),
    ("tumorseg.check", ["data.image_size=2147483648"], "data.image_size=2147483648 must be an int between 1 and"),
]


@pytest.mark.parametrize("command, options, message", SETTING_CASES,
                         ids=[f"{c.split('.')[1]} {' '.join(o)}" for c, o, _ in SETTING_CASES])
def test_a_setting_of_the_wrong_kind_is_one_line(command, options, message, data_dir, tmp_path):
    given = {"OUT": str(tmp_path / "out"), "VAL": str(data_dir / "phantom/val/images")}
    args = [o.replace("OUT", given["OUT"]).replace("VAL", given["VAL"]) for o in options]
    if command == "tumorseg.check" and not any(a.startswith("data.root") for a in args):
        args.append(f"data.root={data_dir / 'phantom'}")
    result = run_main(command, *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, message)
    assert not (tmp_path / "out").exists()


def test_a_key_the_data_module_does_not_take_is_one_line(data_dir, tmp_path):
    result = run_main("tumorseg.train", *TINY, *phantom_overrides(data_dir), "+data.extra=0",
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "extra is not an option here")


def test_a_broken_run_record_is_one_line_in_report(tmp_path):
    run = tmp_path / "runs" / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / "metrics.json").write_text('{"val/dice": 0.5}')
    (run / ".hydra" / "config.yaml").write_text("model: [unclosed\n")
    result = run_main("tumorseg.report", f"runs={tmp_path / 'runs'}")
    assert_one_error(result, "config.yaml is not a readable YAML record")
