"""evaluate, predict, report and export on a checkpoint made by a tiny training run."""

import json
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import assert_errors, assert_one_error, run_main, ship_main
from tumorseg.errors import UserError
from tumorseg.inference.model_file import read
from tumorseg.inference.postprocess import remove_small
from tumorseg.inference.runtime import runner_for

EVAL_KEYS = {"dice", "iou", "precision", "recall", "dice_per_slice", "dice_per_subject", "empty_fp_rate", "bce",
             "n_images", "n_subjects", "threshold", "tta", "inference_precision"}


def ckpt(run):
    return str(run / "checkpoints/last.ckpt")


def test_training_leaves_plots_and_tensorboard_pictures(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name in ("loss", "dice", "predictions"):
        assert (trained_run / f"plots/{name}.png").stat().st_size > 1000
    tags = {"images": set(), "scalars": set()}
    for path in (trained_run / "tensorboard").glob("events.out.tfevents.*"):
        events = EventAccumulator(str(path))
        events.Reload()
        for kind in tags:
            tags[kind] |= set(events.Tags()[kind])
    assert "val/predictions" in tags["images"]
    assert {"train/loss", "val/loss", "train/dice", "val/dice", "val/dice_per_subject"} <= tags["scalars"]
    assert (trained_run / "tensorboard/hparams.yaml").is_file()


def test_evaluate_prints_table_and_json_last(trained_run, data_dir, tmp_path):
    result = run_main("tumorseg.evaluate", f"ckpt_path={ckpt(trained_run)}", f"data_dir={data_dir / 'phantom'}",
                     "split=val", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    metrics = json.loads(lines[-1])
    assert EVAL_KEYS <= set(metrics)
    assert "dice_per_subject" in result.stdout.split(lines[-1])[0]  # the table comes first
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["n_subjects"] == 2 and metrics["n_images"] == 16
    subjects = metrics["subjects"]
    assert len(subjects) == 2 and sum(s["n_images"] for s in subjects.values()) == 16
    assert sum(s["dice"] for s in subjects.values()) / 2 == pytest.approx(metrics["dice_per_subject"], abs=1e-5)
    assert all(name in result.stdout for name in subjects)  # the per-subject table


def test_evaluate_agrees_with_training_validation(trained_run, data_dir, tmp_path):
    from omegaconf import OmegaConf

    from tumorseg.evaluate import evaluate

    best = sorted((trained_run / "checkpoints").glob("epoch_*.ckpt"))[-1]
    cfg = OmegaConf.create(dict(ckpt_path=str(best), data_dir=str(data_dir / "phantom/val"), split=None,
                                threshold=0.5, tta=False, precision="32", postprocess={"min_size": 0}, batch_size=5,
                                paths={"output_dir": str(tmp_path)}))
    metrics = evaluate(cfg)
    trained = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["dice"] > 0.05  # it learned something, so the comparison means something
    assert metrics["dice"] == pytest.approx(trained["val/dice"], abs=1e-5)
    assert metrics["dice_per_subject"] == pytest.approx(trained["val/dice_per_subject"], abs=1e-5)
    assert metrics["bce"] == pytest.approx(trained["val/bce"], rel=1e-3)
    tta = evaluate(OmegaConf.merge(cfg, {"tta": True, "postprocess": {"min_size": 3}}))
    assert 0 <= tta["dice"] <= 1 and tta["tta"] is True and tta["min_size"] == 3


def test_bf16_inference_is_used_and_stays_close_to_fp32(trained_run, data_dir, tmp_path):
    from omegaconf import OmegaConf

    from tumorseg.evaluate import evaluate
    from tumorseg.inference.hardware import cpu_has_bf16
    from tumorseg.inference.segment import Segmenter, Settings

    model = read(ckpt(trained_run))
    x = torch.randn(6, 1, model.preprocessing.image_size, model.preprocessing.image_size,
                    generator=torch.Generator().manual_seed(0))
    probs = {}
    for precision in ("32", "bf16"):
        runner = runner_for(model, "cpu", precision)
        assert runner.precision == precision
        probs[precision] = Segmenter(model, runner, Settings(0.5, True, 0.0)).probabilities(x)
    assert probs["bf16"].dtype == torch.float32
    difference = (probs["bf16"] - probs["32"]).abs()
    assert 0 < difference.max() < 0.05 and difference.mean() < 0.002  # rounded, not another model
    cfg = OmegaConf.create(dict(ckpt_path=ckpt(trained_run), data_dir=str(data_dir / "phantom/val"), split=None,
                                threshold=0.5, tta=False, precision="auto", postprocess={"min_size": 0},
                                batch_size=8, paths={"output_dir": str(tmp_path)}, runtime="pytorch"))
    # runtime=pytorch precision=auto: bf16 where the CPU has it (runtime=auto measures: tests/test_autotune.py)
    assert evaluate(cfg)["inference_precision"] == ("bf16" if cpu_has_bf16() else "32")
    with pytest.raises(UserError, match="precision=fp16 is not one of auto, 32, bf16"):
        evaluate(OmegaConf.merge(cfg, {"precision": "fp16"}))


def test_evaluate_on_a_data_set_root_needs_a_split(trained_run, data_dir, tmp_path):
    result = run_main("tumorseg.evaluate", f"ckpt_path={ckpt(trained_run)}", f"data_dir={data_dir / 'phantom'}",
                     f"hydra.run.dir={tmp_path}")
    assert_errors(result, "split=val")


def write_image(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def test_predict_on_mixed_folder_with_a_corrupt_file(trained_run, tmp_path):
    folder = tmp_path / "in"
    rng = np.random.default_rng(0)
    inputs = {
        "images/a.png": rng.integers(0, 255, (64, 64), dtype=np.uint8),
        "images/sub/b.jpg": rng.integers(0, 255, (70, 50, 3), dtype=np.uint8),
        "images/c.tif": rng.integers(0, 65535, (90, 120), dtype=np.uint16),
        "images/d.bmp": rng.integers(0, 255, (33, 47, 3), dtype=np.uint8),
    }
    for rel, array in inputs.items():
        write_image(folder / rel, array)
    write_image(folder / "masks/a.png", np.pad(np.full((8, 8), 255, np.uint8), 28))  # ground truth beside a.png
    (folder / "images/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    result = run_main("tumorseg.predict", f"ckpt_path={ckpt(trained_run)}", f"input={folder}", f"output={out}",
                     "batch_size=2", f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode != 0
    assert "broken.png" in result.stderr and "Traceback" not in result.stderr
    for rel, array in inputs.items():
        name = rel.removeprefix("images/").rsplit(".", 1)[0] + ".png"
        mask = cv2.imread(str(out / "masks" / name), cv2.IMREAD_UNCHANGED)
        over = cv2.imread(str(out / "overlays" / name), cv2.IMREAD_COLOR)
        assert mask.shape == array.shape[:2] and over.shape[:2] == array.shape[:2], name
        assert set(np.unique(mask)) <= {0, 255}
    truth_drawn = cv2.imread(str(out / "overlays/a.png"))[:, :, 1] == 255  # green outline of the truth
    assert truth_drawn.any()
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[0] == "path,tumor_pixels,tumor_fraction,max_probability,components"
    assert len(rows) == 1 + len(inputs)
    assert not (out / "masks/broken.png").exists()


def test_predict_refuses_images_above_max_pixels(trained_run, tmp_path):
    write_image(tmp_path / "big.png", np.zeros((300, 300), np.uint8))
    result = run_main("tumorseg.predict", f"ckpt_path={ckpt(trained_run)}", f"input={tmp_path / 'big.png'}",
                     f"output={tmp_path / 'out'}", "max_pixels=10000", f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode != 0 and "max_pixels=10000" in result.stderr and "big.png" in result.stderr


def test_report_on_two_runs(trained_run, data_dir, tmp_path):
    from tests.conftest import TINY, make_cfg, phantom_overrides, report
    from tumorseg.report import MARK
    from tumorseg.train import train

    full = tmp_path / "full"
    train(make_cfg(TINY + phantom_overrides(data_dir) + ["approach=full"], full))
    (full / ".hydra").mkdir()
    (full / ".hydra/hydra.yaml").write_text(
        "hydra:\n  runtime:\n    choices:\n      approach: full\n      model: unet\n")
    out = tmp_path / "report.md"
    table = report([trained_run, full], out=out)
    lines = table.strip().splitlines()
    assert out.read_text() == MARK + table and len(lines) == 4
    assert "val dice/subject" in lines[0] and "test loss" in lines[0]
    assert [c.strip() for c in lines[3].split("|")[2:4]] == ["full", "unet"]
    assert lines[3].count("–") >= 3  # the full run has no test figures


def test_report_tables_evaluate_runs_beside_training_runs(trained_run, data_dir, tmp_path):
    from tests.conftest import report

    val = data_dir / "phantom" / "val"
    for tta in ("false", "true"):
        result = run_main("tumorseg.evaluate", f"ckpt_path={ckpt(trained_run)}", f"data_dir={val}", f"tta={tta}",
                          f"hydra.run.dir={tmp_path / 'evals' / tta}")
        assert result.returncode == 0, result.stderr[-2000:]
    lines = report([trained_run, tmp_path / "evals"], out=tmp_path / "r.md").splitlines()
    assert "| approach |" in lines[0] and lines[3] == ""
    assert "| checkpoint | threshold | tta | min size |" in lines[4] and len(lines) == 8
    dice = {line.split("|")[1].strip().rsplit("/", 2)[-2:][1]: line.split("|")[8].strip() for line in lines[6:]}
    expected = json.loads((tmp_path / "evals" / "false" / "metrics.json").read_text())["dice"]
    assert dice["false"] == f"{expected:.4f}" and set(dice) == {"false", "true"}


def test_export_onnx_matches_pytorch(trained_run, tmp_path):
    result = run_main("tumorseg.export", f"ckpt_path={ckpt(trained_run)}", f"output={tmp_path / 'm.onnx'}",
                     f"hydra.run.dir={tmp_path / 'log'}")
    assert result.returncode == 0, result.stderr[-2000:]
    diff = float(result.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1])
    assert diff < 1e-4
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # dynamic batch
        (logits,) = session.run(None, {"image": np.zeros((batch, 1, 64, 64), np.float32)})
        assert logits.shape == (batch, 1, 64, 64)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_that_needs_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Evil()}, path)
    with pytest.raises(UserError, match="refused"):
        read(path)
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        read(tmp_path / "empty.ckpt")
    (tmp_path / "noise.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(UserError, match="is not a readable model file") as err:
        read(tmp_path / "noise.ckpt")
    assert "code execution" not in str(err.value)


def test_remove_small_drops_only_small_components():
    mask = np.zeros((20, 20), np.uint8)
    mask[1:3, 1:3] = 1  # 4 px
    mask[10:15, 10:15] = 1  # 25 px
    kept = remove_small(mask, 5)
    assert kept[1:3, 1:3].sum() == 0 and kept[10:15, 10:15].sum() == 25
    assert math.isclose(remove_small(mask, 0).sum(), 29)


def test_16bit_images_are_scaled_not_clipped(tmp_path):
    from tumorseg.data.decode import read_gray

    Image.fromarray(np.array([[0, 32768, 65535]], np.uint16)).save(tmp_path / "x.png")
    assert read_gray(tmp_path / "x.png").tolist() == [[0, 128, 255]]


def test_ship_writes_a_small_weights_only_model_with_the_same_outputs(trained_run, data_dir, tmp_path):
    out = tmp_path / "model.pt"
    ship_main(ckpt(trained_run), out)
    assert out.stat().st_size < (trained_run / "checkpoints/last.ckpt").stat().st_size / 2  # no optimizer state
    content = torch.load(out, weights_only=True)
    assert set(content) == {"tumorseg_format", "state_dict", "hyper_parameters", "source", "inference", "members"}
    assert content["inference"] == {"threshold": 0.5, "tta": False, "seed_threshold": 0.0}
    assert all(k.startswith("net.") for k in content["state_dict"])
    assert content["tumorseg_format"] == 1  # one net: the format an older tumorseg reads too (two stages: 2)
    # runtime=pytorch: one way for both files (runtime=auto measures each file apart and may pick another for each)
    result = run_main("tumorseg.evaluate", f"ckpt_path={out}", f"data_dir={data_dir / 'phantom' / 'val'}",
                     "runtime=pytorch", f"hydra.run.dir={tmp_path / 'a'}")
    shipped = json.loads(result.stdout.strip().splitlines()[-1])
    result = run_main("tumorseg.evaluate", f"ckpt_path={ckpt(trained_run)}", f"data_dir={data_dir / 'phantom' / 'val'}",
                     "runtime=pytorch", f"hydra.run.dir={tmp_path / 'b'}")
    original = json.loads(result.stdout.strip().splitlines()[-1])
    assert ({k: v for k, v in shipped.items() if k != "ckpt_path"}
            == {k: v for k, v in original.items() if k != "ckpt_path"})


def test_a_model_files_threshold_and_tta_are_the_default_of_evaluate(trained_run, data_dir, tmp_path):
    model = tmp_path / "model.pt"
    ship_main(ckpt(trained_run), model)
    ship_main(model, tmp_path / "tuned.pt", "threshold=0.3", "tta=true")  # a model file re-shipped
    assert torch.load(tmp_path / "tuned.pt", weights_only=True)["source"]["checkpoint"] == "last.ckpt"
    val = data_dir / "phantom" / "val"

    def evaluate(name: str, *args: str) -> dict:
        """evaluate's JSON; runtime=pytorch, one way for every file (runtime=auto measures each file apart)."""
        result = run_main("tumorseg.evaluate", f"data_dir={val}", "runtime=pytorch", f"hydra.run.dir={tmp_path / name}",
                          *args)
        assert result.returncode == 0, result.stderr[-2000:]
        printed = json.loads(result.stdout.strip().splitlines()[-1])
        assert f"threshold {printed['threshold']}, flip TTA {'on' if printed['tta'] else 'off'}, " in result.stdout
        return printed

    tuned = evaluate("tuned", f"ckpt_path={tmp_path / 'tuned.pt'}")
    assert (tuned["threshold"], tuned["tta"]) == (0.3, True)
    explicit = evaluate("explicit", f"ckpt_path={ckpt(trained_run)}", "threshold=0.3", "tta=true")
    assert ({k: v for k, v in tuned.items() if k != "ckpt_path"}
            == {k: v for k, v in explicit.items() if k != "ckpt_path"})
    overridden = evaluate("overridden", f"ckpt_path={tmp_path / 'tuned.pt'}", "tta=false", "threshold=0.5")
    assert (overridden["threshold"], overridden["tta"]) == (0.5, False)
    result = run_main("tumorseg.ship", f"ckpt_path={model}", f"output={tmp_path / 'bad.pt'}", "threshold=1.5")
    assert result.returncode == 2 and "threshold=1.5 must be a float between 0 and 1" in result.stderr


def test_affine_tta_is_a_model_files_choice_and_a_command_setting(trained_run, data_dir, tmp_path):
    ship_main(ckpt(trained_run), tmp_path / "affine.pt", "tta=affine")
    assert torch.load(tmp_path / "affine.pt", weights_only=True)["inference"]["tta"] == "affine"
    val = data_dir / "phantom" / "val"
    result = run_main("tumorseg.evaluate", f"ckpt_path={tmp_path / 'affine.pt'}", f"data_dir={val}",
                      f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["tta"] == "affine" and "affine TTA" in result.stdout
    result = run_main("tumorseg.evaluate", f"ckpt_path={ckpt(trained_run)}", f"data_dir={val}", "tta=rotate",
                      f"hydra.run.dir={tmp_path / 'bad'}")
    assert result.returncode == 2 and "tta=rotate is not one of false, true" in result.stderr


def test_ship_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    result = run_main("tumorseg.ship", f"ckpt_path={bad}", f"output={tmp_path / 'out.pt'}")
    assert_one_error(result)
    assert result.stderr.startswith(f"error: {bad} ")
    assert not (tmp_path / "out.pt").exists()


def perturbed_copy(run, path):
    """The run's last checkpoint with its net's weights moved: a second, different run of the same recipe."""
    content = torch.load(ckpt(run), weights_only=True)
    gen = torch.Generator().manual_seed(1)
    content["state_dict"] = {
        k: v + 0.05 * torch.randn(v.shape, generator=gen) if k.startswith("net.") and v.is_floating_point() else v
        for k, v in content["state_dict"].items()}
    torch.save(content, path)
    return str(path)


def test_ship_ensemble_averages_logits_and_soup_averages_weights(trained_run, data_dir, tmp_path):
    other = perturbed_copy(trained_run, tmp_path / "other.ckpt")
    ship_main(ckpt(trained_run), tmp_path / "ens.pt", f"ensemble=[{other}]", "threshold=0.3", "tta=true")
    ship_main(ckpt(trained_run), tmp_path / "soup.pt", f"soup=[{other}]")
    a, b, ens, soup = (read(p) for p in (ckpt(trained_run), other, tmp_path / "ens.pt", tmp_path / "soup.pt"))
    ra, rb, rens = (runner_for(m, "cpu", "32") for m in (a, b, ens))
    x = torch.randn(2, 1, a.preprocessing.image_size, a.preprocessing.image_size)
    assert not torch.allclose(ra.logits(x), rb.logits(x), atol=1e-3)
    assert torch.allclose(rens.logits(x), (ra.logits(x) + rb.logits(x)) / 2, atol=1e-5)
    assert (ens.stored.threshold, ens.stored.tta, ens.members) == (0.3, True, 2)
    wa, wb, ws = (m.weights for m in (a, b, soup))
    assert all(torch.allclose(ws[k], (wa[k] + wb[k]) / 2) for k in ws if ws[k].is_floating_point())
    result = run_main("tumorseg.evaluate", f"ckpt_path={tmp_path / 'ens.pt'}",
                      f"data_dir={data_dir / 'phantom' / 'val'}", f"hydra.run.dir={tmp_path / 'e'}")
    assert result.returncode == 0 and json.loads(result.stdout.strip().splitlines()[-1])["tta"] is True
    result = run_main("tumorseg.export", f"ckpt_path={tmp_path / 'ens.pt'}", f"output={tmp_path / 'ens.onnx'}",
                     f"hydra.run.dir={tmp_path / 'x'}")
    assert result.returncode == 0 and float(result.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1]) < 1e-4


def test_ship_refuses_to_combine_different_models(trained_run, tmp_path):
    content = torch.load(ckpt(trained_run), weights_only=True)
    content["hyper_parameters"]["run_config"]["data"]["image_size"] = 32
    torch.save(content, tmp_path / "small.ckpt")
    result = run_main("tumorseg.ship", f"ckpt_path={ckpt(trained_run)}", f"output={tmp_path / 'out.pt'}",
                      f"ensemble=[{tmp_path / 'small.ckpt'}]")
    assert_one_error(result, "differs from", "combine runs of one recipe")
    assert not (tmp_path / "out.pt").exists()


def test_ship_writes_only_where_it_is_told(trained_run, tmp_path):
    import hashlib

    from tumorseg.inference.model_file import REFERENCE_MODEL

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    shipped = digest(REFERENCE_MODEL)
    result = run_main("tumorseg.ship", f"ckpt_path={ckpt(trained_run)}")
    assert_one_error(result, "output is not set")
    assert digest(REFERENCE_MODEL) == shipped
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"a file of the user's")
    for args, message in (((f"output={mine}",), "exists: choose another file, or add overwrite=true"),
                          ((f"output={tmp_path}",), "is a folder"),
                          ((f"output={ckpt(trained_run)}", "overwrite=true"), "is one of the files it is made from")):
        result = run_main("tumorseg.ship", f"ckpt_path={ckpt(trained_run)}", *args)
        assert_one_error(result, message)
    assert mine.read_bytes() == b"a file of the user's" and digest(REFERENCE_MODEL) == shipped
    assert torch.load(ckpt(trained_run), weights_only=True)["state_dict"]
    ship_main(ckpt(trained_run), mine, "overwrite=true")
    assert read(mine).preprocessing == read(ckpt(trained_run)).preprocessing
    assert not list(tmp_path.glob("*.part"))


def test_weights_that_do_not_match_their_stored_config_are_one_line(trained_run, data_dir, tmp_path):
    content = torch.load(ckpt(trained_run), weights_only=True)
    content["hyper_parameters"]["run_config"]["model"]["base_channels"] *= 2  # a hand-edited file
    torch.save(content, tmp_path / "edited.ckpt")
    result = run_main("tumorseg.evaluate", f"ckpt_path={tmp_path / 'edited.ckpt'}",
                      f"data_dir={data_dir / 'phantom' / 'val'}", f"hydra.run.dir={tmp_path / 'e'}")
    assert_one_error(result)
    assert "edited.ckpt: its weights do not match its stored model config" in result.stderr
