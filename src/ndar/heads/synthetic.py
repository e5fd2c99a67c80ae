"""Synthetic feature videos for tests and benchmarks of the heads (no video decoding involved).

Each session gets a timeline (every chosen class once, in random order, with background gaps) and
one feature stream per view: a per-class mean vector shared by all videos plus Gaussian noise, over
sliding windows. `noise` sets how hard the problem is; `blur` mixes each window with its neighbours
so that boundaries are soft, as real window features straddling two activities are.
"""

from __future__ import annotations

import numpy as np

from ndar.data.records import Segment
from ndar.heads.base import FeatureVideo
from ndar.taxonomy import NUM_CLASSES


def make_timeline(
    rng: np.random.Generator,
    classes: list[int],
    duration: float,
    length: tuple[int, int],
    gap: tuple[int, int],
    first: tuple[int, int] = (3, 7),
    margin: float = 3.0,
) -> list[Segment]:
    """Each class once, in random order, integer seconds (ranges inclusive), separated by background
    gaps; the first starts after `first` seconds; classes that would end within `margin` s of the end
    are dropped."""
    order = rng.permutation(classes)
    t, segments = float(rng.integers(first[0], first[1] + 1)), []
    for label in order:
        seconds = float(rng.integers(length[0], length[1] + 1))
        if t + seconds > duration - margin:
            break
        segments.append(Segment(int(label), t, t + seconds))
        t += seconds + float(rng.integers(gap[0], gap[1] + 1))
    return segments


def make_feature_videos(
    n_drivers: int = 6,
    sessions: int = 2,
    dims: dict[str, int] | None = None,
    duration: float = 120.0,
    classes: tuple[int, ...] = (1, 2, 4, 7, 9),
    length: tuple[int, int] = (5, 11),
    gap: tuple[int, int] = (4, 9),
    first: tuple[int, int] = (3, 7),
    window_stride: float = 0.5,
    window_len: float = 1.0,
    noise: float = 1.0,
    blur: int = 1,
    seed: int = 0,
    split: str = "A1",
    first_driver: int = 101,
) -> list[FeatureVideo]:
    """`n_drivers` x `sessions` videos with keys "<driver>_<session>"; A2 videos carry no segments."""
    dims = dims or {"rear": 8, "dashboard": 8}
    means = {
        name: np.random.default_rng(1000 + i).normal(0, 1.5, (NUM_CLASSES, d))
        for i, (name, d) in enumerate(dims.items())
    }
    rng = np.random.default_rng(seed)
    t_start = np.arange(0.0, duration - window_len + 1e-9, window_stride)
    t_end = t_start + window_len
    centres = (t_start + t_end) / 2
    kernel = np.ones(blur) / blur
    videos = []
    for d in range(n_drivers):
        for s in range(1, sessions + 1):
            segments = make_timeline(rng, list(classes), duration, length, gap, first)
            label = np.zeros(len(t_start), dtype=int)
            for seg in segments:
                label[(centres >= seg.start) & (centres < seg.end)] = seg.label
            streams = {}
            for name, dim in dims.items():
                clean = means[name][label]  # (N, D)
                if blur > 1:
                    clean = np.stack(
                        [np.convolve(clean[:, j], kernel, mode="same") for j in range(dim)], axis=1
                    )
                streams[name] = (clean + rng.normal(0, noise, (len(label), dim))).astype(np.float32)
            videos.append(
                FeatureVideo(
                    key=f"{first_driver + d}_{s}",
                    streams=streams,
                    t_start=t_start.copy(),
                    t_end=t_end.copy(),
                    duration=duration,
                    segments=segments if split == "A1" else [],
                    split=split,
                )
            )
    return videos
