"""Per-video mean frame, subtracted from every frame before a backbone sees it.

Why: the in-cabin cameras are fixed, so within one video the car, the seats and the driver's clothes
and accessories (hat, sunglasses) are nearly static. Subtracting the video's mean frame removes them
and leaves what the classes differ by: the pose and motion of the driver relative to their own
average. A model trained from scratch on a few drivers otherwise learns who is driving instead of
what they do (synthetic data, tiny backbone, fold-0 validation top-1: 0.24 without, 0.66 with).

Fine-tuning and extraction both call `video_mean_frame` (decord, native size, evenly spaced frames,
then resized to the size the caller decodes at), so training and extraction subtract the same mean.
The residual is stored back as uint8 around 128 (`subtract_mean`), so crops, augmentation and the
backbone's normalisation downstream stay unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ndar.video.decord_io import read_batch
from ndar.video.probe import VideoError

MEAN_SAMPLES = 64  # frames averaged per video: enough for a stable mean, a few seeks per video
RESIDUAL_OFFSET = 128.0  # uint8 value of a zero residual


def video_mean_frame(
    path: str | Path, size: tuple[int, int] | None = None, samples: int = MEAN_SAMPLES
) -> np.ndarray:
    """Mean of `samples` evenly spaced frames of `path`, (H, W, 3) float32 in 0..255.

    `size` = (height, width) to resize the mean to (see `resize_mean`); None keeps the native size.
    """
    return resize_mean(native_mean_frame(path, samples), size)


def native_mean_frame(path: str | Path, samples: int = MEAN_SAMPLES) -> np.ndarray:
    """Mean of `samples` evenly spaced frames at the native size (decord), (H, W, 3) float32.

    A video decord cannot open or seek through (truncated, corrupt, no video stream) raises
    `VideoError` naming the file, so callers that go on past one broken video can catch it.
    """
    import decord

    if not Path(path).is_file():
        raise FileNotFoundError(f"video not found: {path}")
    try:
        reader = decord.VideoReader(str(path), num_threads=1)
        count = len(reader)
        if count == 0:
            raise VideoError(f"{path}: no frames to average")
        indices = np.unique(np.linspace(0, count - 1, min(samples, count)).round().astype(np.int64))
        frames = read_batch(reader, indices.tolist())  # (S, H, W, 3)
    except (decord.DECORDError, RuntimeError) as err:  # decord raises both
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VideoError(f"{path}: cannot decode the frames of the mean frame: {reason}") from err
    return frames.astype(np.float32).mean(axis=0)


def resize_mean(mean: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """The mean frame resized to `size` (bilinear, antialiased); None or the same size: unchanged.

    Resizing is linear, so the resized mean equals the mean of resized frames up to the interpolation
    kernel; computing it once at the native size keeps it identical for every caller and size.
    """
    if size is None or tuple(mean.shape[:2]) == tuple(size):
        return mean
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(mean)).permute(2, 0, 1)[None]  # (1, 3, H, W)
    x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).contiguous().numpy()


def subtract_mean(frames: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """uint8 frames (..., H, W, 3) minus the float mean (H, W, 3), as uint8 centred on 128 (clipped)."""
    if frames.shape[-3:] != mean.shape:
        raise ValueError(f"frame shape {frames.shape[-3:]} differs from the mean frame's {mean.shape}")
    residual = frames.astype(np.float32) - mean + RESIDUAL_OFFSET
    return np.clip(np.rint(residual), 0, 255).astype(np.uint8)
