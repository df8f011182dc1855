"""What `tumorseg compare` shows and leaves: the comparison (and the rule's decision) as Markdown, and
compare.md + compare.json written into the output folder through files.output_files."""

import json
from pathlib import Path

from tumorseg.files.output_files import OutputFiles
from tumorseg.scoring.comparison import Comparison, timestamp
from tumorseg.scoring.decision_rule import Decision

FILES = ("compare.md", "compare.json")


def figure(value: float | None, signed: bool = False) -> str:
    """A Dice (or difference) with four decimals; n/a for none."""
    return "n/a" if value is None else f"{value:+.4f}" if signed else f"{value:.4f}"


def fold_table(comparison: Comparison) -> list[str]:
    """One row per fold: subjects, whole-image and per-subject Dice of a and b and b - a."""
    lines = ["| fold | subjects | whole-image a | whole-image b | b - a | per subject a | per subject b | b - a |",
             "|---|---|---|---|---|---|---|---|"]
    for p in comparison.folds:
        count = len(p.differences()) or (p.a.scored[1] if p.a.scored[0] == "slices" else None)
        lines.append(f"| {p.fold} | {count or 'n/a'} | {figure(p.a.whole)} | {figure(p.b.whole)} "
                     f"| {figure(p.whole_gain, True)} | {figure(p.a.per_subject)} | {figure(p.b.per_subject)} "
                     f"| {figure(p.per_subject_gain, True)} |")
    return lines


def decision_lines(decision: Decision) -> list[str]:
    """The verdict, each criterion, and when the rule and the first result were last modified."""
    when = "before" if decision.rule_predates_results else "NOT before"
    return ["", f"**{'KEPT' if decision.kept else 'NOT KEPT'}** by rule {decision.rule.path} "
                f"(folds {', '.join(decision.folds)}):", "",
            *(f"- {reason}" for reason in decision.reasons), "",
            f"The rule file was last modified {timestamp(decision.rule.mtime)}, {when} the first results file read "
            f"({timestamp(decision.first_result_mtime)})."]


def subject_line(comparison: Comparison) -> str:
    """The paired per-subject differences in words: mean, bootstrap interval, Wilcoxon p."""
    s = comparison.stats
    if s is None:
        return ("Per-subject statistics: not available (a side records only its folds' per-subject means, no Dice "
                "by subject).")
    if s.low is None:
        return f"Over {s.n} subject(s), b - a Dice by subject: mean {s.mean:+.4f} ({s.note})."
    return (f"Over {s.n} subjects, b - a Dice by subject: mean {s.mean:+.4f}, bootstrap 95% interval "
            f"[{s.low:+.4f}, {s.high:+.4f}] (seed {comparison.seed}), Wilcoxon signed-rank p = {s.wilcoxon_p:.4g}"
            f"{f' ({s.note})' if s.note else ''}.")


def markdown(comparison: Comparison, decision: Decision | None) -> str:
    """compare.md: what was compared, the fold table, the subject statistics, the folds b wins, the decision."""
    better = comparison.folds_b_better
    lines = ["# tumorseg compare", "", f"- a: {', '.join(comparison.a)}", f"- b: {', '.join(comparison.b)}", "",
             *fold_table(comparison), "", subject_line(comparison), "",
             f"b beats a (per-subject Dice) on {len(better)} of {len(comparison.folds)} folds"
             f"{': ' + ', '.join(better) if better else ''}."]
    if decision is not None:
        lines += decision_lines(decision)
    return "\n".join(lines) + "\n"


def write_comparison(out_dir: Path, comparison: Comparison, decision: Decision | None, overwrite: bool) -> list[Path]:
    """compare.md and compare.json in out_dir, both claimed before either is written; their paths."""
    written = OutputFiles(out_dir, overwrite=overwrite, option="output")
    paths = [Path(out_dir) / name for name in FILES]
    written.claim(paths)
    record = {**comparison.to_json(), "decision": None if decision is None else decision.to_json()}
    written.text(paths[0], markdown(comparison, decision))
    written.text(paths[1], json.dumps(record, indent=2) + "\n")
    return paths
