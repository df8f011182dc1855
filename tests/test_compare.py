"""tumorseg compare: results paired by fold and subject, the statistics scipy gives, a rule's verdict and its date;
and evaluate thresholds=[...], which compare reads, equal to separate evaluate runs."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.conftest import REPO, assert_one_error, run_main
from tumorseg.scoring.comparison import subject_stats
from tumorseg.scoring.result import Result

SUBJECTS = {"0": ["s1", "s2", "s3", "s4"], "1": ["s5", "s6", "s7", "s8"], "2": ["s9", "s10", "s11", "s12"]}


def evaluate_output(folder: Path, dice: dict[str, float], whole: float) -> Path:
    """An evaluate output folder (metrics.json as evaluate writes it) with these Dice by subject."""
    per_subject = {name: {"dice": d, "precision": d, "recall": d, "n_images": 5} for name, d in dice.items()}
    figures = {"dice": whole, "dice_per_subject": float(np.mean(list(dice.values()))),
               "n_images": 5 * len(dice), "n_subjects": len(dice)}
    result = Result("slices", str(folder / "data"), "model.pt", figures, {"threshold": 0.3}, per_subject)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(result.to_json(), indent=2))
    return folder


def method(root: Path, gain: float, whole_gain: float = 0.0, folds=("0", "1", "2")) -> Path:
    """A method's evaluate outputs on CV folds (root/fold<N>/metrics.json): the base Dice of each subject plus gain."""
    for fold in folds:
        base = {name: 0.3 + 0.05 * i for i, name in enumerate(SUBJECTS[fold])}
        evaluate_output(root / f"fold{fold}", {k: v + gain for k, v in base.items()}, 0.5 + whole_gain)
    return root


def rule(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


RULE = "folds: [0, 1, 2]\nmin_per_subject_gain: 0.01\nmin_whole_image_gain: 0.0\nmin_folds_better: 2\n"


def compare(tmp_path: Path, *args: str):
    return run_main("tumorseg.compare", *args, f"output={tmp_path / 'out'}")


def test_a_known_gain_is_kept_and_written(tmp_path):
    a, b = method(tmp_path / "a", 0.0), method(tmp_path / "b", 0.03, whole_gain=0.01)
    result = compare(tmp_path, f"a={a}", f"b={b}", f"rule={rule(tmp_path / 'rule.yaml', RULE)}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "KEPT"
    record = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert [f["fold"] for f in record["folds"]] == ["0", "1", "2"]
    assert all(f["per_subject"]["difference"] == pytest.approx(0.03) for f in record["folds"])
    assert all(f["whole_image"]["difference"] == pytest.approx(0.01) for f in record["folds"])
    assert record["folds_b_better"] == ["0", "1", "2"]
    assert record["subjects"]["n"] == 12 and record["subjects"]["mean_difference"] == pytest.approx(0.03)
    assert record["decision"]["verdict"] == "KEPT"
    assert "**KEPT**" in (tmp_path / "out" / "compare.md").read_text()


def test_no_gain_is_not_kept_and_all_zero_differences_are_handled(tmp_path):
    a, b = method(tmp_path / "a", 0.0), method(tmp_path / "b", 0.0)
    result = compare(tmp_path, f"a={a}", f"b={b}", f"rule={rule(tmp_path / 'rule.yaml', RULE)}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "NOT KEPT"
    record = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert record["subjects"]["wilcoxon_p"] == 1.0
    assert (record["subjects"]["bootstrap_95_low"], record["subjects"]["bootstrap_95_high"]) == (0.0, 0.0)
    assert "per-subject Dice gain +0.0000 (mean over folds 0, 1, 2), needs >= +0.0100: NOT met" in result.stdout


def test_a_gain_on_too_few_folds_is_not_kept(tmp_path):
    b = tmp_path / "b"
    for fold, gain in (("0", 0.2), ("1", -0.01), ("2", -0.01)):  # a large mean gain carried by one fold
        evaluate_output(b / f"fold{fold}", {n: 0.3 + gain for n in SUBJECTS[fold]}, 0.6)
        evaluate_output(tmp_path / "a2" / f"fold{fold}", {n: 0.3 for n in SUBJECTS[fold]}, 0.5)
    result = compare(tmp_path, f"a={tmp_path / 'a2'}", f"b={b}", f"rule={rule(tmp_path / 'rule.yaml', RULE)}")
    assert result.stdout.strip().splitlines()[-1] == "NOT KEPT", result.stderr
    assert "b better per subject on 1 of 3 folds (0), needs >= 2: NOT met" in result.stdout


def test_mismatched_pairs_are_refused_in_one_line(tmp_path):
    a = method(tmp_path / "a", 0.0)
    missing = method(tmp_path / "missing", 0.02, folds=("0", "1"))
    assert_one_error(compare(tmp_path, f"a={a}", f"b={missing}"), "fold 2 is in a=", "missing from b=", str(missing))
    other = method(tmp_path / "other", 0.02, folds=("0", "1"))
    evaluate_output(other / "fold2", {"s9": 0.3, "s10": 0.3, "s11": 0.3, "x99": 0.3}, 0.5)
    assert_one_error(compare(tmp_path, f"a={a}", f"b={other}"), "fold 2: a and b scored different subjects",
                     "s12 only in", "x99 only in")
    lone_a = evaluate_output(tmp_path / "run-fold0", {"s1": 0.3}, 0.5)
    lone_b = evaluate_output(tmp_path / "run-fold1", {"s1": 0.3}, 0.5)
    assert_one_error(compare(tmp_path, f"a={lone_a}", f"b={lone_b}"), "holds fold 0", "fold 1")
    assert_one_error(compare(tmp_path, f"a={a}", f"b={tmp_path / 'nowhere'}"), "b=", "does not exist")
    assert not (tmp_path / "out").exists()


def test_a_sweep_of_training_runs_pairs_by_its_recorded_fold(tmp_path):
    """Training runs record their fold in .hydra/config.yaml and only per-fold means: the folds decide, and the
    subject statistics are said to be unavailable."""
    for side, gain in (("a", 0.0), ("b", 0.05)):
        for job, fold in enumerate((1, 0)):  # job numbers are not folds
            run = tmp_path / side / str(job)
            (run / ".hydra").mkdir(parents=True)
            (run / ".hydra" / "config.yaml").write_text(
                f"approach:\n  name: cv\n  k: 5\n  fold: {fold}\n  random_state: 42\n")
            figures = {"test/dice": 0.5 + gain, "test/dice_per_subject": 0.4 + gain}
            (run / "metrics.json").write_text(json.dumps(figures))
    result = compare(tmp_path, f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}",
                     f"rule={rule(tmp_path / 'rule.yaml', 'min_per_subject_gain: 0.01')}")
    assert result.stdout.strip().splitlines()[-1] == "KEPT", result.stderr
    assert "Per-subject statistics: not available" in result.stdout
    assert [f["fold"] for f in json.loads((tmp_path / "out" / "compare.json").read_text())["folds"]] == ["0", "1"]


def test_the_interval_and_p_value_are_scipys():
    d = np.array([0.05, -0.02, 0.11, 0.0, 0.07, 0.03, -0.01, 0.09, 0.04, 0.12])
    ours = subject_stats(d, seed=3)
    theirs = stats.bootstrap((d,), np.mean, confidence_level=0.95, rng=np.random.default_rng(3))
    assert (ours.low, ours.high) == (theirs.confidence_interval.low, theirs.confidence_interval.high)
    assert ours.wilcoxon_p == stats.wilcoxon(d).pvalue
    assert ours.mean == pytest.approx(d.mean()) and ours.low < ours.mean < ours.high
    assert subject_stats(d, seed=3) == ours  # the seed fixes the interval


@pytest.mark.parametrize("d", [[0.2], [0.2, 0.1]])
def test_too_few_subjects_give_the_mean_alone_never_a_point_interval(d):
    # one subject's "interval" was [mean, mean] and its p 1.0: they read as evidence
    ours = subject_stats(np.array(d), seed=0)
    assert (ours.low, ours.high, ours.wilcoxon_p) == (None, None, None)
    assert ours.mean == pytest.approx(np.mean(d)) and "too few" in ours.note


def test_a_wilcoxon_that_cannot_reach_005_says_so():
    ours = subject_stats(np.array([0.05, 0.02, 0.11, 0.07]), seed=0)
    assert ours.low is not None and ours.wilcoxon_p == pytest.approx(0.125)
    assert "cannot fall below 0.05" in ours.note


def test_one_subject_a_side_is_compared_by_its_mean_alone(tmp_path):
    a = evaluate_output(tmp_path / "a" / "fold0", {"s1": 0.4}, 0.5).parent
    b = evaluate_output(tmp_path / "b" / "fold0", {"s1": 0.6}, 0.5).parent
    result = compare(tmp_path, f"a={a}", f"b={b}")
    assert result.returncode == 0, result.stderr
    assert "Over 1 subject(s), b - a Dice by subject: mean +0.2000 (1 subject(s): too few" in result.stdout
    record = json.loads((tmp_path / "out" / "compare.json").read_text())["subjects"]
    assert (record["bootstrap_95_low"], record["wilcoxon_p"]) == (None, None)


def test_the_rule_files_date_against_the_first_result(tmp_path):
    a, b = method(tmp_path / "a", 0.0), method(tmp_path / "b", 0.03)
    first = min(p.stat().st_mtime for p in tmp_path.rglob("metrics.json"))
    path = rule(tmp_path / "rule.yaml", RULE)
    for mtime, predates in ((first - 3600, True), (first + 3600, False)):
        os.utime(path, (mtime, mtime))
        result = compare(tmp_path, f"a={a}", f"b={b}", f"rule={path}", "overwrite=true")
        decision = json.loads((tmp_path / "out" / "compare.json").read_text())["decision"]
        assert decision["rule_predates_results"] is predates, result.stderr
        assert ("before the first results file" if predates else "NOT before the first results file") in result.stdout


@pytest.mark.parametrize("text, fragments", [
    ("min_gain: 0.01\n", ["'min_gain' is not a rule key"]),
    ("min_per_subject_gain: lots\n", ["'min_per_subject_gain' must be a number"]),
    ("min_folds_better: 1.5\n", ["'min_folds_better' must be a whole number"]),
    ("folds: 0\nmin_folds_better: 1\n", ["'folds' must be a list"]),
    ("folds: [7]\nmin_folds_better: 1\n", ["'folds' names fold 7"]),
    ("folds: [0]\n", ["sets no criterion"]),
    ("[unclosed\n", ["is not readable YAML"]),
])
def test_a_malformed_rule_is_one_line_naming_the_key(tmp_path, text, fragments):
    a, b = method(tmp_path / "a", 0.0), method(tmp_path / "b", 0.03)
    assert_one_error(compare(tmp_path, f"a={a}", f"b={b}", f"rule={rule(tmp_path / 'rule.yaml', text)}"), *fragments)


@pytest.mark.parametrize("experiment, a, b, verdict", [
    ("seed-ensemble", "lite-net/eval/fold*.json", "seed-ensemble/eval/ensemble-fold*.json", "KEPT"),
    ("crop-ensemble", "seed-ensemble/eval/ensemble-fold*.json", "crop-ensemble/eval/ensemble-fold*.json", "NOT KEPT"),
])
def test_compare_reproduces_recorded_decisions(tmp_path, experiment, a, b, verdict):
    lung = REPO / "experiments" / "lung"
    result = compare(tmp_path, f"a={lung / a}", f"b={lung / b}", f"rule={lung / experiment / 'rule.yaml'}")
    assert result.stdout.strip().splitlines()[-1] == verdict, result.stderr
    recorded = (lung / experiment / "compare" / "compare.md").read_text()
    assert f"**{verdict}**" in recorded
    figures = [line for line in result.stdout.splitlines() if line.startswith(("| 0 ", "| 1 ", "- "))]
    assert figures and all(line in recorded for line in figures if "gain" in line or line.startswith("|"))


@pytest.mark.trains
def test_evaluate_thresholds_equal_separate_runs(trained_run, data_dir, tmp_path):
    """One pass of the net scores every threshold of thresholds=[...] exactly as a separate evaluate run at it,
    through the 3D seeds and the small-component removal."""
    common = [f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}", f"data_dir={data_dir / 'phantom' / 'val'}",
              "precision=32", "runtime=pytorch", "viewer=false", "postprocess.seed_threshold=0.6",
              "postprocess.min_size=3"]
    result = run_main("tumorseg.evaluate", *common, "thresholds=[0.2,0.5]", f"hydra.run.dir={tmp_path / 'multi'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "metrics_t0.2.json" in result.stdout
    figures = {}
    for t in ("0.2", "0.5"):
        single = run_main("tumorseg.evaluate", *common, f"threshold={t}", f"hydra.run.dir={tmp_path / t}")
        assert single.returncode == 0, single.stderr[-2000:]
        figures[t] = (tmp_path / "multi" / f"metrics_t{t}.json").read_text()
        assert figures[t] == (tmp_path / t / "metrics.json").read_text()
        assert json.loads(figures[t])["threshold"] == float(t)
    assert json.loads(figures["0.2"])["subjects"] != json.loads(figures["0.5"])["subjects"]  # the thresholds differ
    checked = run_main("tumorseg.compare", f"a={tmp_path / 'multi' / 'metrics_t0.5.json'}",
                       f"b={tmp_path / 'multi' / 'metrics_t0.2.json'}", f"output={tmp_path / 'cmp'}")
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("text, fragments", [
    ("min_per_subject_gain: .nan\n", ["'min_per_subject_gain' must be a number between -1 and 1", "nan"]),
    ("min_whole_image_gain: .inf\n", ["'min_whole_image_gain' must be a number between -1 and 1", "inf"]),
    ("min_per_subject_gain: 2\n", ["'min_per_subject_gain' must be a number between -1 and 1"]),
])
def test_a_gain_that_is_no_dice_difference_is_refused(tmp_path, text, fragments):
    """A NaN gain would never be met (NaN compares false): a rule that cannot decide is refused, not NOT KEPT."""
    a, b = method(tmp_path / "a", 0.0), method(tmp_path / "b", 0.03)
    assert_one_error(compare(tmp_path, f"a={a}", f"b={b}", f"rule={rule(tmp_path / 'rule.yaml', text)}"), *fragments)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where, value", [("subject", float("nan")), ("subject", 1.5), ("whole", float("inf")),
                                          ("whole", -0.1)])
def test_a_dice_that_is_no_dice_is_refused_naming_the_file(tmp_path, where, value):
    """A results file whose Dice is NaN, infinite or outside [0, 1] would make figures (and compare.json) wrong."""
    a, b = method(tmp_path / "a", 0.0), method(tmp_path / "b", 0.03)
    broken = b / "fold1" / "metrics.json"
    figures = json.loads(broken.read_text())
    if where == "subject":
        figures["subjects"]["s6"]["dice"] = value
    else:
        figures["dice"] = value
    broken.write_text(json.dumps(figures))
    what = "the Dice of 's6' under 'subjects'" if where == "subject" else "'dice'"
    assert_one_error(compare(tmp_path, f"a={a}", f"b={b}"), str(broken), what, "not a Dice between 0 and 1")
    assert not (tmp_path / "out").exists()


def test_thresholds_is_a_list_and_each_threshold_has_its_own_file(data_dir, tmp_path):
    """A lone number is refused in one line (not a traceback); thresholds that print alike at 6 digits each get
    their own file, named by the threshold itself (never 0.999999999 as metrics_t1.json)."""
    common = [f"data_dir={data_dir / 'phantom' / 'val'}", "tta=false", "viewer=false", "runtime=onnxruntime",
              f"ckpt_path={REPO / 'tumorseg' / 'reference' / 'lung_unet.int8.onnx'}"]
    lone = run_main("tumorseg.evaluate", *common, "thresholds=0.3", f"hydra.run.dir={tmp_path / 'lone'}")
    assert_one_error(lone, "thresholds=0.3 must be a list of thresholds between 0 and 1")
    close = ["0.3", "0.30000001", "0.999999999"]
    result = run_main("tumorseg.evaluate", *common, f"thresholds=[{','.join(close)}]",
                      f"hydra.run.dir={tmp_path / 'close'}")
    assert result.returncode == 0, result.stderr[-2000:]
    for t in close:
        assert json.loads((tmp_path / "close" / f"metrics_t{t}.json").read_text())["threshold"] == float(t)
