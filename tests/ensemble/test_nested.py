"""Nested cross-validation of the tuner: folds by driver, no fold tuned on its own drivers, deterministic."""

import json

import pytest

import ndar.ensemble.nested as nested
from ndar.ensemble.nested import (
    LevelEstimate,
    changed_parameters,
    choose_and_tune,
    choose_level,
    driver_of,
    driver_splits,
    nested_estimate,
    tune_level,
)
from ndar.ensemble.synthetic import make_sources
from ndar.ensemble.tuning import EnsembleParams, OofScorer, TuningConfig

SMALL = TuningConfig(
    rounds=1,
    weight_grid=[0.0, 1.0],
    threshold_grid=[0.15, 0.3],
    smooth_grid=[1, 3],
    merge_gap_grid=[2.0],
    min_dur_grid=[1.0],
    max_dur_grid=[30.0],
    tune_reassign=False,
    tune_fill=False,
    nested_folds=3,
)


@pytest.fixture(scope="module")
def six_drivers():
    sources, oof_truth, _ = make_sources(n_drivers=6, n_sources=2, n_test_drivers=1, seed=5)
    return {name: splits["oof"] for name, splits in sources.items()}, oof_truth


def test_driver_splits_hold_out_whole_drivers_once():
    keys = [f"{d}_{s}" for d in range(1, 8) for s in (1, 2)]
    splits = driver_splits(keys, 3, seed=0)
    assert len(splits) == 3
    held_all = [k for _, held in splits for k in held]
    assert sorted(held_all) == sorted(keys)  # every session held out exactly once
    for train, held in splits:
        assert {driver_of(k) for k in train}.isdisjoint({driver_of(k) for k in held})
        assert sorted(train + held) == sorted(keys)
    assert driver_splits(keys, 3, seed=0) == splits
    assert driver_splits(keys, 3, seed=1) != splits  # the seed moves drivers between folds


def test_no_fold_is_tuned_on_its_own_drivers(six_drivers, monkeypatch):
    curves, truth = six_drivers
    seen = []
    real_tune = nested.tune

    def recording_tune(curves, segments, truth, *args, **kwargs):
        seen.append(sorted(truth))
        return real_tune(curves, segments, truth, *args, **kwargs)

    monkeypatch.setattr(nested, "tune", recording_tune)
    est = nested_estimate(curves, None, truth, EnsembleParams(), SMALL, "priors", seed=0)
    splits = driver_splits(sorted(truth), 3, seed=0)
    assert len(seen) == len(splits) == len(est.fold_mOS) == 3
    for tuned_on, (_, held) in zip(seen, splits):
        assert {driver_of(k) for k in tuned_on}.isdisjoint({driver_of(k) for k in held})
        assert len(tuned_on) == len(truth) - len(held)
    # pooled held-out mOS is a real score, and the tuner's inner scores are in sample
    assert 0.0 < est.nested_mOS <= 1.0
    assert all(0.0 <= s <= 1.0 for s in est.fold_mOS + est.inner_mOS)


def test_nested_estimate_is_deterministic(six_drivers):
    curves, truth = six_drivers
    first = nested_estimate(curves, None, truth, EnsembleParams(), SMALL, "class_thresholds", seed=0)
    again = nested_estimate(curves, None, truth, EnsembleParams(), SMALL, "class_thresholds", seed=0)
    assert first == again


def test_untuned_level_scores_the_start_everywhere(six_drivers):
    curves, truth = six_drivers

    est = nested_estimate(curves, None, truth, EnsembleParams(), SMALL, "none", seed=0)
    start = EnsembleParams(curve_weights={n: 1.0 for n in curves})
    assert est.nested_mOS == pytest.approx(OofScorer(curves, None, truth, sorted(truth))(start))


def test_choose_level_keeps_the_simplest_unless_a_freer_one_wins_by_the_margin():
    ests = [LevelEstimate("none", 0.40), LevelEstimate("priors", 0.45), LevelEstimate("weights", 0.46)]
    assert choose_level(ests, margin=0.0)[0] == "weights"
    level, why = choose_level(ests, margin=0.02)
    assert level == "priors" and "weights does not beat priors" in why
    assert choose_level([LevelEstimate("none", 0.5), LevelEstimate("priors", 0.49)], 0.0)[0] == "none"


def test_choose_and_tune_reports_nested_beside_in_sample(six_drivers):
    curves, truth = six_drivers
    tuned, history, summary = choose_and_tune(curves, None, truth, EnsembleParams(), SMALL, seed=0)
    assert summary["level"] in SMALL.levels
    assert set(summary["levels"]) == set(SMALL.levels)
    assert summary["tuned_mOS"] == summary["levels"][summary["level"]]["nested_mOS"]
    assert summary["kept"] == changed_parameters(
        EnsembleParams(curve_weights={n: 1.0 for n in curves}), tuned
    )
    json.dumps(summary)  # goes into metrics.json as it is
    # the params kept are the chosen level's tuning (here "priors": the freer levels do not win by
    # the margin), not the freest level's, and the in-sample mOS is theirs on all the sessions
    kept, _ = tune_level(curves, None, truth, EnsembleParams(), SMALL, summary["level"], seed=0)
    freest, _ = tune_level(curves, None, truth, EnsembleParams(), SMALL, SMALL.levels[-1], seed=0)
    assert summary["level"] == "priors" and tuned == kept != freest
    scorer = OofScorer(curves, None, truth, sorted(truth))
    assert summary["in_sample_mOS"] == pytest.approx(scorer(tuned), abs=1e-12)


def test_min_gain_cuts_changes(six_drivers):
    from ndar.ensemble.tuning import tune

    curves, truth = six_drivers
    free, _ = tune(curves, None, truth, EnsembleParams(), SMALL, seed=0)
    strict_cfg = TuningConfig(**{**SMALL.__dict__, "min_gain": 1.0})
    strict, history = tune(curves, None, truth, EnsembleParams(), strict_cfg, seed=0)
    assert changed_parameters(EnsembleParams(curve_weights={n: 1.0 for n in curves}), strict) == {}
    assert changed_parameters(EnsembleParams(curve_weights={n: 1.0 for n in curves}), free) != {}


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="tuning level 'all'"):
        nested.level_config(SMALL, "all")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tuning.levels=[none, weigths]", r"tuning.levels \['none', 'weigths'\]: expected one or more of"),
        ("tuning.levels=[]", r"tuning.levels \[\]: expected one or more of"),
        ("tuning.nested_folds=1", r"tuning.nested_folds=1: use 0 \(off\) or k >= 2"),
    ],
)
def test_bad_levels_and_folds_are_refused_when_the_config_loads(override, message):
    """Not after the sources are read and the stacker is fitted (the end of the main job)."""
    from ndar.config import ConfigError, load_config
    from ndar.ensemble.config import EnsembleConfig

    with pytest.raises(ConfigError, match=message):
        load_config(EnsembleConfig, None, [override])


def test_segment_fusion_alone_is_tuned_on_the_sessions_it_predicts(six_drivers):
    """Curve fusion and the stacker off (a setting the config accepts): the fused segments are the
    only predictions, and the tuner must still find every session to score."""
    import pandas as pd

    from ndar.postprocess.simple import one_segment_per_class

    curves, truth = six_drivers
    rows = [(k, *seg) for k, c in curves["src0"].items() for seg in one_segment_per_class(c, threshold=0.2)]
    segments = pd.DataFrame(rows, columns=["video", "label", "start", "end", "score"])
    tuned, _, summary = choose_and_tune({}, segments, truth, EnsembleParams(segment_weight=1.0), SMALL, 0)
    assert tuned.segment_weight > 0 and 0.0 < summary["levels"]["priors"]["nested_mOS"] <= 1.0
