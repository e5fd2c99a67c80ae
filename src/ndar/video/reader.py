"""Streaming, in-order frame reader (PyAV): every frame is decoded exactly once.

Frames come out in presentation order with their real timestamps (pts x time_base). Resizing on
decode (swscale, straight from YUV) is much cheaper than converting a 1080p frame to RGB and
resizing it afterwards, and the frames kept in memory are then small.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

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


class RgbConverter:
    """A frame as (H, W, 3) uint8 RGB at a size, swscale straight from YUV, through one swscale
    context per (thread, size, interpolation).

    Why not `VideoFrame.reformat`: it builds a fresh swscale context on every call, which costs more
    than converting a small frame (0.47-0.59 ms against 0.06-0.10 ms per 160x120 frame at the
    synthetic job's sizes, the same pixels; bench/RESULTS.md, Extraction). A context is not
    thread-safe, hence one per thread.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, frame: av.VideoFrame, size: Size, interpolation: str = "BILINEAR") -> np.ndarray:
        if size is None:
            return frame.to_ndarray(format="rgb24")
        reformatters = self._local.__dict__.setdefault("reformatters", {})
        key = (size, interpolation)
        if key not in reformatters:
            reformatters[key] = VideoReformatter()
        height, width = size
        return (
            reformatters[key]
            .reformat(frame, format="rgb24", width=width, height=height, interpolation=interpolation)
            .to_ndarray()
        )


_TO_RGB = RgbConverter()  # thread-local contexts: safe to share across threads


def iter_frames(
    path: str | Path,
    sizes: Sequence[Size] = (None,),
    threads: int = 0,
    interpolation: str = "BILINEAR",
    convert_threads: int = 0,
) -> Iterator[DecodedFrame]:
    """Yield the frames of the first video stream of `path`, in order, each converted to `sizes`.

    `threads` is the decoder's thread count (0 lets FFmpeg choose). `convert_threads` > 0 converts
    (swscale resize + YUV->RGB) in that many threads while decoding goes on: for 1080p input the
    conversion costs more than the decoding (6 vs 4 ms a frame on one core) and swscale releases the
    GIL; at most 2 x convert_threads frames are in flight, so memory stays bounded. Errors while
    opening or decoding raise `VideoError` naming the file and the frame reached, so a truncated file
    is never silently taken for a short one by this function (the caller compares the count with
    the header).
    """
    path = Path(path)
    frames = _decode(path, threads)
    if convert_threads <= 0:
        for index, time, frame in frames:
            yield DecodedFrame(index, time, _convert(path, index, frame, sizes, interpolation))
        return
    with ThreadPoolExecutor(convert_threads, thread_name_prefix="ndar-convert") as pool:
        in_flight: deque = deque()  # (index, time, future), in presentation order
        for index, time, frame in frames:
            future = pool.submit(_convert, path, index, frame, sizes, interpolation)
            in_flight.append((index, time, future))
            if len(in_flight) >= 2 * convert_threads:
                done_index, done_time, future = in_flight.popleft()
                yield DecodedFrame(done_index, done_time, future.result())
        while in_flight:
            done_index, done_time, future = in_flight.popleft()
            yield DecodedFrame(done_index, done_time, future.result())


def _convert(path: Path, index: int, frame: av.VideoFrame, sizes: Sequence[Size], interpolation: str) -> list:
    try:
        return [_TO_RGB(frame, size, interpolation) for size in sizes]
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: converting frame {index} failed: {err}") from err


def frame_to_rgb(frame: av.VideoFrame, size: Size, interpolation: str = "BILINEAR") -> np.ndarray:
    """One decoded frame as (H, W, 3) uint8 RGB at `size` (swscale from YUV), as `iter_frames` does."""
    return _TO_RGB(frame, size, interpolation)


def decode_frames(path: Path, threads: int = 0) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """(index, seconds, undecoded-to-RGB frame) in presentation order, for callers that convert only
    some frames (the clip cache); `VideoError` on failure."""
    return _decode(Path(path), threads)


def _decode(path: Path, threads: int) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """(index, seconds, frame) of every frame in presentation order; `VideoError` on failure."""
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
                yield index, time, frame
                index += 1
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: decoding failed at frame {index}: {err}") from err
