"""Streaming, in-order frame reader (PyAV): every frame is decoded exactly once.

Frames come out in presentation order with their real timestamps (pts x time_base). Resizing on
decode (swscale, straight from YUV) is much cheaper than converting a 1080p frame to RGB and
resizing it afterwards, and the frames kept in memory are then small.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ndar.video.probe import VideoError

Size = tuple[int, int] | None  # (height, width) to resize to on decode; None keeps the native size


@dataclass
class DecodedFrame:
    index: int  # 0-based position in presentation order
    time: float  # seconds, from the frame's pts
    images: list[np.ndarray]  # one (H, W, 3) uint8 RGB image per requested size

    @property
    def image(self) -> np.ndarray:
        return self.images[0]


def _to_rgb(frame: av.VideoFrame, size: Size, interpolation: str) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24")
    height, width = size
    return frame.reformat(
        format="rgb24", width=width, height=height, interpolation=interpolation
    ).to_ndarray()


def iter_frames(
    path: str | Path,
    sizes: Sequence[Size] = (None,),
    threads: int = 0,
    interpolation: str = "BILINEAR",
) -> Iterator[DecodedFrame]:
    """Yield the frames of the first video stream of `path`, in order, each converted to `sizes`.

    `threads` is the decoder's thread count (0 lets FFmpeg choose). Errors while opening or decoding
    raise `VideoError` naming the file and the frame reached, so a truncated file is never silently
    taken for a short one by this function (the caller compares the count with the header).
    """
    path = Path(path)
    index = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if threads > 0:
                stream.codec_context.thread_count = threads
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            for frame in container.decode(stream):
                if frame.time is not None:
                    time = float(frame.time)
                elif fps > 0:
                    time = index / fps
                else:
                    raise VideoError(f"{path}: frame {index} has no timestamp and the stream no frame rate")
                yield DecodedFrame(index, time, [_to_rgb(frame, s, interpolation) for s in sizes])
                index += 1
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: decoding failed at frame {index}: {err}") from err
