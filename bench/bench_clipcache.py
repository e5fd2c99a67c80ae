"""Clip cache against random access on a synthetic video at the real geometry (1080p, 30 fps, 8 min).

    .venv/bin/python -m bench.bench_clipcache video     # writes bench/out/clipcache/a1_1080p.mp4 once
    .venv/bin/python -m bench.bench_clipcache run       # the measurements (JSON on stdout)

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
                    out_stream = dst.add_stream_from_template(in_stream)
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


FRAMES, RATE, SIZE = 16, 4, 224


def clip_table(path: Path) -> Path:
    """16 activities of 5-20 s and 2 background clips spread over the 8 minutes (a real video's share)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    lengths = rng.uniform(5, 20, 16)
    gaps = rng.dirichlet(np.ones(17)) * (MINUTES * 60 - 2 - lengths.sum() - 16)
    rows, t = [], 1.0
    for k, length in enumerate(lengths):
        t += gaps[k]
        rows.append({"label": k % 15 + 1, "start": round(t, 3), "end": round(t + length, 3)})
        t += length
    rows += [{"label": 0, "start": 2.0, "end": 10.0}, {"label": 0, "start": 300.0, "end": 308.0}]
    table = pd.DataFrame(rows).assign(path=str(VIDEO), fold=0, view="rear")
    out = OUT / "clips_rear.csv"
    table.to_csv(out, index=False)
    return out


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def rss_mib() -> dict:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("RssAnon", "RssFile")):
            name, value = line.split(":")
            fields[name] = int(value.split()[0]) / 1024
    return fields


def decode_only(path: Path, last: int) -> dict:
    from ndar.video.reader import decode_frames

    wall, cpu = time.perf_counter(), cpu_s()
    for index, _, _ in decode_frames(path, threads=1):
        if index >= last:
            break
    return {"frames": index + 1, "wall_s": time.perf_counter() - wall, "cpu_s": cpu_s() - cpu}


def build_cache(clips: Path, out: Path) -> dict:
    from ndar.clipcache.build import run
    from ndar.clipcache.config import ClipCacheConfig

    cfg = ClipCacheConfig(
        out=out, root=None, clips=clips, views=["rear"], num_frames=FRAMES, sampling_rate=RATE,
        img_size=SIZE, crop="aicity", workers=1, threads=1, overwrite=True,
    )  # fmt: skip
    wall, cpu = time.perf_counter(), cpu_s()
    summary = run(cfg)["rear"]
    return {**summary, "wall_s": time.perf_counter() - wall, "cpu_s": cpu_s() - cpu}


def random_access(samples, plan, clips: int, fresh: bool) -> dict:
    """CPU per training clip decoded from the 8-minute original (fresh reader per clip or kept open)."""
    from ndar.finetune.data import FrameReader, VideoMeta, frame_grid, window_positions

    rng = np.random.default_rng(1)
    reader = FrameReader(plan)
    meta = VideoMeta(FPS, MINUTES * 60 * FPS, 0, 0)
    cpu, wall = cpu_s(), time.perf_counter()
    for _ in range(clips):
        row = samples.iloc[int(rng.integers(len(samples)))]
        grid = frame_grid(row.start, row.end, meta, RATE)
        offset = int(rng.integers(0, max(len(grid) - FRAMES, 0) + 1))
        if fresh:
            reader = FrameReader(plan)
        reader.read(str(VIDEO), grid[window_positions(len(grid), FRAMES, offset)])
    return {
        "clips": clips,
        "cpu_s_per_clip": (cpu_s() - cpu) / clips,
        "wall_s_per_clip": (time.perf_counter() - wall) / clips,
    }


def cache_reads(store, clips: int, transform=None) -> dict:
    """CPU per clip read from the cache (and, with `transform`, augmented), RSS before and after."""
    import torch

    from ndar.finetune.data import window_positions

    rng = np.random.default_rng(2)
    rss = []
    cpu, wall = cpu_s(), time.perf_counter()
    for i in range(clips):
        index = int(rng.integers(len(store.clips)))
        n = store.grid_len(index)
        frames = store.read(index, window_positions(n, FRAMES, int(rng.integers(0, max(n - FRAMES, 0) + 1))))
        if transform is not None:
            transform(torch.from_numpy(frames), 1)
        if i in (99, clips - 1):
            rss.append(rss_mib())
    return {
        "clips": clips,
        "cpu_s_per_clip": (cpu_s() - cpu) / clips,
        "clips_per_s": clips / (time.perf_counter() - wall),
        "rss_after_100": rss[0],
        "rss_after_all": rss[-1],
    }


def format_sizes(store, clips: int = 6) -> dict:
    """Bytes per frame and CPU per 16-frame clip of the alternatives: uint8, JPEG q95, short-GOP H.264."""
    import io

    import av
    from PIL import Image

    rng = np.random.default_rng(3)
    grids = [
        store.read(i, np.arange(store.grid_len(i)))
        for i in rng.choice(len(store.clips), clips, replace=False)
    ]
    frames = sum(len(g) for g in grids)
    jpeg, h264 = [], []
    for grid in grids:
        jpeg.append([])
        for frame in grid:
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="JPEG", quality=95)
            jpeg[-1].append(buf.getvalue())
        buf = io.BytesIO()
        with av.open(buf, "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=FPS // RATE)
            stream.width = stream.height = SIZE
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "18", "g": str(FRAMES)}
            for frame in grid:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        h264.append(buf.getvalue())
    cpu = cpu_s()
    for blobs in jpeg:
        [np.asarray(Image.open(io.BytesIO(b))) for b in blobs[:FRAMES]]
    jpeg_cpu = (cpu_s() - cpu) / len(jpeg)
    cpu = cpu_s()
    for blob in h264:
        with av.open(io.BytesIO(blob)) as src:
            [f.to_ndarray(format="rgb24") for f, _ in zip(src.decode(video=0), range(FRAMES))]
    h264_cpu = (cpu_s() - cpu) / len(h264)
    return {
        "uint8_bytes_per_frame": SIZE * SIZE * 3,
        "jpeg_q95_bytes_per_frame": sum(len(b) for bs in jpeg for b in bs) / frames,
        "h264_crf18_gop16_bytes_per_frame": sum(len(b) for b in h264) / frames,
        "jpeg_cpu_s_per_clip": jpeg_cpu,
        "h264_cpu_s_per_clip": h264_cpu,
    }


def run_all() -> dict:
    import pandas as pd
    import torch

    from ndar.clipcache.store import ClipStore
    from ndar.finetune.transforms import TrainClipTransform
    from ndar.video.geometry import plan_geometry, resolve_crop_box

    torch.set_num_threads(1)
    make_video()
    clips = clip_table(OUT / "clips_rear.csv")
    samples = pd.read_csv(clips)
    plan = plan_geometry(SIZE, resolve_crop_box("aicity", "rear"))
    last = int(np.ceil(samples["end"].max() * FPS))
    results = {"plan": {"scaled": plan.scaled, "left": plan.left, "top": plan.top}}
    partial = OUT / "results_partial.json"  # written after every step: a long run on a busy machine
    results["random_access_fresh_reader"] = random_access(samples, plan, 10, fresh=True)
    partial.write_text(json.dumps(results, indent=1))
    results["random_access_open_reader"] = random_access(samples, plan, 10, fresh=False)
    partial.write_text(json.dumps(results, indent=1))
    results["decode_only"] = decode_only(VIDEO, last)
    partial.write_text(json.dumps(results, indent=1))
    results["cache_build"] = build_cache(clips, OUT / "cache")
    results["build_vs_decode_wall"] = results["cache_build"]["wall_s"] / results["decode_only"]["wall_s"]
    results["build_vs_decode_cpu"] = results["cache_build"]["cpu_s"] / results["decode_only"]["cpu_s"]
    partial.write_text(json.dumps(results, indent=1))
    store = ClipStore(OUT / "cache" / "rear", samples, False)
    results["cache_read"] = cache_reads(store, 1000)
    results["cpu_ratio_fresh_vs_cache"] = (
        results["random_access_fresh_reader"]["cpu_s_per_clip"] / results["cache_read"]["cpu_s_per_clip"]
    )
    augment = TrainClipTransform(
        SIZE,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        rand_augment="rand-m7-n4-mstd0.5-inc1",
        reprob=0.25,
    )
    results["cache_read_augmented"] = cache_reads(store, 200, augment)
    results["formats"] = format_sizes(store)
    results["cache_bytes"] = sum(p.stat().st_size for p in (OUT / "cache" / "rear").iterdir())
    partial.write_text(json.dumps(results, indent=1))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["video", "run"])
    args = parser.parse_args()
    if args.what == "video":
        start = time.perf_counter()
        path = make_video()
        print(json.dumps({"video": str(path), "seconds": round(time.perf_counter() - start, 1)}))
        return
    print(json.dumps(run_all(), indent=1))


if __name__ == "__main__":
    main()
