"""Per-second frame statistics of one video: mean grey thumbnail and mean absolute frame difference.

Deliberately simple (it is the reference to beat): no learning of features, no motion model. The
frame difference is what sees a moving hand; the mean thumbnail sees where the body is.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def read_grey_thumbnails(
    path: str | Path, width: int, height: int, pool: int = 4, chunk: int = 256
) -> tuple[np.ndarray, float]:
    """All frames of a video as grey thumbnails (N, height, width) float32 in [0, 1], and the fps.

    decord decodes and resizes in one step (ffmpeg scaling) to `pool` times the thumbnail size, and
    the last step is a `pool` x `pool` average: decord 0.6 fails on some very small output sizes
    (e.g. 16x12), and averaging is a cleaner shrink than one scaling step anyway.
    """
    import decord

    reader = decord.VideoReader(str(path), width=width * pool, height=height * pool, num_threads=1)
    fps = float(reader.get_avg_fps())
    parts = []
    for start in range(0, len(reader), chunk):
        batch = reader.get_batch(
            list(range(start, min(len(reader), start + chunk)))
        ).asnumpy()  # (n, pH, pW, 3)
        grey = batch.astype(np.float32).mean(axis=-1) / 255.0
        parts.append(grey.reshape(len(grey), height, pool, width, pool).mean(axis=(2, 4)))  # (n, H, W)
    if not parts:
        raise ValueError(f"{path}: video has no frames")
    return np.concatenate(parts), fps


def per_second_features(frames: np.ndarray, fps: float, normalise: bool) -> np.ndarray:
    """(S, 2 * H * W): for each second [s, s+1), the mean thumbnail and the mean |frame difference|."""
    n = len(frames)
    seconds = math.ceil(n / fps - 1e-6)
    flat = frames.reshape(n, -1)  # (N, H*W)
    if normalise:
        flat = flat - flat.mean(axis=0, keepdims=True)
    diff = np.abs(np.diff(flat, axis=0, prepend=flat[:1]))  # (N, H*W)
    second_of_frame = np.minimum((np.arange(n) / fps).astype(int), seconds - 1)
    counts = np.bincount(second_of_frame, minlength=seconds)[:, None].clip(1)
    mean = np.zeros((seconds, flat.shape[1]), dtype=np.float64)
    motion = np.zeros_like(mean)
    np.add.at(mean, second_of_frame, flat)
    np.add.at(motion, second_of_frame, diff)
    return np.concatenate([mean / counts, motion / counts], axis=1).astype(np.float32)


def add_context(features: np.ndarray, context: int) -> np.ndarray:
    """(S, D) -> (S, 2D): each second's features plus their mean over [s - context, s + context]."""
    if context <= 0:
        return features
    from scipy.ndimage import uniform_filter1d

    around = uniform_filter1d(features, size=2 * context + 1, axis=0, mode="nearest")
    return np.concatenate([features, around], axis=1)
