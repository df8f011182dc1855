
import pytest

from tumorseg.data.splits import split_indices
from tumorseg.errors import UserError

SUBJECTS = [f"S{i // 10}" for i in range(200)]  # 20 subjects of 10 slices


def test_subject_split_never_shares_a_subject():
    keep, held = split_indices(SUBJECTS, 0.2, random_state=42)
    assert {SUBJECTS[i] for i in keep}.isdisjoint({SUBJECTS[i] for i in held})
    assert sorted(keep + held) == list(range(200))
    assert len({SUBJECTS[i] for i in held}) == 4


def test_split_is_reproducible_and_depends_on_random_state():
    assert split_indices(SUBJECTS, 0.2, 42) == split_indices(SUBJECTS, 0.2, 42)
    assert split_indices(SUBJECTS, 0.2, 42) != split_indices(SUBJECTS, 0.2, 7)


def test_slice_level_split_mixes_subjects():
    keep, held = split_indices(SUBJECTS, 0.2, 42, group_by=None)
    assert len(held) == 40
    # The original study's split: slices of one subject end up on both sides (leakage).
    assert {SUBJECTS[i] for i in keep} & {SUBJECTS[i] for i in held}


def test_bad_split_settings_are_refused():
    with pytest.raises(UserError, match="group_by='patient'"):
        split_indices(SUBJECTS, 0.2, group_by="patient")
    with pytest.raises(UserError, match="between 0 and 1"):
        split_indices(SUBJECTS, 1.5)
    with pytest.raises(UserError, match="1 subject"):
        split_indices(["a"] * 5, 0.2)


def test_folds_split_subjects_and_cover_everything():
    from tumorseg.data.splits import fold_indices

    subjects = [f"S{i // 4}" for i in range(40)]
    held = [fold_indices(subjects, 5, f, 42)[1] for f in range(5)]
    assert sorted(i for h in held for i in h) == list(range(40))
    for f in range(5):
        keep, out = fold_indices(subjects, 5, f, 42)
        assert {subjects[i] for i in keep}.isdisjoint({subjects[i] for i in out})
    assert fold_indices(subjects, 5, 0, 42) == fold_indices(subjects, 5, 0, 42)
