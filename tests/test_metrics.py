"""Metric values on hand-made masks whose answers are known."""

import math

import pytest
import torch

from tumorseg.scoring.metrics import SegMetrics, dice_of


def masks(*pixel_lists, size=4):
    """One 1 x size x size mask per list of (row, col) pixels."""
    out = torch.zeros(len(pixel_lists), 1, size, size)
    for i, pixels in enumerate(pixel_lists):
        for r, c in pixels:
            out[i, 0, r, c] = 1
    return out


def compute(pred, truth, subjects, threshold=0.5):
    metric = SegMetrics(threshold)
    metric.update(pred, truth, torch.tensor(subjects))
    return {k: float(v) for k, v in metric.compute().items()}


SQUARE = [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_perfect_prediction_scores_one():
    m = compute(masks(SQUARE), masks(SQUARE), [0])
    assert m["dice"] == m["iou"] == m["precision"] == m["recall"] == m["dice_per_slice"] == 1.0


def test_pooled_per_slice_and_per_subject_dice():
    truth = masks(SQUARE, [], [(3, 3)])
    pred = masks(SQUARE + [(3, 3)], [(0, 0)], [])
    m = compute(pred, truth, [0, 0, 1])
    # pooled: tp 4, fp 2, fn 1 -> 8 / 11
    assert m["dice"] == pytest.approx(8 / 11)
    assert m["iou"] == pytest.approx(4 / 7)
    assert m["precision"] == pytest.approx(4 / 6) and m["recall"] == pytest.approx(4 / 5)
    # per slice, only slices with tumor: slice 0 (8/9) and slice 2 (0) -> mean 4/9
    assert m["dice_per_slice"] == pytest.approx(4 / 9)
    # per subject: subject 0 pools slices 0-1 (tp 4, fp 2 -> 0.8), subject 1 (0) -> 0.4
    assert m["dice_per_subject"] == pytest.approx(0.4)
    # one tumor-free slice, with a false positive
    assert m["empty_fp_rate"] == 1.0
    assert m["n_images"] == 3 and m["n_subjects"] == 2


def test_by_subject_gives_each_subjects_pooled_figures():
    truth = masks(SQUARE, [], [(3, 3)])
    pred = masks(SQUARE + [(3, 3)], [(0, 0)], [])
    metric = SegMetrics()
    metric.update(pred, truth, torch.tensor([0, 0, 1]))
    figures = metric.by_subject()
    # subject 0: tp 4, fp 2, fn 0; subject 1: its one tumor pixel missed
    assert figures[0] == pytest.approx({"dice": 0.8, "precision": 4 / 6, "recall": 1.0, "n_images": 2})
    assert figures[1] == {"dice": 0.0, "precision": 0.0, "recall": 0.0, "n_images": 1}
    assert sum(f["dice"] for f in figures.values()) / 2 == pytest.approx(float(metric.compute()["dice_per_subject"]))


def test_empty_versus_empty_counts_as_one():
    m = compute(masks([], []), masks([], []), [0, 1])
    assert m["dice"] == m["iou"] == m["dice_per_subject"] == 1.0
    assert m["empty_fp_rate"] == 0.0
    assert math.isnan(m["dice_per_slice"])  # no slice with tumor to average
    assert m["precision"] == m["recall"] == 0.0


def test_predicting_nothing_on_tumor_scores_zero():
    m = compute(masks([]), masks(SQUARE), [0])
    assert m["dice"] == m["dice_per_slice"] == m["dice_per_subject"] == 0.0
    assert math.isnan(m["empty_fp_rate"])


def test_threshold_applies_to_probabilities():
    truth = masks(SQUARE)
    probs = truth * 0.7
    assert compute(probs, truth, [0], threshold=0.5)["dice"] == 1.0
    assert compute(probs, truth, [0], threshold=0.8)["dice"] == 0.0


def test_updates_accumulate_like_one_batch():
    truth, pred = masks(SQUARE, [(2, 2)]), masks(SQUARE[:2], [(2, 2), (3, 3)])
    metric = SegMetrics()
    metric.update(pred[:1], truth[:1], torch.tensor([0]))
    metric.update(pred[1:], truth[1:], torch.tensor([1]))
    split = {k: float(v) for k, v in metric.compute().items()}
    assert split == pytest.approx(compute(pred, truth, [0, 1]), nan_ok=True)


def test_dice_of_counts():
    assert float(dice_of(torch.tensor(0), torch.tensor(0), torch.tensor(0))) == 1.0
    assert float(dice_of(torch.tensor(1), torch.tensor(1), torch.tensor(0))) == pytest.approx(2 / 3)
