"""Open a video the way the later stages will and say, per file, why it cannot be used.

A container header can promise what the file does not hold: a faststart MP4 (index at the front)
cut short still announces every frame, and corrupt bytes mid-file pass a header probe. `extract`
and `finetune` then die deep inside a decoder, far from the file. So each video is checked here:

1. not empty, opens as a container with a video stream (`ndar.video.probe`);
2. a frame rate, a size and at least `MIN_SECONDS` of frames;
3. every packet is read and parsed, with only key frames decoded (`skip_frame=NONKEY`: the decoder
   still parses every slice header, so corrupt data mid-file raises, at a small part of the cost of
   a full decode); fewer packets than the header lists means a truncated file;
4. the last second is decoded in full, and must reach the end the header announces.

Corruption that leaves every header intact but garbles picture data is only found by decoding
every frame, which the fine-tuning and extraction stages do (and report per video).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import av
import av.logging

from ndar.data.records import Issue, SessionRecord, VideoRecord
from ndar.video.probe import VideoError, VideoInfo, probe

MIN_SECONDS = 1.0  # a shorter video cannot hold an activity; 3 frames is a broken export, not a recording


@dataclass
class VideoCheck:
    """The header facts of a video and the reason it cannot be used (None when it can)."""

    info: VideoInfo | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _scan_packets(path: Path) -> tuple[int, float]:
    """(packets holding data, end time in s of the last one), parsing every packet; raises on bad data."""
    count, end = 0, 0.0
    with av.logging.Capture(), av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        for packet in container.demux(stream):
            if not packet.size:
                continue
            count += 1
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            packet.decode()
    return count, end


def _decode_tail(path: Path, info: VideoInfo, seconds: float = 1.0) -> tuple[int, float]:
    """(frames decoded, time of the last one) decoding the final `seconds` of the video in full."""
    frames, last = 0, -1.0
    with av.logging.Capture(), av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = max(0.0, info.duration - seconds)
        if start > 0 and stream.time_base is not None:
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.time is not None:
                last = max(last, float(frame.time))
            frames += 1
    return frames, last


def check_video(path: str | Path) -> VideoCheck:
    """Check one video (see the module docstring); never raises for a bad file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        return VideoCheck(None, f"cannot open: {err}")
    if size == 0:
        return VideoCheck(None, "empty file (0 bytes)")
    try:
        info = probe(path)
    except VideoError as err:
        return VideoCheck(None, str(err).removeprefix(f"{path}: "))
    if not info.fps > 0 or info.width <= 0 or info.height <= 0:
        return VideoCheck(
            info, f"no usable frame rate or size (fps {info.fps:g}, {info.width}x{info.height})"
        )
    if info.num_frames < MIN_SECONDS * info.fps:
        reason = (
            f"only {info.num_frames} frame(s) ({info.num_frames / info.fps:.2f} s at {info.fps:g} fps): "
            f"shorter than {MIN_SECONDS:g} s, not a recording"
        )
        return VideoCheck(info, reason)
    try:
        packets, _ = _scan_packets(path)
    except av.error.FFmpegError as err:
        return VideoCheck(info, f"corrupt or unreadable data: {err}")
    if packets < info.num_frames:
        reason = f"truncated: the header lists {info.num_frames} frames, the file holds {packets}"
        return VideoCheck(info, reason)
    try:
        frames, last = _decode_tail(path, info)
    except av.error.FFmpegError as err:
        return VideoCheck(info, f"decoding the last second failed: {err}")
    frame_time = 1.0 / info.fps
    if frames == 0 or last < info.duration - 2 * frame_time - 1e-6:
        reason = f"decoding stops at {max(last, 0):.2f} s, the header says {info.duration:.2f} s (truncated?)"
        return VideoCheck(info, reason)
    return VideoCheck(info, None)


# Label times are whole seconds typed by hand: an end up to this much past the video is rounding.
END_TOLERANCE_S = 1.0
# The 2024 cameras of one session stop up to 2 s apart in 16 of its 168 A1 + A2 sessions; three A1
# sessions lose minutes of one view (16700_7, 38159_5, 59359_5): those are worth a warning.
LENGTH_TOLERANCE = 5.0


def check_videos(
    videos: list[VideoRecord], full: bool = True, progress=None
) -> tuple[dict[str, VideoCheck], list[Issue]]:
    """`check_video` (or the header probe alone when not `full`) of each video: path -> result, plus
    one error per unusable video."""
    results: dict[str, VideoCheck] = {}
    issues: list[Issue] = []
    for video in progress(videos) if progress else videos:
        result = check_video(video.path) if full else _header_only(video.path)
        results[str(video.path)] = result
        if result.problem:
            issues.append(Issue("error", str(video.path), None, f"cannot read video: {result.problem}"))
    return results, issues


def _header_only(path: Path) -> VideoCheck:
    if path.is_file() and path.stat().st_size == 0:
        return VideoCheck(None, "empty file (0 bytes)")
    try:
        return VideoCheck(probe(path), None)
    except VideoError as err:
        return VideoCheck(None, str(err).removeprefix(f"{path}: "))


def labels_beyond_videos(videos: list[VideoRecord], results: dict[str, VideoCheck]) -> list[Issue]:
    """An error on the label row of each segment that ends after its (readable) video does."""
    issues: list[Issue] = []
    for video in videos:
        result = results.get(str(video.path))
        if result is None or result.info is None or not result.ok:
            continue
        duration = result.info.duration
        for segment in video.segments:
            if segment.end > duration + END_TOLERANCE_S:
                file, _, row = segment.source.rpartition(":")
                reason = (
                    f"segment {segment.start:g}-{segment.end:g}s ends after the video {video.path.name} "
                    f"({duration:.1f} s)"
                )
                issues.append(
                    Issue("error", file or str(video.path), int(row) if row.isdigit() else None, reason)
                )
    return issues


def view_mismatches(sessions: list[SessionRecord], results: dict[str, VideoCheck]) -> list[Issue]:
    """A warning per session whose views differ in frame rate (the heads align the views window by
    window and refuse such a session much later, after hours of extraction) or in length by more
    than `LENGTH_TOLERANCE` s (the main job's heads cut a session to its shortest view).

    Sizes are not compared: the official cameras of a session differ in size in every session of
    the 2024 release (1022x688, 1496x728, 1094x658...) and each view has its own model and crop, so
    a warning would name every session and bury the ones that matter."""
    issues: list[Issue] = []
    for session in sessions:
        infos = {
            view: results[str(video.path)].info
            for view, video in session.views.items()
            if str(video.path) in results and results[str(video.path)].info is not None
        }
        if len(infos) < 2:
            continue
        rates = {view: round(info.fps, 3) for view, info in infos.items()}
        lengths = {view: info.duration for view, info in infos.items()}
        folder = str(next(iter(session.views.values())).path.parent)
        if len(set(rates.values())) > 1:
            listed = ", ".join(f"{v} {r:g}" for v, r in rates.items())
            issues.append(
                Issue("warning", folder, None, f"session {session.key}: views differ in fps ({listed})")
            )
        if max(lengths.values()) - min(lengths.values()) > LENGTH_TOLERANCE:
            listed = ", ".join(f"{v} {d:.1f} s" for v, d in lengths.items())
            reason = (
                f"session {session.key}: views differ in length ({listed}); the main job's heads "
                "cut it to its shortest view"
            )
            issues.append(Issue("warning", folder, None, reason))
    return issues


def check_index_videos(index, full: bool = True, progress=None) -> dict[str, VideoCheck]:
    """Open every video of a `DatasetIndex`, adding to its issues the unusable videos, the label rows
    past the end of their video and the sessions whose views differ in fps or length."""
    results, issues = check_videos(index.videos, full=full, progress=progress)
    issues += labels_beyond_videos(index.videos, results)
    issues += view_mismatches(index.sessions, results)
    index.issues.extend(issues)
    return results


def usable_for_clips(videos: list[VideoRecord], results: dict[str, VideoCheck]) -> list[VideoRecord]:
    """The labelled videos training clips may come from: none of a video reported as unusable, and
    no segment past the end of its video (both are errors in the issues). Videos not checked are
    kept as they are."""
    usable = []
    for video in videos:
        result = results.get(str(video.path))
        if result is not None and not result.ok:
            continue
        if result is not None and result.info is not None:
            limit = result.info.duration + END_TOLERANCE_S
            kept = [s for s in video.segments if s.end <= limit]
            video = replace(video, segments=kept) if len(kept) != len(video.segments) else video
        if video.segments:
            usable.append(video)
    return usable
