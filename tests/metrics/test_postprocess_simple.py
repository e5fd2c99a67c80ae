"""The simple one-segment-per-class rule."""

import numpy as np
import pytest

from ndar.postprocess import one_segment_per_class, runs_above


def test_runs_above():
    assert runs_above(np.array([0, 1, 1, 0, 1]), 0.5) == [(1, 3), (4, 5)]
    assert runs_above(np.array([]), 0.5) == []


def test_one_segment_per_class_picks_largest_mass_run():
    curve = np.zeros((30, 16))
    curve[:, 0] = 1.0
    curve[2:4, 3] = 0.95  # short spike, mass 1.9
    curve[10:16, 3] = 0.6  # long run, mass 3.6 -> chosen
    curve[20:21, 7] = 0.9  # shorter than min_len=2 -> dropped
    curve[5:9, 12] = 0.5
    segments = one_segment_per_class(curve, threshold=0.3, min_len=2)
    assert segments == [(12, 5.0, 9.0, pytest.approx(0.5)), (3, 10.0, 16.0, pytest.approx(0.6))]


def test_smoothing_fills_a_one_second_dip():
    curve = np.zeros((20, 16))
    curve[5:15, 2] = 0.9
    curve[10, 2] = 0.0
    assert [s[1:3] for s in one_segment_per_class(curve, threshold=0.5)] == [(5.0, 10.0)]
    assert [s[1:3] for s in one_segment_per_class(curve, threshold=0.5, smooth=3)] == [(5.0, 15.0)]


def test_bad_shape_is_an_error():
    with pytest.raises(ValueError, match=r"expected \(seconds, 16\)"):
        one_segment_per_class(np.zeros((5, 15)))
