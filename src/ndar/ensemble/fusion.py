"""Fusion of prediction sources: per-second curves (weighted pooling) and segments (score-weighted).

Curve fusion: for every session, the sources' (S, 16) curves pooled second by second with weights.
A weight is a number per source or a length-16 vector (per class); classes whose weights sum to 0
get 0. Two rules:
- `mean`: the weighted arithmetic mean (linear pooling);
- `geometric`: the weighted mean of the log-probabilities, exponentiated and renormalised over the
  classes of each second (log-linear pooling, a product of experts). Why: a class scores high only
  where the sources agree, so one source that is confidently wrong cannot carry a second alone, and
  the sharpest sources do not dominate the pool as they do a mean. Probabilities are floored at
  `GEOMETRIC_FLOOR` first (a 0 would veto a class outright). The default, chosen on the three-seed
  bench (docs/ensemble.md, "Decisions").
Curves of one session may differ by a second in length between sources (rounding of the duration):
shorter ones are padded with their last row to the longest.

Segment fusion (weighted-boxes-fusion style, in time): per video and class, segments from all sources
are taken by decreasing score; each unclustered one starts a cluster that takes every unclustered
segment of the same video and class overlapping it (tIoU >= `min_iou`, 0 = any overlap). The fused
boundaries are the score x source-weight weighted means; the fused score is sum(weight x score) over
the cluster divided by the sum of all source weights, so agreement between sources raises the score
and a segment found by one source only is damped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ndar.metrics.tmap import segment_tiou
from ndar.taxonomy import NUM_CLASSES

SEGMENT_COLUMNS = ["video", "label", "start", "end", "score"]
CURVE_RULES = ("mean", "geometric")
GEOMETRIC_FLOOR = 1e-6


def _weight_vector(weight: float | list[float] | np.ndarray) -> np.ndarray:
    vector = np.broadcast_to(np.asarray(weight, dtype=np.float64), (NUM_CLASSES,)).copy()
    if (vector < 0).any():
        raise ValueError(f"fusion weights must be >= 0, got {weight!r}")
    return vector  # (16,)


def pad_to(curve: np.ndarray, length: int) -> np.ndarray:
    """Repeat the last row (or cut) so that the curve has `length` rows."""
    if len(curve) >= length:
        return curve[:length]
    tail = (
        np.repeat(curve[-1:], length - len(curve), axis=0)
        if len(curve)
        else np.zeros((length, curve.shape[1]))
    )
    return np.concatenate([curve, tail], axis=0)


def fuse_curves(
    curves: dict[str, dict[str, np.ndarray]],
    weights: dict[str, float | list[float] | np.ndarray] | None = None,
    rule: str = "mean",
) -> dict[str, np.ndarray]:
    """{source: {session: (S, 16)}} -> {session: (S, 16)} pooled by `rule` (equal weights by default).

    A session missing from a source is fused from the sources that have it.
    """
    if rule not in CURVE_RULES:
        raise ValueError(f"curve fusion rule {rule!r}: expected one of {list(CURVE_RULES)}")
    weights = weights or {}
    vectors = {name: _weight_vector(weights.get(name, 1.0)) for name in curves}
    sessions = sorted({key for source in curves.values() for key in source})
    fused: dict[str, np.ndarray] = {}
    for key in sessions:
        present = [name for name in curves if key in curves[name]]
        length = max(len(curves[name][key]) for name in present)
        total = np.zeros((length, NUM_CLASSES))
        weight_sum = np.zeros(NUM_CLASSES)
        for name in present:
            curve = pad_to(np.asarray(curves[name][key], dtype=np.float64), length)  # (S, 16)
            if rule == "geometric":
                curve = np.log(np.maximum(curve, GEOMETRIC_FLOOR))
            total += curve * vectors[name]
            weight_sum += vectors[name]
        active = weight_sum > 0
        pooled = total / np.where(active, weight_sum, 1.0)  # (S, 16)
        if rule == "geometric":
            pooled = np.where(active, np.exp(pooled), 0.0)
            pooled /= np.maximum(pooled.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        fused[key] = pooled.astype(np.float32)
    return fused


def fuse_segments(
    segments: dict[str, pd.DataFrame], weights: dict[str, float] | None = None, min_iou: float = 0.0
) -> pd.DataFrame:
    """{source: DataFrame[video,label,start,end,score]} -> fused DataFrame (same columns)."""
    weights = weights or {}
    frames = []
    for name, frame in segments.items():
        weight = float(weights.get(name, 1.0))
        if weight < 0:
            raise ValueError(f"segment fusion weight of {name!r} must be >= 0, got {weight}")
        if weight > 0 and len(frame):
            frames.append(frame[SEGMENT_COLUMNS].assign(weight=weight, video=frame["video"].astype(str)))
    total_weight = sum(float(weights.get(name, 1.0)) for name in segments) or 1.0
    if not frames:
        return pd.DataFrame(columns=SEGMENT_COLUMNS)
    pool = pd.concat(frames, ignore_index=True)
    rows = []
    for (video, label), group in pool.groupby(["video", "label"], sort=True):
        rows.extend((video, label, *fused) for fused in _fuse_group(group, total_weight, min_iou))
    out = pd.DataFrame(rows, columns=SEGMENT_COLUMNS)
    return out.sort_values(["video", "start", "label"], kind="stable").reset_index(drop=True)


def _fuse_group(group: pd.DataFrame, total_weight: float, min_iou: float) -> list[tuple[float, float, float]]:
    order = np.lexsort((group["start"].to_numpy(), -group["score"].to_numpy()))
    starts = group["start"].to_numpy(dtype=float)[order]
    ends = group["end"].to_numpy(dtype=float)[order]
    strength = (group["score"].to_numpy(dtype=float) * group["weight"].to_numpy(dtype=float))[order]
    used = np.zeros(len(order), dtype=bool)
    fused = []
    for i in range(len(order)):
        if used[i]:
            continue
        overlap = np.minimum(ends, ends[i]) - np.maximum(starts, starts[i])
        ious = segment_tiou(starts[i], ends[i], starts, ends)
        members = ~used & ((overlap > 0) | (ious >= 1.0)) & (ious >= min_iou)
        members[i] = True
        used |= members
        w = strength[members]
        norm = w.sum() if w.sum() > 0 else float(members.sum())
        w = w if w.sum() > 0 else np.ones(members.sum())
        fused.append(
            (
                float((starts[members] * w).sum() / norm),
                float((ends[members] * w).sum() / norm),
                float(strength[members].sum() / total_weight),
            )
        )
    return fused
