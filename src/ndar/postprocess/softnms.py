"""Gaussian Soft-NMS on 1-D segments.

Soft-NMS (Bodla et al. 2017) decays the scores of segments that overlap a better one instead of
deleting them: score *= exp(-tIoU^2 / sigma). Heads use it per class on their candidates; the runner
uses it to merge the segments of several fold models.
"""

from __future__ import annotations

import numpy as np


def segment_iou(segment: np.ndarray, others: np.ndarray) -> np.ndarray:
    """tIoU of one segment (2,) with each of `others` (M, 2); zero-length unions give 0 (or 1 if identical)."""
    inter = np.clip(np.minimum(segment[1], others[:, 1]) - np.maximum(segment[0], others[:, 0]), 0.0, None)
    union = np.maximum(segment[1], others[:, 1]) - np.minimum(segment[0], others[:, 0])
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    identical = (union <= 0) & (others[:, 0] == segment[0]) & (others[:, 1] == segment[1])
    return np.where(identical, 1.0, iou)


def soft_nms(
    segments: np.ndarray,
    scores: np.ndarray,
    sigma: float = 0.5,
    min_score: float = 1e-3,
    max_keep: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian Soft-NMS of one class.

    segments (M, 2) [start, end], scores (M,). Returns (segments (K, 2), scores (K,), index (K,) into
    the input), sorted by decayed score, best first; segments decayed below `min_score` are dropped.
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1).copy()
    if len(segments) != len(scores):
        raise ValueError(f"soft_nms: {len(segments)} segments but {len(scores)} scores")
    if sigma <= 0:
        raise ValueError(f"soft_nms: sigma must be > 0, got {sigma}")
    n = len(scores)
    limit = n if max_keep is None else min(n, max_keep)
    # pairwise tIoU once, then K cheap rounds (K = kept segments) of "take the best, decay the rest"
    inter = np.clip(
        np.minimum(segments[:, None, 1], segments[None, :, 1])
        - np.maximum(segments[:, None, 0], segments[None, :, 0]),
        0.0,
        None,
    )
    union = np.maximum(segments[:, None, 1], segments[None, :, 1]) - np.minimum(
        segments[:, None, 0], segments[None, :, 0]
    )
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    identical = (
        (union <= 0)
        & (segments[:, None, 0] == segments[None, :, 0])
        & (segments[:, None, 1] == segments[None, :, 1])
    )
    iou[identical] = 1.0
    decay = np.exp(-(iou**2) / sigma)  # (M, M)
    alive = scores >= min_score
    kept: list[int] = []
    kept_scores: list[float] = []
    while len(kept) < limit and alive.any():
        best = int(np.argmax(np.where(alive, scores, -np.inf)))
        kept.append(best)
        kept_scores.append(float(scores[best]))
        alive[best] = False
        scores[alive] *= decay[best, alive]
        alive &= scores >= min_score
    index = np.asarray(kept, dtype=np.int64)
    return segments[index], np.asarray(kept_scores, dtype=np.float64), index


def batched_soft_nms(
    segments: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    sigma: float = 0.5,
    min_score: float = 1e-3,
    max_keep: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft-NMS per class, then the best `max_keep` overall. Returns (segments, scores, labels), best first."""
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    out_segs, out_scores, out_labels = [], [], []
    for label in np.unique(labels):
        mask = labels == label
        segs, scs, _ = soft_nms(
            segments[mask], scores[mask], sigma=sigma, min_score=min_score, max_keep=max_keep
        )
        out_segs.append(segs)
        out_scores.append(scs)
        out_labels.append(np.full(len(scs), label, dtype=np.int64))
    if not out_segs:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0, dtype=np.int64)
    segs, scs, labs = np.concatenate(out_segs), np.concatenate(out_scores), np.concatenate(out_labels)
    order = np.argsort(-scs, kind="stable")
    if max_keep is not None:
        order = order[:max_keep]
    return segs[order], scs[order], labs[order]
