"""Clip cache against random access on a synthetic video at the real geometry (1080p, 30 fps, 8 min).

    .venv/bin/python bench/bench_clipcache.py video     # writes bench/out/clipcache/a1_1080p.mp4 once
    .venv/bin/python bench/bench_clipcache.py run       # the measurements (JSON on stdout)

The video: a textured scene (a low-frequency random texture plus fixed fine grain, panning) encoded
once as one minute of H.264 (libx264 superfast, CRF 23, a keyframe every 30 frames, about 9.5 Mbps:
CABAC and B-frames on, like camera files) and re-muxed 8 times with shifted timestamps into an
8-minute file. Decoding cost is per frame, so repeating the encoded minute changes nothing that is
measured here, and it keeps the one-off encode to about 4 minutes on this 2-core machine.

Measurements (ViT-B-sized clip: 16 frames at rate 4, 224 x 224, the "aicity" rear crop box):
- per-clip CPU time of today's random access (decord, a fresh reader per clip as in a worker that
  holds 4 of 138 videos) against reading the same clip from the cache;
- wall time of building the cache of the video against a decode-only pass of it;
- RSS of a loader worker over 1,000 cache clips (first vs last 100);
- loader throughput with the training augmentation (RandAugment, random erasing) per core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path("bench/out/clipcache")
VIDEO = OUT / "A1" / "user_id_10001" / "Rear_view_user_id_10001_NoAudio_1.MP4"
WIDTH, HEIGHT, FPS, MINUTES = 1920, 1080, 30, 8


def encode_minute(path: Path) -> Path:
    import av
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    pan = 960
    low = torch.from_numpy(rng.integers(0, 255, (1, 3, HEIGHT // 24, (WIDTH + pan) // 24)).astype(np.float32))
    base = F.interpolate(low, size=(HEIGHT, WIDTH + pan), mode="bilinear")[0].permute(1, 2, 0).numpy()
    base = (base + rng.normal(0, 12, (HEIGHT, WIDTH + pan, 1))).clip(0, 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "superfast", "g": "30", "crf": "23"}
        for i in range(60 * FPS):
            shift = (4 * i) % (2 * pan)
            shift = shift if shift < pan else 2 * pan - shift  # pan right, then back
            image = np.ascontiguousarray(base[:, shift : shift + WIDTH])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def repeat_minutes(minute: Path, out_path: Path, times: int) -> Path:
    """Re-mux the encoded minute `times` times in a row (timestamps shifted), no re-encoding."""
    import av

    tmp = out_path.with_name(".tmp_" + out_path.name)
    with av.open(str(minute)) as src:
        pts = [p.pts for p in src.demux(src.streams.video[0]) if p.size]
    span = max(pts) - min(pts) + (sorted(pts)[1] - sorted(pts)[0])  # one minute in stream time units
    with av.open(str(tmp), "w", format="mp4") as dst:
        out_stream = None
        for k in range(times):  # demux afresh each time: muxing takes ownership of a packet
            with av.open(str(minute)) as src:
                in_stream = src.streams.video[0]
                if out_stream is None:
                    out_stream = dst.add_stream(template=in_stream)
                for packet in src.demux(in_stream):
                    if not packet.size:
                        continue
                    packet.pts, packet.dts = packet.pts + k * span, packet.dts + k * span
                    packet.stream = out_stream
                    dst.mux(packet)
    tmp.rename(out_path)
    return out_path


def make_video() -> Path:
    VIDEO.parent.mkdir(parents=True, exist_ok=True)
    if VIDEO.is_file():
        return VIDEO
    minute = OUT / "minute.mp4"
    if not minute.is_file():
        encode_minute(OUT / ".tmp_minute.mp4").rename(minute)
    return repeat_minutes(minute, VIDEO, MINUTES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["video", "run"])
    args = parser.parse_args()
    if args.what == "video":
        start = time.perf_counter()
        path = make_video()
        print(json.dumps({"video": str(path), "seconds": round(time.perf_counter() - start, 1)}))
        return
    print(json.dumps(run_all(), indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
