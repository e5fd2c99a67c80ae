"""Curve fusion and segment fusion on hand-made predictions."""

import numpy as np
import pandas as pd
import pytest

from ndar.ensemble.fusion import GEOMETRIC_FLOOR, SEGMENT_COLUMNS, fuse_curves, fuse_segments


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


def two_class(p: float, seconds: int = 2) -> np.ndarray:
    out = np.zeros((seconds, 16), dtype=np.float32)
    out[:, 1], out[:, 2] = p, 1 - p
    return out  # (S, 16): class 1 with p, class 2 with 1 - p


def test_geometric_fusion_is_the_renormalised_weighted_product():
    a, b = two_class(0.9), two_class(0.5)
    fused = fuse_curves({"a": {"k": a}, "b": {"k": b}}, {"a": 2.0, "b": 1.0}, rule="geometric")["k"]
    one = (0.9**2 * 0.5) ** (1 / 3)
    two = (0.1**2 * 0.5) ** (1 / 3)
    floor = GEOMETRIC_FLOOR  # the 14 classes both sources give 0 keep the floor's share
    total = one + two + 14 * floor
    np.testing.assert_allclose(fused[:, 1], one / total, rtol=1e-5)
    np.testing.assert_allclose(fused[:, 2], two / total, rtol=1e-5)
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, rtol=1e-6)
    mean = fuse_curves({"a": {"k": a}, "b": {"k": b}}, {"a": 2.0, "b": 1.0})["k"]
    assert fused[0, 1] > mean[0, 1]  # two sources agreeing on class 1 count for more than their mean


def test_geometric_fusion_lets_one_certain_dissent_outvote_two_confident_sources():
    confident, dissent = two_class(0.95), two_class(0.001)
    curves = {"a": {"k": confident}, "b": {"k": confident}, "c": {"k": dissent}}
    mean = fuse_curves(curves)["k"]
    geo = fuse_curves(curves, rule="geometric")["k"]
    assert mean[0, 1] > 0.6 > mean[0, 2]  # the mean follows the majority
    assert geo[0, 1] < geo[0, 2]  # the product does not call a class one source rules out


def test_geometric_fusion_zero_weight_class_stays_zero_and_unknown_rule_fails():
    weights = np.ones(16)
    weights[2] = 0.0
    geo = fuse_curves({"a": {"k": two_class(0.6)}}, {"a": weights}, rule="geometric")["k"]
    assert geo[0, 2] == 0.0 and geo[0, 1] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="expected one of"):
        fuse_curves({"a": {"k": two_class(0.6)}}, rule="median")


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
