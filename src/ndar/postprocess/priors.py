"""Post-processing with the task's priors: per-second class curve -> final segments of one video.

Every class occurs exactly once per video, activities last from about 1 s to 30 s and never overlap
(domain.md). The rules, applied in this order (each can be switched off or set per class):
1. `smooth`: centred moving average of the curve (seconds);
2. per-class threshold: candidate pieces are the runs where the smoothed probability >= threshold;
3. `merge_gap`: same-class pieces separated by at most this many seconds become one piece;
4. per-class `min_dur` drops shorter pieces; `max_dur` trims longer ones to the window of that
   length with the largest probability mass (trimming keeps the class, dropping would lose it);
5. `one_per_class`: the piece with the largest mass is kept per class; with `reassign`, a leftover
   piece goes to the missing class (no piece of its own) with the highest mean probability over the
   leftover's span, if that mean is >= `reassign_min`;
5b. `fill_missing`: a class still without a segment (every class occurs once per video) gets the
   `fill_len`-second window where its probability mass is largest, if the window's mean
   probability is >= `fill_min` (a wrong guess costs one more in the mOS denominator, a right one
   scores its overlap, so the tuner decides whether and how boldly to guess);
6. `resolve_overlaps`: segments taken by decreasing score; a segment overlapping an already kept
   one is cut to its longest non-overlapping part, and dropped if that is shorter than `min_dur`;
7. `integer_seconds`: boundaries rounded to whole seconds (halves up), as the writer does, so that
   tuning sees the exact submitted segments.
Segment score = mean smoothed probability over the segment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ndar.config import ConfigError
from ndar.postprocess.simple import runs_above, smooth_curve
from ndar.taxonomy import NUM_CLASSES, SCORED_CLASSES

Segment = tuple[int, float, float, float]  # (label, start, end, score)


@dataclass
class PriorParams:
    """Post-processing parameters (what the ensemble tunes)."""

    threshold: float = 0.3
    """default per-class probability threshold for a candidate piece"""
    class_thresholds: dict[int, float] = field(default_factory=dict)
    """per-class overrides of `threshold` (class id -> threshold)"""
    smooth: int = 1
    """moving-average window in seconds (1 = none)"""
    merge_gap: float = 2.0
    """same-class pieces with a gap of at most this many seconds are merged"""
    min_dur: float = 1.0
    """pieces shorter than this (seconds) are dropped"""
    max_dur: float = 30.0
    """pieces longer than this are trimmed to their best window of this length"""
    class_min_dur: dict[int, float] = field(default_factory=dict)
    """per-class overrides of `min_dur`"""
    class_max_dur: dict[int, float] = field(default_factory=dict)
    """per-class overrides of `max_dur`"""
    one_per_class: bool = True
    """keep at most one segment per class per video"""
    reassign: bool = False
    """give leftover pieces to missing classes"""
    reassign_min: float = 0.1
    """minimum mean probability of the missing class over a leftover piece"""
    fill_missing: bool = False
    """give each class still missing its best window of `fill_len` seconds"""
    fill_len: float = 8.0
    """length (seconds) of a filled-in segment"""
    fill_min: float = 0.05
    """minimum mean probability of the class over the filled-in window"""
    resolve_overlaps: bool = True
    """cut lower-scored segments where they overlap higher-scored ones"""
    integer_seconds: bool = True
    """round boundaries to whole seconds"""

    def __post_init__(self) -> None:
        """Per-class maps name scored classes: a typo'd id (99, or 0 = normal driving, never a
        segment) would otherwise be a setting that silently changes nothing."""
        for name in ("class_thresholds", "class_min_dur", "class_max_dur"):
            unknown = sorted(k for k in getattr(self, name) if k not in SCORED_CLASSES)
            if unknown:
                raise ConfigError(
                    f"{name}: class id(s) {unknown} are not scored classes "
                    f"({SCORED_CLASSES[0]}..{SCORED_CLASSES[-1]})"
                )

    def class_threshold(self, label: int) -> float:
        return float(self.class_thresholds.get(label, self.threshold))

    def min_duration(self, label: int) -> float:
        return float(self.class_min_dur.get(label, self.min_dur))

    def max_duration(self, label: int) -> float:
        return float(self.class_max_dur.get(label, self.max_dur))


def merge_pieces(pieces: list[tuple[int, int]], gap: float) -> list[tuple[int, int]]:
    """Merge sorted [start, stop) pieces whose gap is <= `gap` seconds."""
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(pieces):
        if merged and start - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def trim_to_best_window(column: np.ndarray, start: int, stop: int, length: int) -> tuple[int, int]:
    """The sub-window of `length` seconds inside [start, stop) with the largest mass."""
    if stop - start <= length:
        return start, stop
    sums = np.convolve(column[start:stop], np.ones(length), mode="valid")  # (stop-start-length+1,)
    best = int(np.argmax(sums))
    return start + best, start + best + length


def class_pieces(column: np.ndarray, label: int, params: PriorParams) -> list[tuple[int, int]]:
    """Rules 2-4 for one class column (already smoothed)."""
    pieces = merge_pieces(runs_above(column, params.class_threshold(label)), params.merge_gap)
    min_dur, max_dur = params.min_duration(label), params.max_duration(label)
    out = []
    for start, stop in pieces:
        if stop - start < min_dur:
            continue
        if max_dur > 0 and stop - start > max_dur:
            start, stop = trim_to_best_window(column, start, stop, max(1, int(math.floor(max_dur))))
        out.append((start, stop))
    return out


def _mean(curve: np.ndarray, label: int, start: float, stop: float) -> float:
    a, b = int(math.floor(start)), max(int(math.ceil(stop)), int(math.floor(start)) + 1)
    return float(curve[a:b, label].mean()) if b > a else 0.0


def keep_one_per_class(
    curve: np.ndarray, pieces: dict[int, list[tuple[int, int]]], params: PriorParams
) -> list:
    """Rule 5: best piece (largest mass) per class, optional reassignment of leftovers."""
    kept: dict[int, tuple[int, int]] = {}
    leftovers: list[tuple[float, int, int]] = []
    for label, class_list in pieces.items():
        ranked = sorted(class_list, key=lambda p: (-curve[p[0] : p[1], label].sum(), p[0]))
        if ranked:
            kept[label] = ranked[0]
        for start, stop in ranked[1:]:
            leftovers.append((float(curve[start:stop, label].sum()), start, stop))
    if params.reassign:
        for _mass, start, stop in sorted(leftovers, key=lambda x: (-x[0], x[1])):
            missing = [c for c in SCORED_CLASSES if c not in kept]
            if not missing:
                break
            means = [float(curve[start:stop, c].mean()) for c in missing]
            best = int(np.argmax(means))
            if means[best] >= params.reassign_min:
                kept[missing[best]] = (start, stop)
    return [(label, float(a), float(b)) for label, (a, b) in kept.items()]


def resolve_overlaps(segments: list[Segment], params: PriorParams) -> list[Segment]:
    """Rule 6: higher scores keep their span; lower ones are cut to their longest free part."""
    kept: list[Segment] = []
    for label, start, end, score in sorted(segments, key=lambda s: (-s[3], s[1], s[0])):
        parts = [(start, end)]
        for _, ks, ke, _ in kept:
            next_parts = []
            for a, b in parts:
                if b <= ks or a >= ke:
                    next_parts.append((a, b))
                    continue
                if a < ks:
                    next_parts.append((a, ks))
                if b > ke:
                    next_parts.append((ke, b))
            parts = next_parts
        if not parts:
            continue
        a, b = max(parts, key=lambda p: (p[1] - p[0], -p[0]))
        if (a, b) != (start, end) and b - a < params.min_duration(label):
            continue
        kept.append((label, a, b, score))
    return kept


def round_segments(segments: list[Segment]) -> list[Segment]:
    """Rule 7: whole seconds, halves up (same rounding as `ndar.submission.write_submission`)."""
    return [(label, math.floor(s + 0.5), math.floor(e + 0.5), score) for label, s, e, score in segments]


def candidates_from_curve(curve: np.ndarray, params: PriorParams) -> tuple[np.ndarray, list]:
    """Smoothed curve and rules 2-5: [(label, start, end)] before overlap resolution."""
    curve = np.asarray(curve)
    if curve.ndim != 2 or curve.shape[1] != NUM_CLASSES:
        raise ValueError(f"curve has shape {curve.shape}; expected (seconds, {NUM_CLASSES})")
    smoothed = smooth_curve(curve, params.smooth)  # (S, 16)
    pieces = {label: class_pieces(smoothed[:, label], label, params) for label in SCORED_CLASSES}
    if params.one_per_class:
        chosen = keep_one_per_class(smoothed, pieces, params)
    else:
        chosen = [(label, float(a), float(b)) for label, ps in pieces.items() for a, b in ps]
    if params.fill_missing:
        chosen += fill_missing_classes(smoothed, {label for label, _, _ in chosen}, params)
    return smoothed, chosen


def fill_missing_classes(smoothed: np.ndarray, present: set[int], params: PriorParams) -> list:
    """Rule 5b: [(label, start, end)] for the classes not in `present` whose best window is probable enough."""
    length = max(1, min(int(round(params.fill_len)), len(smoothed)))
    out = []
    for label in SCORED_CLASSES:
        if label in present:
            continue
        sums = np.convolve(smoothed[:, label], np.ones(length), mode="valid")  # (S - length + 1,)
        start = int(np.argmax(sums))
        if sums[start] / length >= params.fill_min:
            out.append((label, float(start), float(start + length)))
    return out


def curve_to_segments(curve: np.ndarray, params: PriorParams) -> list[Segment]:
    """All rules: per-second curve (S, 16) of one video -> [(label, start, end, score)] sorted by start."""
    smoothed, chosen = candidates_from_curve(curve, params)
    segments = [(label, a, b, _mean(smoothed, label, a, b)) for label, a, b in chosen]
    return finish_segments(segments, params)


def finish_segments(segments: list[Segment], params: PriorParams) -> list[Segment]:
    """Rules 6-7 on scored segments; sorted by start then label."""
    if params.resolve_overlaps:
        segments = resolve_overlaps(segments, params)
    if params.integer_seconds:
        segments = round_segments(segments)
    return sorted(segments, key=lambda s: (s[1], s[0]))


def segments_priors(segments: list[Segment], params: PriorParams) -> list[Segment]:
    """The priors for scored segments without a curve (segment fusion output): per-class score
    threshold, min/max durations (longer ones are dropped here, as there is no curve to trim by),
    best score per class, overlap resolution, integer seconds."""
    kept: dict[int, Segment] = {}
    others: list[Segment] = []
    for seg in sorted(segments, key=lambda s: (-s[3], s[1], s[0])):
        label, start, end, score = seg
        if score < params.class_threshold(label):
            continue
        duration = end - start
        if duration < params.min_duration(label) or duration > params.max_duration(label) > 0:
            continue
        if params.one_per_class and label in kept:
            continue
        if params.one_per_class:
            kept[label] = seg
        else:
            others.append(seg)
    return finish_segments(list(kept.values()) + others, params)
