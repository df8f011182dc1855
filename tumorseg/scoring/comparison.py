"""Two methods' results paired by fold and by subject, and what the pairs say: per fold the whole-image and
per-subject Dice of a and b and their difference; over all subjects the mean paired difference (b - a) with a
bootstrap 95% interval (scipy.stats.bootstrap, seeded) and the Wilcoxon signed-rank p-value (scipy.stats.wilcoxon).
"""

import datetime
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from tumorseg.errors import UserError
from tumorseg.scoring.recorded import FoldResult, by_fold, read_side

CONFIDENCE = 0.95

# Below this many subjects a bootstrap interval is a handful of resampled means (2 subjects: 3 values) and the
# Wilcoxon test has no p under 0.25 (two-sided, exact): both would look like evidence and are not.
MIN_SUBJECTS = 3

# With this many subjects or fewer the exact two-sided Wilcoxon p is never below 0.05 (5 subjects: 2/32 = 0.0625).
WILCOXON_POWERLESS = 5


@dataclass(frozen=True)
class FoldPair:
    """One fold's results of a and b, on the same subjects."""

    fold: str
    a: FoldResult
    b: FoldResult

    @property
    def whole_gain(self) -> float | None:
        """b - a whole-image Dice (None for CT volumes)."""
        return None if self.a.whole is None or self.b.whole is None else self.b.whole - self.a.whole

    @property
    def per_subject_gain(self) -> float:
        """b - a per-subject Dice (the mean over the fold's subjects)."""
        return self.b.per_subject - self.a.per_subject

    def differences(self) -> dict[str, float]:
        """b - a Dice by subject, in name order ({} where a side records only the mean)."""
        if self.a.subjects is None or self.b.subjects is None:
            return {}
        return {name: self.b.subjects[name] - self.a.subjects[name] for name in sorted(self.a.subjects)}

    def check_same_subjects(self) -> None:
        """Refuse a pair scored on different subjects (or slices), or one whose subjects cannot be matched."""
        a, b = self.a, self.b
        if a.subjects is not None and b.subjects is not None:
            only_a, only_b = sorted(set(a.subjects) - set(b.subjects)), sorted(set(b.subjects) - set(a.subjects))
            if only_a or only_b:
                where = ", ".join(f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''} only in {side}"
                                  for names, side in ((only_a, a.files[0]), (only_b, b.files[0])) if names)
                raise UserError(f"fold {self.fold}: a and b scored different subjects ({where}): compare results of "
                                f"the same subjects")
        known = None not in a.scored + b.scored and a.scored[0] == b.scored[0]
        if known and a.scored != b.scored:
            raise UserError(f"fold {self.fold}: a ({a.files[0]}) and b ({b.files[0]}) scored different data "
                            f"({a.scored[1:]} against {b.scored[1:]}): compare results of the same subjects")
        if (a.subjects is None or b.subjects is None) and not known:
            lacking = a if a.subjects is None else b
            raise UserError(f"fold {self.fold}: {lacking.files[0]} records no Dice by subject and what it scored "
                            f"cannot be matched with the other side's: compare evaluate outputs of the same subjects")


@dataclass(frozen=True)
class SubjectStats:
    """The paired per-subject differences over every fold: n, mean, bootstrap interval, Wilcoxon p."""

    n: int
    mean: float
    low: float | None
    high: float | None
    wilcoxon_p: float | None
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """a and b (as given), their fold pairs in fold order, the subject statistics (None when a side records only
    its folds' per-subject means) and the bootstrap seed."""

    a: list[str]
    b: list[str]
    folds: list[FoldPair]
    stats: SubjectStats | None
    seed: int

    @property
    def folds_b_better(self) -> list[str]:
        """The folds where b's per-subject Dice is above a's."""
        return [p.fold for p in self.folds if p.per_subject_gain > 0]

    @property
    def first_result_mtime(self) -> float:
        """The earliest modification time of the results files read."""
        return min(f.stat().st_mtime for p in self.folds for r in (p.a, p.b) for f in r.files)

    def to_json(self) -> dict:
        """compare.json's figures (without the decision), to 6 decimals as metrics.json."""
        s = self.stats
        return {
            "a": self.a, "b": self.b,
            "folds": [{"fold": p.fold, "subjects": None if p.a.subjects is None else len(p.a.subjects),
                       "a_files": [str(f) for f in p.a.files], "b_files": [str(f) for f in p.b.files],
                       "whole_image": rounded({"a": p.a.whole, "b": p.b.whole, "difference": p.whole_gain}),
                       "per_subject": rounded({"a": p.a.per_subject, "b": p.b.per_subject,
                                               "difference": p.per_subject_gain}),
                       "differences": rounded(p.differences())} for p in self.folds],
            "folds_b_better": self.folds_b_better,
            "subjects": None if s is None else {
                "n": s.n, **rounded({"mean_difference": s.mean, "bootstrap_95_low": s.low,
                                     "bootstrap_95_high": s.high}),
                "bootstrap_seed": self.seed, "wilcoxon_p": s.wilcoxon_p, "note": s.note},
            "first_result_modified": timestamp(self.first_result_mtime),
        }


def rounded(figures: dict[str, float | None]) -> dict[str, float | None]:
    """Figures to 6 decimals (None stays)."""
    return {k: None if v is None else round(v, 6) for k, v in figures.items()}


def timestamp(mtime: float) -> str:
    """A modification time in UTC, ISO 8601 to the microsecond."""
    return datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).isoformat()


def fold_order(fold: str) -> tuple:
    """Folds as numbers (2 before 10), then named ones."""
    return (0, int(fold), "") if fold.isdigit() else (1, 0, fold)


def pair(a: list[FoldResult], b: list[FoldResult], a_given: str, b_given: str) -> list[FoldPair]:
    """The fold pairs of a and b: the same folds, each on the same subjects, else a UserError naming the side and
    the fold. A lone result on each side is one pair (unless the two name different folds)."""
    fa, fb = by_fold(a, f"a={a_given}"), by_fold(b, f"b={b_given}")
    if len(fa) == len(fb) == 1:
        (ka, ra), (kb, rb) = *fa.items(), *fb.items()
        if ka is not None and kb is not None and ka != kb:
            raise UserError(f"a={a_given} holds fold {ka} and b={b_given} fold {kb}: compare results of the same fold")
        pairs = [FoldPair(ka or kb or "all", ra, rb)]
    else:
        for mine, other, name, other_name in ((fa, fb, f"a={a_given}", f"b={b_given}"),
                                              (fb, fa, f"b={b_given}", f"a={a_given}")):
            missing = [k for k in other if k not in mine]
            if missing:
                raise UserError(f"fold {missing[0]} is in {other_name} ({other[missing[0]].files[0]}) but missing from "
                                f"{name}: compare the same folds on both sides")
        pairs = [FoldPair(k, fa[k], fb[k]) for k in sorted(fa, key=fold_order)]
    for p in pairs:
        p.check_same_subjects()
    return pairs


def subject_stats(differences: np.ndarray, seed: int) -> SubjectStats:
    """Mean of the paired differences, its bootstrap 95% interval (BCa, seeded; percentile where BCa is undefined)
    and the two-sided Wilcoxon signed-rank p (zero differences dropped; 1.0 when every difference is zero); below
    MIN_SUBJECTS subjects the mean alone, interval and p None, and the note says why."""
    d = np.asarray(differences, dtype=float)
    mean, notes = float(d.mean()), []
    if len(d) < MIN_SUBJECTS:
        return SubjectStats(len(d), mean, None, None, None,
                            f"{len(d)} subject(s): too few for a bootstrap interval or a Wilcoxon test "
                            f"({MIN_SUBJECTS} at least)")
    if np.all(d == d[0]):  # every resample has this mean: the interval is the point (scipy's BCa would divide by 0)
        low = high = mean
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = interval(d, seed, "BCa")
        if not (np.isfinite(low) and np.isfinite(high)):
            low, high = interval(d, seed, "percentile")
            notes.append("bootstrap interval by percentiles (BCa undefined for these differences)")
    if not np.any(d):
        p = 1.0
        notes.append("every subject's difference is zero")
    else:
        p = float(stats.wilcoxon(d).pvalue)
        if np.count_nonzero(d) <= WILCOXON_POWERLESS:
            notes.append(f"with {np.count_nonzero(d)} non-zero differences the Wilcoxon p cannot fall below 0.05")
    return SubjectStats(len(d), mean, low, high, p, "; ".join(notes))


def interval(d: np.ndarray, seed: int, method: str) -> tuple[float, float]:
    """scipy's bootstrap 95% interval of the mean of d."""
    result = stats.bootstrap((d,), np.mean, confidence_level=CONFIDENCE, method=method,
                             rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def compare(a: list[str], b: list[str], seed: int = 0) -> Comparison:
    """Read both sides (each a list of paths or glob patterns), pair them and compute the figures."""
    a_given, b_given = ",".join(a), ",".join(b)
    pairs = pair(read_side(a, "a"), read_side(b, "b"), a_given, b_given)
    if any(not p.differences() for p in pairs):  # a side that records only its folds' means
        return Comparison(a, b, pairs, None, seed)
    differences = np.array([d for p in pairs for d in p.differences().values()])
    return Comparison(a, b, pairs, subject_stats(differences, seed), seed)
