"""No runaway decoders: a worker's CPU and RSS stay flat once its clip reads are done."""

from __future__ import annotations

import os
import time
from pathlib import Path

import av
import numpy as np
import pytest

from ndar.finetune.data import FrameReader
from ndar.video.geometry import plan_geometry


def write_video(path: Path, frames: int = 1200, width: int = 320, height: int = 192, gop: int = 30) -> Path:
    """A long moving-pattern H.264 file: long enough that a read-ahead thread is still busy a second later."""
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 255, (height, width * 2, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            shift = (7 * i) % width
            image = np.ascontiguousarray(tile[:, shift : shift + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    import shutil

    folder = tmp_path_factory.mktemp("decoders")
    first = write_video(folder / "v0.mp4")
    return [first] + [Path(shutil.copy(first, folder / f"v{i}.mp4")) for i in (1, 2)]


def test_frame_reader_leaves_no_decoder_running(videos):
    reader = FrameReader(plan_geometry(128, (0.1, 0.0, 0.9, 1.0)), max_open=4)
    for path in videos:  # every reader stays open (max_open 4), as in a DataLoader worker
        for start in (10, 400, 900):
            clip = reader.read(str(path), np.arange(start, start + 32, 2))
            assert clip.shape[0] == 16
    cpu0, rss0 = cpu_seconds(), rss_mib()
    time.sleep(1.0)
    cpu, rss = cpu_seconds() - cpu0, rss_mib() - rss0
    # measured without the stop: 0.25 s of CPU and +54 MiB in that second for three readers
    assert cpu < 0.08, f"{cpu:.2f} s of CPU while idle: a decoder is still running"
    assert rss < 15, f"RSS grew by {rss:.0f} MiB while idle: a decoder is still running"
