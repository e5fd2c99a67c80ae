"""LightGBM stacker: per-second probabilities of all sources (+ temporal context) -> fused curve.

Rows are seconds. Features of second s of one session: for every source, its 16 probabilities at s
and their centred rolling means over each `context` window (seconds), plus the relative position
s / S. Target: the ground-truth class covering the middle of second s (0 where none).

Honesty: the stacker's own OOF curves come from a leave-driver-group-out loop inside the A1 OOF
(GroupKFold by driver), so the tuning that follows never sees a curve predicted by a model that
trained on the same driver. The test curves come from one model fitted on all A1 OOF rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import uniform_filter1d
from sklearn.model_selection import GroupKFold

from ndar.ensemble.fusion import pad_to
from ndar.taxonomy import NUM_CLASSES

log = logging.getLogger(__name__)


@dataclass
class StackerConfig:
    """LightGBM stacker settings."""

    context: list[int] = field(default_factory=lambda: [9])
    """rolling-mean windows (seconds) added as temporal context features"""
    folds: int = 5
    """driver-group folds inside the OOF (capped by the number of drivers)"""
    n_estimators: int = 50
    """boosting rounds"""
    max_bin: int = 31
    """histogram bins per feature (probabilities need few)"""
    colsample_bytree: float = 0.3
    """fraction of features per tree"""
    learning_rate: float = 0.1
    """LightGBM learning rate"""
    num_leaves: int = 7
    """LightGBM leaves per tree"""
    min_child_samples: int = 10
    """LightGBM minimum rows per leaf"""
    n_jobs: int = 1
    """LightGBM threads (fixed so results are reproducible; more threads thrash on a shared 2-core CPU)"""


def per_second_labels(segments: list[tuple[int, float, float]], seconds: int) -> np.ndarray:
    """(S,) int: the class whose [start, end) covers s + 0.5, 0 elsewhere (later rows win)."""
    labels = np.zeros(seconds, dtype=np.int64)
    middles = np.arange(seconds) + 0.5
    for label, start, end in segments:
        labels[(middles >= start) & (middles < end)] = int(label)
    return labels


def session_features(curves: list[np.ndarray], context: list[int]) -> np.ndarray:
    """(S, F) features of one session from its source curves (each (S, 16), same S)."""
    seconds = len(curves[0])
    blocks = []
    for curve in curves:
        curve = np.asarray(curve, dtype=np.float64)
        blocks.append(curve)
        for window in context:
            blocks.append(uniform_filter1d(curve, size=int(window), axis=0, mode="nearest"))
    blocks.append((np.arange(seconds, dtype=np.float64) / max(seconds, 1))[:, None])
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _aligned(source_curves: dict[str, dict[str, np.ndarray]], key: str) -> list[np.ndarray]:
    missing = [name for name, curves in source_curves.items() if key not in curves]
    if missing:
        raise KeyError(f"stacker: session {key} is missing from source(s) {missing}")
    length = max(len(curves[key]) for curves in source_curves.values())
    return [pad_to(np.asarray(curves[key]), length) for curves in source_curves.values()]


def _model(cfg: StackerConfig, seed: int):
    import lightgbm as lgb

    return lgb.LGBMClassifier(
        objective="multiclass",
        n_estimators=cfg.n_estimators,
        learning_rate=cfg.learning_rate,
        num_leaves=cfg.num_leaves,
        min_child_samples=cfg.min_child_samples,
        max_bin=cfg.max_bin,
        subsample=1.0,
        colsample_bytree=cfg.colsample_bytree,
        random_state=seed,
        n_jobs=cfg.n_jobs,
        deterministic=True,
        force_col_wise=True,
        verbose=-1,
    )


def _predict(model, features: np.ndarray) -> np.ndarray:
    """(S, 16) probabilities; classes the model never saw get 0."""
    out = np.zeros((len(features), NUM_CLASSES), dtype=np.float32)
    out[:, model.classes_.astype(int)] = model.predict_proba(features)
    return out


def _split_rows(matrix: np.ndarray, keys: list[str], lengths: list[int]) -> dict[str, np.ndarray]:
    bounds = np.cumsum([0, *lengths])
    return {key: matrix[bounds[i] : bounds[i + 1]] for i, key in enumerate(keys)}


def fit_stacker(
    oof_curves: dict[str, dict[str, np.ndarray]],
    ground_truth: dict[str, list[tuple[int, float, float]]],
    test_curves: dict[str, dict[str, np.ndarray]],
    cfg: StackerConfig,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({session: OOF stacked curve}, {session: test stacked curve}); sources in the same order for both."""
    keys = sorted(k for k in ground_truth if all(k in c for c in oof_curves.values()))
    if not keys:
        raise ValueError("stacker: no A1 session has both ground truth and curves from every source")
    feats = [session_features(_aligned(oof_curves, k), cfg.context) for k in keys]
    lengths = [len(f) for f in feats]
    x = np.concatenate(feats)  # (rows, F)
    y = np.concatenate([per_second_labels(ground_truth[k], n) for k, n in zip(keys, lengths)])
    drivers = np.concatenate([[k.rsplit("_", 1)[0]] * n for k, n in zip(keys, lengths)])
    n_groups = len(set(drivers))
    if n_groups < 2:
        raise ValueError(f"stacker: needs at least 2 drivers for leave-driver-out OOF, got {n_groups}")
    oof = np.zeros((len(x), NUM_CLASSES), dtype=np.float32)
    for fold, (train, held) in enumerate(GroupKFold(n_splits=min(cfg.folds, n_groups)).split(x, y, drivers)):
        model = _model(cfg, seed + fold).fit(x[train], y[train])
        oof[held] = _predict(model, x[held])
        log.info("stacker fold %d: %d train rows, %d held-out rows", fold, len(train), len(held))
    full = _model(cfg, seed).fit(x, y)
    test_keys = sorted(set.intersection(*(set(c) for c in test_curves.values()))) if test_curves else []
    test = {k: _predict(full, session_features(_aligned(test_curves, k), cfg.context)) for k in test_keys}
    return _split_rows(oof, keys, lengths), test
