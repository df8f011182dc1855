"""tumorseg report: runs, sweeps and cross-validated folds as one table; odd run dirs sorted or named in one line."""

import json

from tests.conftest import assert_one_error, report


def test_report_summarizes_each_cross_validated_setting_apart(tmp_path):
    for recipe, ema in (("A", None), ("D", {"_target_": "tumorseg.training.callbacks.EMAWeights"})):
        for fold, dice in enumerate((0.2, 0.4)):
            run = tmp_path / f"cv-{recipe}-{fold}"
            (run / ".hydra").mkdir(parents=True)
            config = {"approach": {"name": "cv", "fold": fold, "k": 2}, "callbacks": {"ema": ema},
                      "model": {"base_channels": 16}, "paths": {"output_dir": str(run)}}
            (run / ".hydra/config.yaml").write_text(json.dumps(config))
            (run / "metrics.json").write_text(json.dumps({"test/dice": dice + (recipe == "D") * 0.1}))
    table = report([tmp_path]).strip().splitlines()
    summaries = [line for line in table if "mean ± std" in line]
    assert [line.split("|")[1].strip() for line in summaries] == ["cv-A: mean ± std over 2 folds",
                                                                  "cv-D: mean ± std over 2 folds"]
    assert "0.3000 ± 0.1414" in summaries[0] and "0.4000 ± 0.1414" in summaries[1]


def test_report_of_odd_run_dirs_is_a_table_or_one_line(tmp_path):
    from tests.conftest import run_main

    for name, content in (("0", '{"val/dice": 0.5}'), ("abc", '{"val/dice": 0.6}'), ("10", '{"val/dice": 0.7}'),
                          ("2", '{"val/dice": 0.8}')):
        (tmp_path / "sweep" / name).mkdir(parents=True)
        (tmp_path / "sweep" / name / "metrics.json").write_text(content)
    rows = report([tmp_path / "sweep"]).strip().splitlines()[2:]  # under the header and its rule
    assert [r.split("|")[1].strip().rsplit("/", 1)[-1] for r in rows] == ["0", "2", "10", "abc"]
    result = run_main("tumorseg.report", f"runs={tmp_path / 'sweep'}", f"out={tmp_path}")
    assert_one_error(result, f"out={tmp_path} is a folder")
    (tmp_path / "sweep/abc/metrics.json").write_text("{not json")
    result = run_main("tumorseg.report", f"runs={tmp_path / 'sweep'}")
    assert_one_error(result, "sweep/abc/metrics.json cannot be read as JSON")
