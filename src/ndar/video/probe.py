"""Read a video's frame rate, frame count, size and duration without decoding it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av


class VideoError(RuntimeError):
    """A video cannot be opened or decoded; the message names the file and what went wrong."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float  # average frame rate of the first video stream
    num_frames: int  # from the container; estimated from duration x fps when the container lacks it
    width: int
    height: int
    duration: float  # seconds

    def to_dict(self) -> dict:
        return {
            "fps": self.fps,
            "num_frames": self.num_frames,
            "width": self.width,
            "height": self.height,
            "duration": self.duration,
        }


def _stream_duration(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def probe(path: str | Path) -> VideoInfo:
    """Open `path` with PyAV and read the header of its first video stream."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            duration = _stream_duration(stream, container)
            num_frames = int(stream.frames) if stream.frames else int(round(duration * fps))
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            if width <= 0 or height <= 0:  # a broken header: every geometry after it would divide by 0
                raise VideoError(f"{path}: the video stream declares a {width}x{height} frame")
            return VideoInfo(
                fps=fps,
                num_frames=num_frames,
                width=width,
                height=height,
                duration=duration,
            )
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: cannot open video: {err}") from err
