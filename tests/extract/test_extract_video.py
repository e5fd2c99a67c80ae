"""probe and the streaming reader on real H.264 files."""

from __future__ import annotations

from pathlib import Path

import decord
import numpy as np
import pytest
from extract_fixtures import HEIGHT, WIDTH, make_video

from ndar.video import VideoError, iter_frames, probe


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", 45, fps=30)


def test_probe_reads_header(clip: Path) -> None:
    info = probe(clip)
    assert info.fps == pytest.approx(30.0)
    assert info.num_frames == 45
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.duration == pytest.approx(45 / 30, abs=0.04)


def test_reader_decodes_each_frame_once_in_order_like_decord(clip: Path) -> None:
    frames = list(iter_frames(clip, sizes=[None, (16, 24)]))
    assert [f.index for f in frames] == list(range(45))
    np.testing.assert_allclose([f.time for f in frames], np.arange(45) / 30, atol=1e-6)
    assert frames[0].images[0].shape == (HEIGHT, WIDTH, 3) and frames[0].images[1].shape == (16, 24, 3)
    reference = decord.VideoReader(str(clip)).get_batch([0, 7, 44]).asnumpy()
    np.testing.assert_array_equal(np.stack([frames[i].image for i in (0, 7, 44)]), reference)


def test_threaded_conversion_gives_the_same_frames_in_the_same_order(clip: Path) -> None:
    inline = list(iter_frames(clip, sizes=[None, (16, 24)]))
    threaded = iter_frames(clip, sizes=[None, (16, 24)], convert_threads=3)
    for expected, frame in zip(inline, threaded, strict=True):
        assert (frame.index, frame.time) == (expected.index, expected.time)
        for got, want in zip(frame.images, expected.images, strict=True):
            np.testing.assert_array_equal(got, want)


def test_kept_swscale_contexts_give_reformats_pixels_for_every_size_and_thread(clip: Path) -> None:
    """RgbConverter keeps one swscale context per (thread, size, interpolation) instead of building
    one per call as VideoFrame.reformat does: the pixels must be reformat's, size after size."""
    from concurrent.futures import ThreadPoolExecutor

    import av

    from ndar.video.reader import RgbConverter

    with av.open(str(clip)) as container:
        frames = list(container.decode(video=0))
    convert = RgbConverter()
    jobs = [
        (f, size, interp)
        for f in frames
        for size in [(16, 24), (9, 31), (16, 24)]
        for interp in ("BILINEAR", "AREA")
    ]

    def expected(job):
        frame, (height, width), interp = job
        return frame.reformat(format="rgb24", width=width, height=height, interpolation=interp).to_ndarray()

    inline = [convert(*job) for job in jobs]
    with ThreadPoolExecutor(3) as pool:
        threaded = list(pool.map(lambda job: convert(*job), jobs))
    for job, got, got_threaded in zip(jobs, inline, threaded, strict=True):
        want = expected(job)
        assert got.shape == (*job[1], 3)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_threaded, want)
    assert len(convert._local.reformatters) == 4  # this thread: 2 sizes x 2 interpolations, kept


def test_kept_contexts_follow_videos_of_another_size(clip: Path, tmp_path: Path) -> None:
    """One converter serves every video of a process: a source of another size between two frames
    of the first still gives reformat's pixels (the kept context is rebuilt when its input changes)."""
    import av

    from ndar.video.reader import RgbConverter

    other = make_video(tmp_path / "other.mp4", 4, fps=30, width=WIDTH // 2 + 8, height=HEIGHT // 2 + 6)
    frames = []
    for path in (clip, other, clip):
        with av.open(str(path)) as container:
            frames.append(next(iter(container.decode(video=0))))
    assert frames[1].width != frames[0].width
    convert = RgbConverter()
    for frame in frames:
        want = frame.reformat(format="rgb24", width=24, height=16, interpolation="BILINEAR").to_ndarray()
        np.testing.assert_array_equal(convert(frame, (16, 24)), want)


def test_threaded_conversion_stops_cleanly_when_the_consumer_stops_early(clip: Path) -> None:
    frames = iter_frames(clip, sizes=[(16, 24)], convert_threads=2)
    first = [next(frames) for _ in range(5)]
    frames.close()  # the pool shuts down; no thread is left converting
    assert [f.index for f in first] == list(range(5))


def test_bad_files_raise_video_error(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="not found"):
        probe(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(VideoError, match="junk.mp4"):
        probe(junk)
    with pytest.raises(VideoError, match="junk.mp4"):
        list(iter_frames(junk))
    with pytest.raises(VideoError, match="junk.mp4"):
        list(iter_frames(junk, convert_threads=2))


def test_a_header_without_a_frame_size_is_a_video_error(clip: Path, monkeypatch) -> None:
    """A stream declaring a 0x0 frame (a broken header) is reported as that file's error, which a
    run skips and lists, not a ZeroDivisionError in the geometry that stops the whole run. No encoder
    writes such a header, so the real file's opened stream is shown through a view that zeroes its size."""
    import importlib
    from types import SimpleNamespace

    probe_module = importlib.import_module("ndar.video.probe")
    real_open = probe_module.av.open

    class ZeroSized:
        """The opened container, its first video stream's codec context reporting a 0x0 frame."""

        def __init__(self, container):
            self.container, stream = container, container.streams.video[0]
            codec = SimpleNamespace(width=0, height=0)
            view = SimpleNamespace(
                average_rate=stream.average_rate, guessed_rate=stream.guessed_rate, frames=stream.frames,
                duration=stream.duration, time_base=stream.time_base, codec_context=codec,
            )  # fmt: skip
            self.streams, self.duration = SimpleNamespace(video=[view]), container.duration

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.container.close()

    assert probe(clip).width == WIDTH  # the real header first
    monkeypatch.setattr(probe_module.av, "open", lambda *a, **k: ZeroSized(real_open(*a, **k)))
    with pytest.raises(VideoError, match=r"clip.mp4: the video stream declares a 0x0 frame"):
        probe(clip)
