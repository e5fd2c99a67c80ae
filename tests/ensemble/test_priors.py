"""Each post-processing rule of ndar.postprocess.priors, one by one."""

import numpy as np
import pytest

from ndar.postprocess.priors import (
    PriorParams,
    curve_to_segments,
    merge_pieces,
    resolve_overlaps,
    round_segments,
    segments_priors,
    trim_to_best_window,
)

# every rule off except the one under test
PLAIN = dict(
    merge_gap=-1.0,
    min_dur=0.0,
    max_dur=0.0,
    one_per_class=False,
    resolve_overlaps=False,
    integer_seconds=False,
)


def background(seconds: int = 60) -> np.ndarray:
    curve = np.zeros((seconds, 16))
    curve[:, 0] = 1.0
    return curve


def spans(segments):
    return [(label, start, end) for label, start, end, _ in segments]


def test_threshold_global_and_per_class():
    curve = background()
    curve[10:20, 4] = 0.35
    curve[30:35, 6] = 0.6
    assert spans(curve_to_segments(curve, PriorParams(threshold=0.3, **PLAIN))) == [(4, 10, 20), (6, 30, 35)]
    assert spans(curve_to_segments(curve, PriorParams(threshold=0.5, **PLAIN))) == [(6, 30, 35)]
    per_class = PriorParams(threshold=0.5, class_thresholds={4: 0.3}, **PLAIN)
    assert spans(curve_to_segments(curve, per_class)) == [(4, 10, 20), (6, 30, 35)]


def test_smoothing_bridges_a_dip():
    curve = background()
    curve[10:20, 2] = 0.9
    curve[14, 2] = 0.0
    plain = PriorParams(threshold=0.5, **PLAIN)
    assert spans(curve_to_segments(curve, plain)) == [(2, 10, 14), (2, 15, 20)]
    smoothed = PriorParams(threshold=0.5, **{**PLAIN, "smooth": 3})
    assert spans(curve_to_segments(curve, smoothed)) == [(2, 10, 20)]


def test_merge_gap():
    assert merge_pieces([(10, 14), (17, 20), (30, 31)], gap=3) == [(10, 20), (30, 31)]
    assert merge_pieces([(10, 14), (17, 20)], gap=2.9) == [(10, 14), (17, 20)]


def test_min_duration_global_and_per_class():
    curve = background()
    curve[10:11, 9] = 0.9
    curve[20:23, 10] = 0.9
    params = PriorParams(**{**PLAIN, "min_dur": 2.0})
    assert spans(curve_to_segments(curve, params)) == [(10, 20, 23)]
    params = PriorParams(**{**PLAIN, "min_dur": 2.0, "class_min_dur": {9: 1.0}})
    assert spans(curve_to_segments(curve, params)) == [(9, 10, 11), (10, 20, 23)]


def test_max_duration_trims_to_best_window():
    column = np.zeros(60)
    column[5:45] = 0.5
    column[30:38] = 0.9
    assert trim_to_best_window(column, 5, 45, 10) == (28, 38)  # windows 28..30 tie: earliest
    curve = background()
    curve[:, 12] = column
    params = PriorParams(**{**PLAIN, "max_dur": 10.0})
    assert spans(curve_to_segments(curve, params)) == [(12, 28, 38)]


def test_one_per_class_keeps_largest_mass():
    curve = background()
    curve[5:8, 3] = 0.9  # mass 2.7
    curve[30:40, 3] = 0.5  # mass 5.0
    params = PriorParams(**{**PLAIN, "one_per_class": True})
    assert spans(curve_to_segments(curve, params)) == [(3, 30, 40)]


def test_reassign_leftover_to_missing_class():
    curve = background()
    curve[5:10, 3] = 0.9
    curve[30:40, 3] = 0.5
    curve[5:10, 8] = 0.2  # class 8 never passes the threshold but is probable where the leftover is
    curve[5:10, 11] = 0.15
    on = PriorParams(**{**PLAIN, "one_per_class": True, "reassign": True, "reassign_min": 0.1})
    assert spans(curve_to_segments(curve, on)) == [(8, 5, 10), (3, 30, 40)]
    high = PriorParams(**{**PLAIN, "one_per_class": True, "reassign": True, "reassign_min": 0.5})
    assert spans(curve_to_segments(curve, high)) == [(3, 30, 40)]


def test_overlap_resolution_cuts_lower_score():
    params = PriorParams(min_dur=2.0)
    kept = resolve_overlaps(
        [(1, 10, 20, 0.9), (2, 15, 30, 0.5), (3, 12, 18, 0.4), (4, 19, 21.5, 0.3)], params
    )
    # 2 loses [15, 20); 3 lies inside 1 -> dropped; 4 keeps [20, 21.5)? no: its free part (20, 21.5)
    # is also covered by 2's [20, 30) -> nothing left -> dropped
    assert spans(kept) == [(1, 10, 20), (2, 20, 30)]
    short = resolve_overlaps([(1, 10, 20, 0.9), (5, 19, 21, 0.5)], params)
    assert spans(short) == [(1, 10, 20)]  # remaining 1 s < min_dur 2


def test_integer_seconds_round_half_up():
    assert spans(round_segments([(1, 2.5, 7.49, 0.3), (2, 0.4, 3.5, 0.1)])) == [(1, 3, 7), (2, 0, 4)]


def test_segment_priors_threshold_duration_and_best_per_class():
    segments = [(1, 10.0, 20.0, 0.9), (1, 40.0, 45.0, 0.95), (2, 0.0, 50.0, 0.9), (3, 60.0, 61.0, 0.05)]
    out = segments_priors(segments, PriorParams(threshold=0.1, max_dur=30.0, integer_seconds=False))
    assert spans(out) == [(1, 40.0, 45.0)]


def test_all_rules_together_integer_and_disjoint():
    rng = np.random.default_rng(0)
    curve = rng.dirichlet(np.ones(16) * 0.3, size=200)
    segments = curve_to_segments(curve, PriorParams(threshold=0.2, smooth=3))
    labels = [s[0] for s in segments]
    assert len(labels) == len(set(labels)) and 0 not in labels
    for (_, a, b, _), (_, c, d, _) in zip(segments, segments[1:]):
        assert a <= b <= c <= d and float(a).is_integer() and float(d).is_integer()
    with pytest.raises(ValueError, match="expected"):
        curve_to_segments(np.zeros((5, 3)), PriorParams())


def test_fill_missing_classes_with_their_best_window():
    curve = background()
    curve[:, 0] = 0.5
    curve[10:20, 4] = 0.9  # found by the threshold
    curve[30:36, 7] = 0.12  # never passes 0.3, but is the most probable place for class 7
    curve[50:52, 9] = 0.04  # too improbable to guess
    params = PriorParams(
        **{**PLAIN, "threshold": 0.3, "fill_missing": True, "fill_len": 6.0, "fill_min": 0.05}
    )
    assert spans(curve_to_segments(curve, params)) == [(4, 10, 20), (7, 30, 36)]
    off = PriorParams(**{**PLAIN, "threshold": 0.3})
    assert spans(curve_to_segments(curve, off)) == [(4, 10, 20)]


@pytest.mark.parametrize("override", ["priors.class_thresholds={99: 0.9}", "priors.class_min_dur.0=2"])
def test_per_class_settings_of_unscored_classes_are_refused(override):
    """A per-class setting for no scored class would silently change nothing."""
    from ndar.config import ConfigError, load_config
    from ndar.ensemble.config import EnsembleConfig

    with pytest.raises(ConfigError, match=r"class id\(s\) \[(99|0)\] are not scored classes \(1..15\)"):
        load_config(EnsembleConfig, None, [override])
    assert (
        load_config(EnsembleConfig, None, ["priors.class_thresholds.3=0.9"]).priors.class_threshold(3) == 0.9
    )
