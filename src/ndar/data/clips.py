"""Training clip samples for fine-tuning one view: labelled activities plus normal-driving clips.

One sample per labelled segment of the view (classes 1..15, the view's own labels), plus a fixed
number of class-0 samples per video cut from the gaps between activities. Gap clips keep `margin`
seconds away from every activity (label boundaries are only accurate to about a second) and never
overlap each other. The fine-tuning stage samples frames inside [start, end] of each row.

Everything is deterministic: the random generator of each video is seeded from (seed, file stem),
so the samples of a video do not change when other videos are added or removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ndar import taxonomy
from ndar.data.records import VideoRecord

COLUMNS = ["path", "driver", "session", "view", "label", "start", "end", "fold"]


def _video_rng(seed: int, stem: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{stem}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def activity_gaps(
    video: VideoRecord, margin: float = 1.0, duration: float | None = None
) -> list[tuple[float, float]]:
    """Intervals free of activities (classes 1..15), shrunk by `margin` on the activity sides.

    The tail after the last activity is used only when the video's `duration` is known.
    """
    busy = sorted((s.start, s.end) for s in video.segments if s.label != taxonomy.BACKGROUND)
    gaps: list[tuple[float, float]] = []
    cursor = 0.0
    first = True
    for start, end in busy:
        left = cursor if first else cursor + margin
        if start - margin > left:
            gaps.append((left, start - margin))
        cursor = max(cursor, end)
        first = False
    if duration is not None:
        left = cursor + margin if busy else 0.0
        if duration > left:
            gaps.append((left, duration))
    return gaps


def sample_background(
    gaps: list[tuple[float, float]],
    count: int,
    clip_seconds: float,
    min_seconds: float,
    rng: np.random.Generator,
) -> list[tuple[float, float]]:
    """Up to `count` non-overlapping clips inside the gaps, each `clip_seconds` long (or the whole gap
    when it is shorter but at least `min_seconds`). Longer gaps are picked more often."""
    free = [(a, b) for a, b in gaps if b - a >= min_seconds]
    clips: list[tuple[float, float]] = []
    while len(clips) < count and free:
        lengths = np.array([b - a for a, b in free])
        index = int(rng.choice(len(free), p=lengths / lengths.sum()))
        a, b = free.pop(index)
        length = min(clip_seconds, b - a)
        start = a + float(rng.uniform(0.0, (b - a) - length))
        end = start + length
        clips.append((round(start, 3), round(end, 3)))
        free += [(x, y) for x, y in ((a, start), (end, b)) if y - x >= min_seconds]
    return sorted(clips)


def build_clip_samples(
    videos: Iterable[VideoRecord],
    view: str,
    folds: dict[str, int],
    background_per_video: int = 2,
    min_seconds: float = 2.0,
    seed: int = 0,
    background_seconds: float = 8.0,
    margin: float = 1.0,
    min_activity_seconds: float = 1.0,
    durations: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Clip table (columns `COLUMNS`) of the labelled videos of `view`.

    `folds` maps driver -> fold; a labelled driver without a fold is an error. Activities shorter
    than `min_activity_seconds` (e.g. a 0 s sip) are widened around their centre so a clip has frames
    to sample. `durations` (path -> seconds) lets gap clips use the tail after the last activity.
    """
    view = taxonomy.canonical_view(view)
    rows: list[dict] = []
    for video in videos:
        if video.view != view or not video.segments:
            continue
        if video.driver not in folds:
            raise ValueError(f"driver {video.driver} ({video.path}) has no fold; folds cover {sorted(folds)}")
        base = {"path": str(video.path), "driver": video.driver, "session": video.session, "view": view}
        fold = folds[video.driver]
        for segment in video.segments:
            if segment.label == taxonomy.BACKGROUND:
                continue
            start, end = segment.start, segment.end
            if end - start < min_activity_seconds:
                centre = (start + end) / 2
                start = max(0.0, centre - min_activity_seconds / 2)
                end = start + min_activity_seconds
            rows.append({**base, "label": segment.label, "start": start, "end": end, "fold": fold})
        duration = None if durations is None else durations.get(str(video.path))
        gaps = activity_gaps(video, margin=margin, duration=duration)
        rng = _video_rng(seed, video.stem)
        for start, end in sample_background(gaps, background_per_video, background_seconds, min_seconds, rng):
            rows.append({**base, "label": taxonomy.BACKGROUND, "start": start, "end": end, "fold": fold})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame.astype(
        {"session": "int64", "label": "int64", "start": "float64", "end": "float64", "fold": "int64"}
    )
    return frame.sort_values(["driver", "session", "start", "label"], kind="stable").reset_index(drop=True)


def read_clip_samples(path: str | Path) -> pd.DataFrame:
    """Read a `clips_<view>.csv` written by `prepare`, keeping driver ids as strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clip table {path} not found (run `python -m ndar prepare` first)")
    frame = pd.read_csv(path, dtype={"driver": str, "path": str, "view": str})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {COLUMNS}")
    return frame[COLUMNS]
