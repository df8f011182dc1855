"""Split rules: subject-grouped by default, so no subject is on both sides of a split."""

from collections.abc import Sequence

from sklearn.model_selection import GroupKFold, GroupShuffleSplit, train_test_split

from tumorseg.errors import UserError


def split_indices(
    subjects: Sequence[str],
    test_size: float,
    random_state: int = 42,
    group_by: str | None = "subject",
) -> tuple[list[int], list[int]]:
    """Indices (keep, held_out) with about `test_size` of the data held out.

    group_by="subject" holds out whole subjects (GroupShuffleSplit); group_by=None holds out
    single slices (the original study's slice-level split, which leaks neighbouring slices).
    """
    n = len(subjects)
    if not 0 < test_size < 1:
        raise UserError(f"approach.test_size/val_size={test_size} must be a fraction between 0 and 1")
    indices = list(range(n))
    if group_by is None:
        if n < 2:
            raise UserError(f"cannot split {n} slice(s) at slice level: add data")
        keep, held = train_test_split(indices, test_size=test_size, random_state=random_state, shuffle=True)
        return sorted(keep), sorted(held)
    if group_by != "subject":
        raise UserError(f"approach.group_by={group_by!r}: use 'subject' or null (slice-level)")
    if len(set(subjects)) < 2:
        raise UserError(
            f"cannot split {len(set(subjects))} subject(s) by subject: add subjects or set approach.group_by=null"
        )
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
    keep, held = next(splitter.split(indices, groups=list(subjects)))
    return sorted(keep.tolist()), sorted(held.tolist())


def fold_indices(subjects: Sequence[str], k: int, fold: int, random_state: int = 42) -> tuple[list[int], list[int]]:
    """Indices (keep, held_out) of fold `fold` of k subject-grouped folds (GroupKFold, shuffled with random_state)."""
    n_subjects = len(set(subjects))
    if not 2 <= k <= n_subjects:
        raise UserError(f"approach.k={k} must be between 2 and the number of subjects ({n_subjects})")
    if not 0 <= fold < k:
        raise UserError(f"approach.fold={fold} must be between 0 and approach.k-1={k - 1}")
    folds = GroupKFold(n_splits=k, shuffle=True, random_state=random_state).split(subjects, groups=list(subjects))
    keep, held = list(folds)[fold]
    return sorted(keep.tolist()), sorted(held.tolist())
