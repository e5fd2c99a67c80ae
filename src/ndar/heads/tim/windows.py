"""Sliding windows over a long video, interval queries and their targets (all numpy, no torch).

Times are seconds from the start of the video. A window covers `length` seconds from `start` and
holds `num_feats` feature slots (every `feat_stride`-th feature from the first one at or after
`start`); slots past the end of the video are padding (index -1). Inside a window every interval is
normalised to [0, 1] by (t - start) / length.

Queries are *global*: one list of intervals per video (ground truth, proposals, one query per
second, or the detection pyramid laid over the whole video). Each window is asked the queries it
fully contains, and a query's logits are averaged over all those windows; a query that no window
contains (longer than a window) is asked, clipped, in every window it overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ndar.data.records import Segment
from ndar.taxonomy import BACKGROUND

EPS = 1e-6


@dataclass
class Window:
    """One window of one video."""

    start: float  # seconds
    length: float  # seconds
    index: np.ndarray  # (T,) int64 feature rows, -1 = padding

    @property
    def end(self) -> float:
        return self.start + self.length


def median_feature_gap(t_starts: list[np.ndarray], default: float = 1.0) -> float:
    """Median step between consecutive feature windows over all videos (seconds)."""
    steps = [np.diff(np.asarray(t, dtype=np.float64)) for t in t_starts if len(t) > 1]
    steps = [s[s > 0] for s in steps]
    steps = [s for s in steps if len(s)]
    return float(np.median(np.concatenate(steps))) if steps else default


def plan_windows(
    t_start: np.ndarray, t_end: np.ndarray, num_feats: int, feat_stride: int, length: float, stride: float
) -> list[Window]:
    """Windows every `stride` seconds from the first feature; the last one is aligned to the video end."""
    t_start = np.asarray(t_start, dtype=np.float64)
    t_end = np.asarray(t_end, dtype=np.float64)
    if len(t_start) == 0:
        raise ValueError("plan_windows: the video has no features")
    first, last = float(t_start[0]), float(t_end.max())
    starts = list(
        first + stride * np.arange(int(np.floor(max(last - length - first, 0.0) / stride + EPS)) + 1)
    )
    if starts[-1] + length < last - EPS:
        starts.append(last - length)
    offsets = np.arange(num_feats, dtype=np.int64) * feat_stride
    windows = []
    for start in starts:
        first_row = int(np.searchsorted(t_start, start - EPS, side="left"))
        index = first_row + offsets
        index[index >= len(t_start)] = -1
        windows.append(Window(start=float(start), length=float(length), index=index))
    return windows


def normalise(intervals: np.ndarray, window: Window) -> np.ndarray:
    """(M, 2) seconds -> (M, 2) window coordinates (0 = window start, 1 = window end)."""
    return ((np.asarray(intervals, dtype=np.float64) - window.start) / window.length).astype(np.float32)


def feature_intervals(t_start: np.ndarray, t_end: np.ndarray, window: Window) -> np.ndarray:
    """(T, 2) normalised (start, end) of the window's feature slots; padding slots get (0, 0)."""
    valid = window.index >= 0
    rows = np.where(valid, window.index, 0)
    times = np.stack([t_start[rows], t_end[rows]], axis=1)
    out = normalise(times, window)
    out[~valid] = 0.0
    return out


def assign_queries(windows: list[Window], intervals: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each window: (query ids (M_w,), normalised intervals (M_w, 2)) of the queries it is asked.

    Every query is asked in every window that fully contains it; one that no window contains is
    asked, clipped to the window, in every window it overlaps (or the nearest window if none).
    """
    intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    w_start = np.array([w.start for w in windows])[:, None]  # (W, 1)
    w_end = np.array([w.end for w in windows])[:, None]
    q_start, q_end = intervals[None, :, 0], intervals[None, :, 1]  # (1, M)
    contained = (q_start >= w_start - EPS) & (q_end <= w_end + EPS)  # (W, M)
    orphan = ~contained.any(axis=0)
    if orphan.any():
        overlap = (np.minimum(q_end, w_end) - np.maximum(q_start, w_start)) > 0  # (W, M)
        use = overlap & orphan[None]
        lost = orphan & ~overlap.any(axis=0)
        if lost.any():
            centres = (w_start[:, 0] + w_end[:, 0]) / 2
            q_mid = intervals[lost].mean(axis=1)
            nearest = np.abs(centres[:, None] - q_mid[None]).argmin(axis=0)
            use[nearest, np.flatnonzero(lost)] = True
        contained = contained | use
    out = []
    for w, window in enumerate(windows):
        ids = np.flatnonzero(contained[w])
        norm = np.clip(normalise(intervals[ids], window), 0.0, 1.0)
        out.append((ids, norm))
    return out


def pyramid_intervals(duration: float, length: float, base: float, levels: int, overlap: float) -> np.ndarray:
    """The detection queries over a whole video: sizes base * 2^k * window length, stride overlap * size.

    Each level starts at 0 s and its last query is aligned to the video end; sizes above the window
    length or the video duration are skipped. Returns (M, 2) seconds, level by level.
    """
    rows = []
    for level in range(levels):
        size = base * (2**level) * length
        if size > length + EPS or size > duration + EPS:
            break
        step = max(size * overlap, EPS)
        starts = step * np.arange(int(np.floor((duration - size) / step + EPS)) + 1)
        if starts[-1] + size < duration - EPS:
            starts = np.append(starts, duration - size)
        rows.append(np.stack([starts, starts + size], axis=1))
    if not rows:  # a video shorter than the smallest query: one query over all of it
        return np.array([[0.0, duration]])
    return np.concatenate(rows)


def second_intervals(num_seconds: int) -> np.ndarray:
    """(S, 2) the intervals [s, s+1) of the per-second curve."""
    s = np.arange(num_seconds, dtype=np.float64)
    return np.stack([s, s + 1], axis=1)


def with_background(segments: list[Segment], duration: float, chunk: float) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth plus the gaps between activities as class-0 pieces of at most `chunk` seconds.

    Returns (intervals (G, 2), labels (G,)), sorted by start.
    """
    times = [(s.start, s.end, s.label) for s in sorted(segments, key=lambda s: s.start)]
    rows: list[tuple[float, float, int]] = []
    cursor = 0.0
    for start, end, label in times + [(duration, duration, -1)]:
        if start - cursor > EPS:
            pieces = max(1, int(np.ceil((start - cursor) / chunk - EPS)))
            edges = np.linspace(cursor, start, pieces + 1)
            rows.extend((float(a), float(b), BACKGROUND) for a, b in zip(edges[:-1], edges[1:]))
        if label >= 0 and end > start:
            rows.append((float(start), float(end), int(label)))
        cursor = max(cursor, end)
    if not rows:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    arr = np.array([(a, b) for a, b, _ in rows], dtype=np.float64)
    return arr, np.array([lab for _, _, lab in rows], dtype=np.int64)


def coverage_labels(intervals: np.ndarray, seg_times: np.ndarray, seg_labels: np.ndarray) -> np.ndarray:
    """Label of each interval = the class covering most of it (class 0 if nothing covers it)."""
    intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    if len(seg_times) == 0:
        return np.full(len(intervals), BACKGROUND, dtype=np.int64)
    inter = np.clip(
        np.minimum(intervals[:, None, 1], seg_times[None, :, 1])
        - np.maximum(intervals[:, None, 0], seg_times[None, :, 0]),
        0.0,
        None,
    )  # (M, G)
    num_classes = int(seg_labels.max()) + 1
    per_class = np.zeros((len(intervals), num_classes))
    for c in np.unique(seg_labels):
        per_class[:, c] = inter[:, seg_labels == c].sum(axis=1)
    labels = per_class.argmax(axis=1)
    labels[per_class.max(axis=1) <= 0] = BACKGROUND
    return labels.astype(np.int64)


def interval_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """tIoU matrix of (M, 2) x (G, 2) -> (M, G)."""
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None
    )
    union = np.maximum(a[:, None, 1], b[None, :, 1]) - np.minimum(a[:, None, 0], b[None, :, 0])
    return inter / np.maximum(union, EPS)


def detection_targets(
    intervals: np.ndarray, segments: list[Segment], num_classes: int, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets of detection queries from their best-IoU activity (class >= 1).

    Returns (cls (M, C) float32 one-hot or zeros, offsets (M, 2) float32, positive (M,) bool).
    A query whose best tIoU reaches `iou_threshold` (or that is an activity's best query) is a
    positive of that class, with offsets
    ((gt_start - q_start) / q_len, (gt_end - q_end) / q_len); a query touching no activity is a
    positive of class 0 (normal driving, no offsets); the rest are background (all zeros).
    """
    intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    cls = np.zeros((len(intervals), num_classes), dtype=np.float32)
    offsets = np.zeros((len(intervals), 2), dtype=np.float32)
    actions = [s for s in segments if s.label != BACKGROUND and s.end > s.start]
    if not actions:
        cls[:, BACKGROUND] = 1.0
        return cls, offsets, np.zeros(len(intervals), dtype=bool)
    gt = np.array([(s.start, s.end) for s in actions], dtype=np.float64)
    labels = np.array([s.label for s in actions], dtype=np.int64)
    iou = interval_iou(intervals, gt)  # (M, G)
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(len(intervals)), best]
    positive = best_iou >= iou_threshold
    # Every activity keeps at least its best-matching query, so short or odd-sized ones are learned.
    best_query = iou.argmax(axis=0)  # (G,)
    has_overlap = iou[best_query, np.arange(len(gt))] > 0
    best[best_query[has_overlap]] = np.flatnonzero(has_overlap)
    positive[best_query[has_overlap]] = True
    cls[np.flatnonzero(positive), labels[best[positive]]] = 1.0
    cls[best_iou <= 0, BACKGROUND] = 1.0
    q_len = np.maximum(intervals[:, 1] - intervals[:, 0], EPS)
    offsets[:, 0] = (gt[best, 0] - intervals[:, 0]) / q_len
    offsets[:, 1] = (gt[best, 1] - intervals[:, 1]) / q_len
    offsets[~positive] = 0.0
    return cls, offsets, positive


def clipped_queries(
    seg_times: np.ndarray, seg_labels: np.ndarray, window: Window, min_query: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth (and background) intervals overlapping the window, clipped to it.

    A cut interval is kept only if at least `min_query` seconds of it are inside (or all of it).
    """
    if len(seg_times) == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    start = np.maximum(seg_times[:, 0], window.start)
    end = np.minimum(seg_times[:, 1], window.end)
    inside = end - start
    full = seg_times[:, 1] - seg_times[:, 0]
    keep = (inside > EPS) & ((inside >= min_query) | (inside >= full - EPS))
    return np.stack([start[keep], end[keep]], axis=1), seg_labels[keep]


def random_intervals(rng: np.random.Generator, window: Window, count: int, min_len: float) -> np.ndarray:
    """`count` random intervals inside the window, lengths log-uniform in [min_len, window length]."""
    if count <= 0:
        return np.zeros((0, 2))
    low = np.log(max(min(min_len, window.length), EPS))
    lengths = np.exp(rng.uniform(low, np.log(window.length), size=count))
    starts = window.start + rng.uniform(0.0, 1.0, size=count) * (window.length - lengths)
    return np.stack([starts, starts + lengths], axis=1)
