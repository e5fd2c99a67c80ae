"""TIM's decoding: query scores -> proposals, per-second curves and Soft-NMS'd segments.

Pure numpy on scores the head has already computed, so it is tested without a model.
"""

from __future__ import annotations

import numpy as np

from ndar.heads.tim.config import TimConfig
from ndar.postprocess.simple import runs_above
from ndar.postprocess.softnms import batched_soft_nms
from ndar.taxonomy import BACKGROUND, NUM_CLASSES

Segment = tuple[int, float, float, float]  # (class, start, end, score)


def curve_proposals(
    curve: np.ndarray, thresholds: list[float], min_len: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs [start, stop) seconds of every class column (1..15) at or above each threshold,
    at least `min_len` long, without duplicates. Returns (bounds (P, 2), labels (P,), mean value (P,))."""
    seen: set[tuple[int, int, int]] = set()
    rows = []
    for label in range(1, curve.shape[1]):
        column = curve[:, label]
        for threshold in thresholds:
            for start, stop in runs_above(column, threshold):
                if stop - start >= min_len and (label, start, stop) not in seen:
                    seen.add((label, start, stop))
                    rows.append((start, stop, label, float(column[start:stop].mean())))
    if not rows:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0)
    arr = np.array(rows, dtype=np.float64)
    return arr[:, :2], arr[:, 2].astype(np.int64), arr[:, 3]


def covering_max_curve(
    queries: np.ndarray, regressed: np.ndarray, scores: np.ndarray, num_seconds: int
) -> np.ndarray:
    """Per-second curve from detection query scores, normalised to sum 1 per second.

    Row s, class c >= 1 = max score over the queries whose *regressed* interval covers the centre
    of second s; class 0 (normal driving, never regressed) uses the queries' own intervals. Seconds
    that no interval covers take the nearest query.
    """
    centres = np.arange(num_seconds) + 0.5

    def covering(intervals: np.ndarray) -> np.ndarray:  # (S, M)
        return (intervals[None, :, 0] <= centres[:, None]) & (intervals[None, :, 1] >= centres[:, None])

    curve = np.zeros((num_seconds, scores.shape[1]))
    cover_q, cover_r = covering(queries), covering(regressed)
    for c in range(scores.shape[1]):
        cover = cover_q if c == BACKGROUND else cover_r
        curve[:, c] = np.where(cover, scores[None, :, c], 0.0).max(axis=1)
    empty = ~cover_q.any(axis=1)
    if empty.any():
        mids = queries.mean(axis=1)
        curve[empty] = scores[np.abs(mids[None] - centres[empty, None]).argmin(axis=1)]
    return curve / np.maximum(curve.sum(axis=1, keepdims=True), 1e-8)


def regressed_bounds(pyramid: np.ndarray, offsets: np.ndarray, duration: float) -> np.ndarray:
    """Detection: query intervals moved by their offsets (in query lengths), clipped to the video."""
    length = (pyramid[:, 1] - pyramid[:, 0])[:, None]
    bounds = np.clip(pyramid + offsets * length, 0.0, duration)
    bounds[:, 1] = np.maximum(bounds[:, 1], bounds[:, 0])
    return bounds


def nms_segments(cfg: TimConfig, bounds: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> list[Segment]:
    """Per-class Soft-NMS with the head's sigma / min score / max kept, as (class, start, end, score)."""
    segs, kept, labs = batched_soft_nms(
        bounds, scores, labels, sigma=cfg.nms_sigma, min_score=cfg.nms_min_score, max_keep=cfg.max_segments
    )
    return [(int(c), float(a), float(b), float(p)) for (a, b), p, c in zip(segs, kept, labs)]


def top_candidate_segments(cfg: TimConfig, bounds: np.ndarray, scores: np.ndarray) -> list[Segment]:
    """Every (query, class >= 1) is a candidate; the best pre_nms_topk go through per-class Soft-NMS."""
    flat = scores[:, 1:].reshape(-1)  # (M * 15,)
    order = np.argsort(-flat, kind="stable")[: cfg.pre_nms_topk]
    order = order[flat[order] >= cfg.nms_min_score]
    query, label = np.divmod(order, NUM_CLASSES - 1)
    return nms_segments(cfg, bounds[query], flat[order], label + 1)
