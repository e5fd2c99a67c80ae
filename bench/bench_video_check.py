"""Bench of the video check of `check-data --videos` / `prepare`: seconds for `check_video` against a
full decode of the same 1080p H.264 file (noise-textured frames, so the bitrate is high).

    python -m bench.bench_video_check [--seconds 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from ndar.data.video_check import check_video
from ndar.synth.encode import write_video


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    width, height, fps = 1920, 1080, 30
    base = np.random.default_rng(0).integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
    frames = (np.roll(base, 4 * i, axis=1) for i in range(args.seconds * fps))  # (H*3/2, W) yuv420p
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hd.MP4"
        write_video(path, frames, fps, width, height)
        start = time.perf_counter()
        result = check_video(path)
        checked = time.perf_counter() - start
        start = time.perf_counter()
        with av.open(str(path)) as container:
            decoded = sum(1 for _ in container.decode(container.streams.video[0]))
        full = time.perf_counter() - start
    print(
        f"check_video {checked:.2f} s (problem: {result.problem}); full decode {full:.2f} s ({decoded} frames)"
    )


if __name__ == "__main__":
    main()
