"""Rolling window cutter: windows of one backbone cut from a bounded ring buffer as frames arrive.

A window starts every `stride` frames and spans `window_len` frames: window k covers frames
[k * stride, k * stride + window_len). The clip fed to the backbone is the LAST
`num_frames * sampling_rate` frames of the window taken every `sampling_rate` frames (the seed
solution's rule: a window every 16 frames, the last 32 frames at sampling rate 2 for 16-frame
ViTs). Only complete windows are cut; the tail shorter than a window is not covered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSpec:
    num_frames: int = 16  # frames fed to the backbone
    sampling_rate: int = 2  # take every n-th frame
    stride: int = 16  # frames between window starts
    window: int | None = None  # frames a window spans; None = num_frames * sampling_rate

    def __post_init__(self) -> None:
        for name in ("num_frames", "sampling_rate", "stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"WindowSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.window is not None and self.window < self.span:
            raise ValueError(
                f"WindowSpec.window={self.window} is shorter than num_frames * sampling_rate = {self.span}"
            )

    @property
    def span(self) -> int:
        """Frames covered by the sampled clip."""
        return self.num_frames * self.sampling_rate

    @property
    def window_len(self) -> int:
        return self.window if self.window is not None else self.span

    @property
    def offsets(self) -> list[int]:
        """Positions of the sampled frames inside a window (the last `span` frames)."""
        first = self.window_len - self.span
        return [first + j * self.sampling_rate for j in range(self.num_frames)]

    def frame_indices(self, start: int) -> list[int]:
        return [start + o for o in self.offsets]

    def to_dict(self) -> dict:
        return {
            "num_frames": self.num_frames,
            "sampling_rate": self.sampling_rate,
            "stride": self.stride,
            "window_len": self.window_len,
            "offsets": self.offsets,
        }


def window_starts(num_frames_total: int, window_len: int, stride: int) -> list[int]:
    """First frame of every complete window: 0, stride, 2*stride, ... while start + window_len <= total."""
    if window_len < 1 or stride < 1:
        raise ValueError(f"window_len and stride must be >= 1, got {window_len} and {stride}")
    return list(range(0, num_frames_total - window_len + 1, stride))


@dataclass
class Window:
    index: int  # k: the k-th window of the video
    start: int  # first frame of the window
    frame_indices: list[int]  # frames of the clip
    t_start: float  # timestamp of the first frame used (seconds)
    t_end: float  # timestamp of the last frame used (seconds)
    clip: np.ndarray  # (T, H, W, 3) uint8


class WindowCutter:
    """Feed frames in order with `push`; it returns the windows completed by that frame.

    The ring buffer holds at most `window_len` frames, so memory is bounded by one window whatever the
    video's length. Frames must arrive with consecutive indices starting at 0.
    """

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self._buffer: deque[tuple[float, np.ndarray]] = deque(maxlen=spec.window_len)
        self._next_index = 0
        self._next_start = 0
        self._count = 0

    def push(self, index: int, time: float, image: np.ndarray) -> Window | None:
        if index != self._next_index:
            raise ValueError(f"WindowCutter expected frame {self._next_index}, got frame {index}")
        self._next_index += 1
        self._buffer.append((time, image))
        if index != self._next_start + self.spec.window_len - 1:
            return None
        window = self._cut(self._next_start)
        self._next_start += self.spec.stride
        return window

    def _cut(self, start: int) -> Window:
        picked = [self._buffer[o] for o in self.spec.offsets]  # buffer[0] is frame `start`
        clip = np.stack([image for _, image in picked])  # (T, H, W, 3)
        window = Window(
            index=self._count,
            start=start,
            frame_indices=self.spec.frame_indices(start),
            t_start=picked[0][0],
            t_end=picked[-1][0],
            clip=clip,
        )
        self._count += 1
        return window
