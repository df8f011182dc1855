"""A decision rule written before the results (a small YAML file) applied to a comparison: KEPT or NOT KEPT, with
the reasons, and whether the rule file was last modified before the first results file read.

    folds: [0, 1]                # the folds that decide (default: every fold compared)
    min_per_subject_gain: 0.01   # mean over those folds of b - a per-subject Dice
    min_whole_image_gain: 0.0    # mean over those folds of b - a whole-image Dice
    min_folds_better: 2          # folds where b's per-subject Dice is above a's
"""

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from tumorseg.errors import UserError
from tumorseg.scoring.comparison import Comparison, FoldPair, timestamp

GAINS = ("min_per_subject_gain", "min_whole_image_gain")
EXAMPLE = "min_per_subject_gain: 0.01"


@dataclass(frozen=True)
class Rule:
    """The rule file's path and modification time, the deciding folds (None: all) and its minimums (None: not
    required)."""

    path: Path
    mtime: float
    folds: tuple[str, ...] | None
    min_per_subject_gain: float | None
    min_whole_image_gain: float | None
    min_folds_better: int | None


@dataclass(frozen=True)
class Decision:
    """KEPT or not, each criterion in words, the folds that decided, and when the rule and the results were
    last modified."""

    kept: bool
    reasons: list[str]
    folds: list[str]
    rule: Rule
    first_result_mtime: float

    @property
    def rule_predates_results(self) -> bool:
        return self.rule.mtime < self.first_result_mtime

    def to_json(self) -> dict:
        """compare.json's decision block."""
        return {"rule": str(self.rule.path), "verdict": "KEPT" if self.kept else "NOT KEPT", "reasons": self.reasons,
                "folds": self.folds, "rule_modified": timestamp(self.rule.mtime),
                "first_result_modified": timestamp(self.first_result_mtime),
                "rule_predates_results": self.rule_predates_results}


def read_rule(path: Path) -> Rule:
    """The rule of a YAML file; an unknown key or a value of the wrong kind is one UserError naming the key."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"rule={path} is not a file: write the rule as YAML, e.g. {EXAMPLE}")
    try:
        loaded = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        raise UserError(f"rule={path} is not readable YAML ({type(err).__name__}): write it as key: value lines, "
                        f"e.g. {EXAMPLE}") from None
    if not isinstance(loaded, dict) or not loaded:
        raise UserError(f"rule={path} is not a YAML mapping of criteria: e.g. {EXAMPLE}")
    known = ("folds", *GAINS, "min_folds_better")
    for key in loaded:
        if key not in known:
            raise UserError(f"rule={path}: '{key}' is not a rule key: use {', '.join(known)}")
    gains = {key: loaded.get(key) for key in GAINS}
    for key, value in gains.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not (math.isfinite(value) and -1 <= value <= 1)):
            raise UserError(f"rule={path}: '{key}' must be a number between -1 and 1 (a Dice difference, e.g. 0.01), "
                            f"not {value!r}")
    better = loaded.get("min_folds_better")
    if better is not None and (isinstance(better, bool) or not isinstance(better, int) or better < 0):
        raise UserError(f"rule={path}: 'min_folds_better' must be a whole number >= 0, not {better!r}")
    folds = loaded.get("folds")
    if folds is not None and (not isinstance(folds, list) or not folds
                              or not all(isinstance(f, (int, str)) and not isinstance(f, bool) for f in folds)):
        raise UserError(f"rule={path}: 'folds' must be a list of folds, e.g. folds: [0, 1], not {folds!r}")
    if all(v is None for v in (*gains.values(), better)):
        raise UserError(f"rule={path} sets no criterion: give {', '.join(known[1:])}")
    return Rule(path, path.stat().st_mtime, None if folds is None else tuple(str(f) for f in folds),
                *(None if v is None else float(v) for v in gains.values()), better)


def deciding(rule: Rule, comparison: Comparison) -> list[FoldPair]:
    """The fold pairs the rule names (all when it names none); a fold not compared is a UserError."""
    if rule.folds is None:
        return comparison.folds
    compared = {p.fold: p for p in comparison.folds}
    for fold in rule.folds:
        if fold not in compared:
            raise UserError(f"rule={rule.path}: 'folds' names fold {fold}, which a and b do not hold (they hold "
                            f"{', '.join(compared)})")
    return [compared[f] for f in rule.folds]


def decide(rule: Rule, comparison: Comparison) -> Decision:
    """Apply the rule: each criterion met or not, in words; KEPT only if every one is met."""
    pairs, checks = deciding(rule, comparison), []
    names = ", ".join(p.fold for p in pairs)
    if rule.min_per_subject_gain is not None:
        gain = sum(p.per_subject_gain for p in pairs) / len(pairs)
        checks.append((gain >= rule.min_per_subject_gain, f"per-subject Dice gain {gain:+.4f} (mean over folds "
                                                          f"{names}), needs >= {rule.min_per_subject_gain:+.4f}"))
    if rule.min_whole_image_gain is not None:
        if any(p.whole_gain is None for p in pairs):
            raise UserError(f"rule={rule.path}: 'min_whole_image_gain' needs whole-image Dice, which CT volume results "
                            f"(per case) do not have: leave the key out")
        gain = sum(p.whole_gain for p in pairs) / len(pairs)
        checks.append((gain >= rule.min_whole_image_gain, f"whole-image Dice gain {gain:+.4f} (mean over folds "
                                                          f"{names}), needs >= {rule.min_whole_image_gain:+.4f}"))
    if rule.min_folds_better is not None:
        better = [p.fold for p in pairs if p.per_subject_gain > 0]
        checks.append((len(better) >= rule.min_folds_better,
                       f"b better per subject on {len(better)} of {len(pairs)} folds ({', '.join(better) or 'none'}), "
                       f"needs >= {rule.min_folds_better}"))
    reasons = [f"{text}: {'met' if ok else 'NOT met'}" for ok, text in checks]
    return Decision(all(ok for ok, _ in checks), reasons, [p.fold for p in pairs], rule,
                    comparison.first_result_mtime)
