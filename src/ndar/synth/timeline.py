"""Activity timelines that follow the real ground-truth statistics (docs/domain.md).

Every class 1..15 occurs exactly once per session, in random order, separated by normal driving.
Durations are drawn per class from a piecewise-linear quantile function through the real (min,
median, max) of the 2024 A2 ground truth; gaps from one through (3, 20, 65) s. Both are multiplied by
`time_scale` and rounded to whole seconds (the official labels are whole seconds), with a floor so a
compressed activity still lasts long enough to be seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# class -> (min, median, max) seconds, 2024 A2 ground truth (domain.md). Drinking's min 0 is raised to 1.
DURATION_STATS: dict[int, tuple[float, float, float]] = {
    1: (1, 2, 17),
    2: (4, 12, 23),
    3: (3, 13, 21),
    4: (2, 14, 23),
    5: (5, 13, 28),
    6: (4, 12, 29),
    7: (2, 4, 16),
    8: (2, 6, 22),
    9: (2, 3, 14),
    10: (2, 3, 13),
    11: (5, 13.5, 24),
    12: (3, 13, 22),
    13: (1, 3.5, 23),
    14: (3, 14, 24),
    15: (11, 15.5, 27),
}
GAP_STATS: tuple[float, float, float] = (3, 20, 65)


@dataclass(frozen=True)
class Activity:
    """One activity of a timeline: class id and [start, end) in whole seconds."""

    label: int
    start: int
    end: int


@dataclass(frozen=True)
class Timeline:
    """The activities of one session (classes 1..15, sorted, non-overlapping) and its length."""

    activities: tuple[Activity, ...]
    duration: int  # seconds of video

    def with_background(self) -> list[Activity]:
        """Activities plus the class-0 (normal driving) pieces between them, covering [0, duration)."""
        pieces: list[Activity] = []
        cursor = 0
        for act in self.activities:
            if act.start > cursor:
                pieces.append(Activity(0, cursor, act.start))
            pieces.append(act)
            cursor = act.end
        if self.duration > cursor:
            pieces.append(Activity(0, cursor, self.duration))
        return pieces

    def labels_per_second(self) -> np.ndarray:
        """(duration,) int: class of each second [s, s+1)."""
        out = np.zeros(self.duration, dtype=np.int64)
        for act in self.activities:
            out[act.start : act.end] = act.label
        return out


def _draw_quantile(rng: np.random.Generator, stats: tuple[float, float, float]) -> float:
    low, median, high = stats
    return float(np.interp(rng.random(), [0.0, 0.5, 1.0], [low, median, high]))


def _scaled(value: float, time_scale: float, floor: int) -> int:
    return max(floor, int(round(value * time_scale)))


def make_timeline(
    rng: np.random.Generator, time_scale: float = 1.0, min_activity_s: int = 2, min_gap_s: int = 2
) -> Timeline:
    """Random order of classes 1..15, real-like durations and gaps, lead-in and tail of normal driving."""
    order = rng.permutation(np.arange(1, 16))
    durations = [
        _scaled(_draw_quantile(rng, DURATION_STATS[int(c)]), time_scale, min_activity_s) for c in order
    ]
    gaps = [_scaled(_draw_quantile(rng, GAP_STATS), time_scale, min_gap_s) for _ in range(len(order) + 1)]
    return _assemble([int(c) for c in order], durations, gaps)


def _assemble(order: list[int], durations: list[int], gaps: list[int]) -> Timeline:
    activities = []
    cursor = gaps[0]
    for label, duration, gap in zip(order, durations, gaps[1:]):
        activities.append(Activity(label, cursor, cursor + duration))
        cursor += duration + gap
    return Timeline(tuple(activities), cursor)


def perturb_timeline(
    rng: np.random.Generator, base: Timeline, jitter_s: int = 2, min_activity_s: int = 2, min_gap_s: int = 2
) -> Timeline:
    """A second session of the same driver: same order, durations and gaps moved by up to `jitter_s`."""
    order = [a.label for a in base.activities]
    durations = [a.end - a.start for a in base.activities]
    starts = [a.start for a in base.activities]
    ends = [a.end for a in base.activities]
    gaps = [starts[0]] + [s - e for s, e in zip(starts[1:], ends)] + [base.duration - ends[-1]]

    def jitter(values: list[int], floor: int) -> list[int]:
        moves = rng.integers(-jitter_s, jitter_s + 1, size=len(values))
        return [max(floor, int(v + m)) for v, m in zip(values, moves)]

    return _assemble(order, jitter(durations, min_activity_s), jitter(gaps, min_gap_s))
