"""Tuning improves the OOF mOS over the defaults; the stacker is honest and deterministic."""

import numpy as np
import pytest

from ndar.ensemble.stacker import StackerConfig, fit_stacker, per_second_labels, session_features
from ndar.ensemble.tuning import EnsembleParams, OofScorer, TuningConfig, tune


@pytest.mark.slow
def test_tuning_improves_oof_mos_over_defaults(bench):
    oof = {name: splits["oof"] for name, splits in bench.sources.items()}
    cfg = TuningConfig(rounds=1)
    start = EnsembleParams()
    tuned, history = tune(oof, None, bench.oof_truth, start, cfg, seed=0)
    default_score = history[0]["mOS"]
    scorer = OofScorer(oof, None, bench.oof_truth, sorted(bench.oof_truth))
    assert scorer(tuned) == history[-1]["mOS"] > default_score + 0.05
    again, _ = tune(oof, None, bench.oof_truth, start, cfg, seed=0)
    assert again == tuned  # same seed, same result
    # fusing beats the best single source with the same (tuned) priors
    single = max(scorer(EnsembleParams(curve_weights={n: 1.0}, priors=tuned.priors)) for n in oof)
    assert history[-1]["mOS"] > single


def test_per_second_labels_and_features():
    labels = per_second_labels([(3, 1.0, 3.0), (5, 3.5, 4.6)], 6)
    assert labels.tolist() == [0, 3, 3, 5, 5, 0]  # middles 3.5 and 4.5 lie in [3.5, 4.6)
    feats = session_features([np.zeros((6, 16)), np.ones((6, 16))], context=[3])
    assert feats.shape == (6, 2 * 2 * 16 + 1)


def test_stacker_shapes_and_determinism(bench):
    oof = {name: splits["oof"] for name, splits in bench.sources.items()}
    test = {name: splits["test"] for name, splits in bench.sources.items()}
    cfg = StackerConfig(n_estimators=8, num_leaves=4, folds=3, context=[5])
    stack_oof, stack_test = fit_stacker(oof, bench.oof_truth, test, cfg, seed=0)
    assert sorted(stack_oof) == sorted(bench.oof_truth) and sorted(stack_test) == sorted(bench.test_truth)
    for key, curve in stack_oof.items():
        assert curve.shape == (len(oof["src0"][key]), 16)
        np.testing.assert_allclose(curve.sum(axis=1), 1.0, atol=1e-5)
    again_oof, again_test = fit_stacker(oof, bench.oof_truth, test, cfg, seed=0)
    assert all(np.array_equal(stack_oof[k], again_oof[k]) for k in stack_oof)


def test_stacker_oof_is_leave_driver_out(bench):
    """Each driver's source maps classes by its own permutation and carries a driver tag in column 0.
    A model that saw the driver (in-sample: the test output of the full model) decodes it; the
    leave-driver-out OOF cannot, since neither the tag nor the permutation was seen in training."""
    rng = np.random.default_rng(1)
    drivers = sorted({k.rsplit("_", 1)[0] for k in bench.oof_truth})
    perms = {d: np.concatenate([[0], rng.permutation(np.arange(1, 16))]) for d in drivers}
    curves, truth_seconds = {}, {}
    for key, segs in bench.oof_truth.items():
        driver = key.rsplit("_", 1)[0]
        labels = per_second_labels(segs, len(bench.sources["src0"]["oof"][key]))
        curve = np.eye(16)[perms[driver][labels]].astype(np.float32)
        curve[:, 0] = (drivers.index(driver) + 1) / 10.0
        curves[key], truth_seconds[key] = curve, labels
    cfg = StackerConfig(n_estimators=30, num_leaves=15, min_child_samples=2, folds=3, context=[])
    stack_oof, in_sample = fit_stacker({"s": curves}, bench.oof_truth, {"s": curves}, cfg, seed=0)

    def accuracy(pred):
        hits = [(pred[k].argmax(1) == t)[t > 0] for k, t in truth_seconds.items()]
        return float(np.mean(np.concatenate(hits)))

    assert accuracy(in_sample) > 0.8
    assert accuracy(stack_oof) < 0.4


@pytest.mark.slow
def test_per_class_weights_are_tuned_and_used(bench):
    oof = {name: splits["oof"] for name, splits in bench.sources.items()}
    small = dict(
        rounds=1,
        weight_grid=[0.0, 1.0],
        threshold_grid=[0.3],
        smooth_grid=[1],
        merge_gap_grid=[2.0],
        min_dur_grid=[1.0],
        max_dur_grid=[30.0],
        per_class_thresholds=False,
        tune_reassign=False,
    )
    base, base_history = tune(oof, None, bench.oof_truth, EnsembleParams(), TuningConfig(**small), seed=0)
    tuned, history = tune(
        oof, None, bench.oof_truth, EnsembleParams(), TuningConfig(**small, per_class_weights=True), seed=0
    )
    assert tuned.class_weights  # some source was switched off for some class
    assert history[-1]["mOS"] >= base_history[-1]["mOS"]
    name, weights = next(iter(tuned.class_weights.items()))
    label, value = next(iter(weights.items()))
    assert tuned.weight_vector(name)[label] == value


def test_tuner_fast_path_scores_what_predict_returns(bench):
    """The tuner groups the fused segments once and scores plain rows; the result must be `predict`'s."""
    import pandas as pd

    from ndar.ensemble.tuning import predict, segments_by_video
    from ndar.metrics.mos import mos_value

    oof = {name: splits["oof"] for name, splits in bench.sources.items()}
    rows = [
        (key, label, start + 0.5 * (i % 3), end + 0.25 * (i % 2), 0.3 + 0.1 * (i % 5))
        for i, (key, segs) in enumerate(sorted(bench.oof_truth.items()))
        for label, start, end in segs
    ]
    segments = pd.DataFrame(rows, columns=["video", "label", "start", "end", "score"])
    params = EnsembleParams(curve_weights={n: 1.0 for n in oof}, segment_weight=0.7, curve_rule="geometric")
    pred = predict(oof, segments, params)
    grouped = segments_by_video(segments)
    assert list(grouped) == sorted(bench.oof_truth) and len(sum(grouped.values(), [])) == len(rows)
    pd.testing.assert_frame_equal(predict(oof, grouped, params), pred)
    keys = sorted(bench.oof_truth)
    truth = [(k, lab, a, b) for k in keys for lab, a, b in bench.oof_truth[k]]
    expected = mos_value(
        truth, list(pred[["video", "label", "start", "end"]].itertuples(index=False, name=None))
    )
    assert OofScorer(oof, segments, bench.oof_truth, keys)(params) == pytest.approx(expected, abs=1e-12)
    without = predict(oof, None, EnsembleParams(curve_weights=params.curve_weights, curve_rule="geometric"))
    assert not pred.equals(without)  # the segment candidates took part
