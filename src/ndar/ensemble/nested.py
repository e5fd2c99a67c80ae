"""Nested cross-validation by driver of the ensemble tuner, and the level of freedom it keeps.

Why: the tuner maximises the A1 out-of-fold mOS of about 16 sessions. Scored on the same sessions,
every extra parameter looks like a gain; on A2 much of it was noise. The nested estimate tunes on the
OOF predictions of k-1 driver folds and scores the held-out fold with the parameters found, so no
fold's score ever comes from parameters that saw its drivers; the held-out predictions of all folds
are pooled and scored as one mOS, comparable to the in-sample figure.

Levels of freedom, simplest first (each adds to the one before):
- `none`: the untuned start (equal weights, the configured pooling rule, segment weight and priors);
- `priors`: the global post-processing priors (smoothing, threshold, merge gap, durations, reassign,
  fill), source weights equal;
- `weights`: also the source weights and the segment-fusion weight;
- `class_thresholds`: also one threshold per class (and per-class weights when configured).
`choose_level` keeps the simplest level that no freer level beats in the nested estimate by more than
`level_margin`; the stage then tunes that level on all of A1.

Known optimism left: the stacker's OOF curves come from its own leave-driver-out loop over all of A1,
so a held-out fold's drivers did help train the stacker models that predicted the other folds.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field

import pandas as pd

from ndar.data.folds import assign_folds
from ndar.ensemble.tuning import LEVELS, EnsembleParams, TuningConfig, predict, scored_keys, tune
from ndar.metrics.mos import mos_value

log = logging.getLogger(__name__)

Truth = dict[str, list[tuple[int, float, float]]]


def driver_of(key: str) -> str:
    """Session key "<driver>_<session>" -> driver."""
    return key.rsplit("_", 1)[0]


def level_config(cfg: TuningConfig, level: str) -> TuningConfig | None:
    """The tuning config of one level of freedom (None: no tuning at all)."""
    if level not in LEVELS:
        raise ValueError(f"tuning level {level!r}: expected one of {list(LEVELS)}")
    if level == "none":
        return None
    if level == "priors":
        return dataclasses.replace(
            cfg, tune_weights=False, per_class_thresholds=False, per_class_weights=False
        )
    if level == "weights":
        return dataclasses.replace(cfg, per_class_thresholds=False, per_class_weights=False)
    return dataclasses.replace(cfg, per_class_thresholds=True)


def driver_splits(keys: list[str], k: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """(tuning keys, held-out keys) per fold; both sessions of a driver always fall on one side."""
    drivers = sorted({driver_of(key) for key in keys})
    folds = assign_folds(drivers, min(k, len(drivers)), seed)
    n = max(folds.values()) + 1
    held = [[key for key in keys if folds[driver_of(key)] == f] for f in range(n)]
    return [([key for key in keys if key not in set(h)], h) for h in held]


def tune_level(
    curves, segments, truth: Truth, start: EnsembleParams, cfg: TuningConfig, level: str, seed: int
) -> tuple[EnsembleParams, list[dict]]:
    """Tune one level of freedom on the sessions of `truth`: (params, history)."""
    level_cfg = level_config(cfg, level)
    if level_cfg is None:
        params = copy.deepcopy(start)
        for name in curves:
            params.curve_weights.setdefault(name, 1.0)
        return params, [{"round": 0, "parameter": "start", "value": None, "mOS": None}]
    return tune(curves, segments, truth, start, level_cfg, seed)


def _score(pred: pd.DataFrame, truth: Truth, keys: list[str]) -> float:
    gt = [(k, int(lab), float(a), float(b)) for k in keys for lab, a, b in truth[k]]
    rows = pred[["video", "label", "start", "end"]].itertuples(index=False, name=None)
    return mos_value(gt, list(rows))


@dataclass
class LevelEstimate:
    """The nested estimate of one level of freedom."""

    level: str
    nested_mOS: float
    """mOS of the pooled held-out predictions of all folds"""
    fold_mOS: list[float] = field(default_factory=list)
    """mOS of each held-out fold alone"""
    inner_mOS: list[float] = field(default_factory=list)
    """in-sample mOS of each fold's tuning on its own k-1 folds (the optimism is inner - fold)"""


def nested_estimate(
    curves, segments, truth: Truth, start: EnsembleParams, cfg: TuningConfig, level: str, seed: int
) -> LevelEstimate:
    """Tune `level` on k-1 driver folds, predict the held-out fold; pooled and per-fold mOS."""
    keys = scored_keys(curves, truth, segments)
    preds, fold_scores, inner = [], [], []
    for train_keys, held in driver_splits(keys, cfg.nested_folds, seed):
        params, history = tune_level(
            curves, segments, {k: truth[k] for k in train_keys}, start, cfg, level, seed
        )
        pred = predict(curves, segments, params, held)
        preds.append(pred)
        fold_scores.append(_score(pred, truth, held))
        inner.append(_score(predict(curves, segments, params, train_keys), truth, train_keys))
    pooled = _score(pd.concat(preds, ignore_index=True), truth, keys)
    log.info(
        "nested estimate of level %s: %.4f (folds %s)", level, pooled, [round(s, 3) for s in fold_scores]
    )
    return LevelEstimate(level, pooled, fold_scores, inner)


def choose_level(estimates: list[LevelEstimate], margin: float) -> tuple[str, str]:
    """(kept level, why): the simplest level no freer one beats by more than `margin` (nested mOS)."""
    best = estimates[0]
    steps = []
    for est in estimates[1:]:
        gain = est.nested_mOS - best.nested_mOS
        if gain > margin:
            steps.append(f"{est.level} beats {best.level} out of sample by {gain:+.3f}")
            best = est
        else:
            steps.append(f"{est.level} does not beat {best.level} out of sample ({gain:+.3f})")
    return best.level, "; ".join(steps) if steps else "only one level configured"


def changed_parameters(start: EnsembleParams, tuned: EnsembleParams) -> dict[str, object]:
    """Parameter -> tuned value, for every parameter the tuning moved away from the start."""
    changed: dict[str, object] = {}
    for name, weight in sorted(tuned.curve_weights.items()):
        if weight != start.curve_weights.get(name, 1.0):
            changed[f"weight[{name}]"] = weight
    for name, per_class in sorted(tuned.class_weights.items()):
        for label, weight in sorted(per_class.items()):
            changed[f"weight[{name}][{label}]"] = weight
    if tuned.segment_weight != start.segment_weight:
        changed["segment_weight"] = tuned.segment_weight
    for f in dataclasses.fields(tuned.priors):
        before, after = getattr(start.priors, f.name), getattr(tuned.priors, f.name)
        if f.name == "class_thresholds":
            for label, value in sorted(after.items()):
                if value != before.get(label, start.priors.threshold):
                    changed[f"threshold[{label}]"] = value
        elif after != before:
            changed[f.name] = after
    return changed


def choose_and_tune(
    curves, segments, truth: Truth, start: EnsembleParams, cfg: TuningConfig, seed: int
) -> tuple[EnsembleParams, list[dict], dict]:
    """(tuned params, history, selection summary for metrics.json and the report)."""
    if cfg.nested_folds == 0:
        level = cfg.levels[-1]
        tuned, history = tune_level(curves, segments, truth, start, cfg, level, seed)
        return tuned, history, {"level": level, "reason": "nested_folds 0: the freest level, unchecked"}
    if cfg.nested_folds < 2:
        raise ValueError(f"tuning.nested_folds={cfg.nested_folds}: use 0 (off) or k >= 2")
    estimates = [nested_estimate(curves, segments, truth, start, cfg, lv, seed) for lv in cfg.levels]
    level, reason = choose_level(estimates, cfg.level_margin)
    tuned, history = tune_level(curves, segments, truth, start, cfg, level, seed)
    keys = scored_keys(curves, truth, segments)
    chosen = next(e for e in estimates if e.level == level)
    summary = {
        "level": level,
        "reason": reason,
        "folds": cfg.nested_folds,
        "tuned_mOS": chosen.nested_mOS,
        "untuned_mOS": next((e.nested_mOS for e in estimates if e.level == "none"), None),
        "in_sample_mOS": _score(predict(curves, segments, tuned, keys), truth, keys),
        "levels": {e.level: dataclasses.asdict(e) for e in estimates},
        "kept": changed_parameters(start, tuned),
    }
    return tuned, history, summary
