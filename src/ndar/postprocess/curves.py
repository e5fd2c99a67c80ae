"""Dense window scores -> per-second curves, the time base every prediction source shares.

Window-level outputs (a backbone's softmax over sliding windows, a head's window scores) come on
the extractor's window grid; curves are per second so that sources of different window settings
can be fused and segmented alike.
"""

from __future__ import annotations

import numpy as np


def windows_to_curve(
    t_start: np.ndarray, t_end: np.ndarray, scores: np.ndarray, duration: float
) -> np.ndarray:
    """Dense window scores (N, C) -> per-second curve (S, C), S = ceil(duration).

    Row s averages the windows overlapping [s, s+1), weighted by the overlap in seconds; a second
    that no window overlaps takes the window whose centre is nearest.
    """
    t_start = np.asarray(t_start, dtype=np.float64).reshape(-1)
    t_end = np.asarray(t_end, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(t_start) or len(t_end) != len(t_start):
        raise ValueError(
            f"windows_to_curve: scores {scores.shape}, t_start {t_start.shape}, t_end {t_end.shape}; "
            "expected (N, C), (N,), (N,)"
        )
    num_sec = max(1, int(np.ceil(duration - 1e-9)))
    if len(t_start) == 0:
        return np.zeros((num_sec, scores.shape[1]), dtype=np.float32)
    sec = np.arange(num_sec, dtype=np.float64)[:, None]  # (S, 1)
    overlap = np.clip(np.minimum(t_end[None], sec + 1) - np.maximum(t_start[None], sec), 0.0, None)  # (S, N)
    weight = overlap.sum(axis=1, keepdims=True)  # (S, 1)
    curve = (overlap @ scores) / np.where(weight > 0, weight, 1.0)  # (S, C)
    empty = weight[:, 0] <= 0
    if empty.any():
        centres = (t_start + t_end) / 2
        nearest = np.abs(centres[None] - (sec[empty] + 0.5)).argmin(axis=1)
        curve[empty] = scores[nearest]
    return curve.astype(np.float32)
