"""The simple curve -> segments rule shared by the baseline and the heads.

A per-second curve (S, 16) (row s = class probabilities of second [s, s+1)) becomes at most one
segment per class 1..15, because every class occurs exactly once per video:
1. smooth each class column with a centred moving average of `smooth` seconds (1 = no smoothing);
2. find the contiguous runs where the smoothed probability is >= `threshold`;
3. drop runs shorter than `min_len` seconds;
4. keep the run with the largest probability mass (sum over its seconds): mass prefers a long
   confident run over a short spike of the same height; its score is the run's mean probability.
The segment covers [first second, last second + 1). Classes with no run give no segment.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from ndar.taxonomy import NUM_CLASSES, SCORED_CLASSES


def smooth_curve(curve: np.ndarray, smooth: int) -> np.ndarray:
    """Centred moving average over time of every class column; (S, C) -> (S, C)."""
    curve = np.asarray(curve, dtype=np.float64)
    if smooth <= 1 or len(curve) == 0:
        return curve
    return uniform_filter1d(curve, size=int(smooth), axis=0, mode="nearest")


def runs_above(values: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Maximal runs [start, stop) of consecutive indices where values >= threshold."""
    mask = np.concatenate([[False], np.asarray(values) >= threshold, [False]])
    edges = np.flatnonzero(mask[1:] != mask[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _check_curve(curve: np.ndarray) -> np.ndarray:
    curve = np.asarray(curve)
    if curve.ndim != 2 or curve.shape[1] != NUM_CLASSES:
        raise ValueError(f"curve has shape {curve.shape}; expected (seconds, {NUM_CLASSES})")
    return curve


def one_segment_per_class(
    curve: np.ndarray, threshold: float = 0.3, smooth: int = 1, min_len: float = 1.0
) -> list[tuple[int, float, float, float]]:
    """At most one (label, start, end, score) per class 1..15, sorted by start then label."""
    curve = smooth_curve(_check_curve(curve), smooth)  # (S, 16)
    segments = []
    for label in SCORED_CLASSES:
        column = curve[:, label]
        best = None
        for start, stop in runs_above(column, threshold):
            if stop - start < min_len:
                continue
            mass = float(column[start:stop].sum())
            if best is None or mass > best[0]:
                best = (mass, start, stop)
        if best is not None:
            mass, start, stop = best
            segments.append((label, float(start), float(stop), mass / (stop - start)))
    return sorted(segments, key=lambda s: (s[1], s[0]))
