"""Curve fusion and segment fusion on hand-made predictions."""

import numpy as np
import pandas as pd
import pytest

from ndar.ensemble.fusion import SEGMENT_COLUMNS, fuse_curves, fuse_segments


def curve(value: float, seconds: int = 3) -> np.ndarray:
    return np.full((seconds, 16), value, dtype=np.float32)


def test_curve_fusion_weighted_mean():
    fused = fuse_curves({"a": {"k": curve(1.0)}, "b": {"k": curve(0.0)}}, {"a": 3.0, "b": 1.0})
    np.testing.assert_allclose(fused["k"], 0.75)


def test_curve_fusion_per_class_weights_and_zero_weight_class():
    weights_a = np.ones(16)
    weights_a[5] = 0.0
    weights_b = np.ones(16)
    weights_b[5] = 0.0
    weights_b[7] = 3.0
    fused = fuse_curves({"a": {"k": curve(1.0)}, "b": {"k": curve(0.2)}}, {"a": weights_a, "b": weights_b})
    assert fused["k"][0, 1] == pytest.approx(0.6)
    assert fused["k"][0, 7] == pytest.approx((1.0 + 3 * 0.2) / 4)
    assert fused["k"][0, 5] == 0.0  # no source weighs class 5


def test_curve_fusion_pads_shorter_and_keeps_sessions_of_one_source():
    a = curve(1.0, 3)
    a[-1] = 0.5
    fused = fuse_curves({"a": {"k": a, "only_a": curve(0.3)}, "b": {"k": curve(0.0, 4)}})
    assert fused["k"].shape == (4, 16)
    np.testing.assert_allclose(fused["k"][:, 0], [0.5, 0.5, 0.25, 0.25])  # padded with a's last row
    np.testing.assert_allclose(fused["only_a"], 0.3)


def test_curve_fusion_rejects_negative_weights():
    with pytest.raises(ValueError, match=">= 0"):
        fuse_curves({"a": {"k": curve(1.0)}}, {"a": -1.0})


def test_segment_fusion_score_weighted_boundaries():
    a = pd.DataFrame([("k", 1, 10, 20, 0.8), ("k", 2, 30, 40, 0.5)], columns=SEGMENT_COLUMNS)
    b = pd.DataFrame(
        [("k", 1, 12, 22, 0.4), ("k", 2, 50, 60, 0.5), ("k", 1, 100, 101, 0.1)], columns=SEGMENT_COLUMNS
    )
    fused = fuse_segments({"a": a, "b": b})
    rows = {(r.label, round(r.start, 4)): r for r in fused.itertuples()}
    drinking = rows[(1, round((10 * 0.8 + 12 * 0.4) / 1.2, 4))]
    assert drinking.end == pytest.approx((20 * 0.8 + 22 * 0.4) / 1.2)
    assert drinking.score == pytest.approx((0.8 + 0.4) / 2)  # both sources agree
    assert rows[(2, 30.0)].score == pytest.approx(0.25)  # found by one source of two: damped
    assert rows[(2, 50.0)].score == pytest.approx(0.25)  # no overlap -> separate cluster
    assert len(fused) == 4


def test_segment_fusion_source_weights_and_min_iou():
    a = pd.DataFrame([("k", 3, 0, 10, 1.0)], columns=SEGMENT_COLUMNS)
    b = pd.DataFrame([("k", 3, 8, 18, 1.0)], columns=SEGMENT_COLUMNS)
    fused = fuse_segments({"a": a, "b": b}, weights={"a": 3.0, "b": 1.0})
    assert len(fused) == 1
    assert fused["start"].iloc[0] == pytest.approx((0 * 3 + 8 * 1) / 4)
    apart = fuse_segments({"a": a, "b": b}, min_iou=0.5)  # tIoU 2/18 < 0.5
    assert len(apart) == 2


def test_confusion_per_second_hand_example():
    from ndar.ensemble.report import confusion_per_second

    truth = {"k": [(1, 0.0, 4.0), (2, 6.0, 8.0)]}
    pred = {"k": [(1, 1.0, 4.0), (3, 6.0, 7.0)]}
    matrix = confusion_per_second(pred, truth)
    assert matrix.sum() == 8  # seconds 0..7
    assert matrix[1, 1] == 3 and matrix[1, 0] == 1  # second 0 of class 1 missed
    assert matrix[2, 3] == 1 and matrix[2, 0] == 1
    assert matrix[0, 0] == 2  # seconds 4 and 5
