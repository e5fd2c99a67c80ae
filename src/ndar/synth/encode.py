"""Write frames as H.264 MP4 with PyAV: yuv420p, fixed GOP, one encoder thread (same input, same bytes)."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ndar.utils.io import atomic_path


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    width: int,
    height: int,
    crf: int = 23,
    gop: int = 30,
    preset: str = "ultrafast",
) -> int:
    """Encode `frames` ((H * 3 // 2, W) uint8 planar yuv420p) into `path` atomically; returns the count.

    Why one thread and fixed key frames: x264's multi-threaded encoding can make bitstreams differ
    between runs, and scene-cut key frames would make the GOP depend on the content. Frames get
    pts 0, 1, 2, ... in a 1/fps time base, so decoders report exactly `fps` and the frame count.
    """
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width = width
            stream.height = height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = 1 / rate
            stream.codec_context.thread_count = 1
            stream.options = {
                "crf": str(crf),
                "preset": preset,
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:threads=1:bframes=0",
            }
            for planes in frames:
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
                frame.pts = count
                frame.time_base = stream.codec_context.time_base
                container.mux(stream.encode(frame))
                count += 1
            container.mux(stream.encode(None))
    return count
