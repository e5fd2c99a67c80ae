"""Benchmark of streaming extraction against the seed's per-window random access (decord get_batch).

On generated 1080p 30 fps H.264 videos (x264 ultrafast, key frame every 60 frames = 2 s, cached in
bench/out/extract/):
  1. tiny backbone on a 1-minute video, strides 16 and 4: streaming wall time (the real `run()`),
     decode-only time, model-only time on pre-decoded clips, and the seed's random-access cost per
     window measured on a contiguous run of windows (extrapolated to the whole video);
  2. base backbone on a short clip (CPU is slow: per-window costs measured on few windows);
  3. peak RSS of the streaming run on a 1-minute and a 10-minute video (separate processes);
  4. `--convert-only`: YUV -> RGB at a decode size, `VideoFrame.reformat` (a new swscale context per
     call) against `ndar.video.reader.RgbConverter` (one kept per size), on the same frames of the
     1080p video and of a 160 x 120 video (the synthetic job's geometry), side by side.
Usage: python -m bench.bench_extract [--long-seconds 600] [--skip-long] [--convert-only]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import torch

from bench.common import self_command, write_json
from ndar.backbones import create_backbone, get_spec, save_model_folder
from ndar.extract import ExtractConfig, ModelEntry, run
from ndar.extract.models import FeaturesAndLogits, embed, preprocess_clips
from ndar.video import iter_frames, probe, window_starts

OUT = Path("bench/out/extract")
FPS, WIDTH, HEIGHT, GOP = 30, 1920, 1080, 60
# tiny: decode-bound on CPU (4 blocks, 16 frames at 112 px); base: the real ViT-B at 16 x 224 px
BACKBONES = {
    "tiny": ("videomae_vit_tiny", 112, {"depth": 4}),
    "base": ("videomae_vit_base", 224, {}),
}


def make_video(path: Path, seconds: float) -> Path:
    """Moving textured 1080p content, encoded straight from YUV planes (fast) with x264 ultrafast."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    canvas_y = (
        rng.integers(16, 235, (HEIGHT // 8, (WIDTH + 2048) // 8), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    )
    canvas_c = (
        rng.integers(64, 192, (HEIGHT // 8, (WIDTH + 2048) // 8), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    )
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(GOP), "crf": "23"}
        for i in range(int(seconds * FPS)):
            x = (i * 8) % 2048
            y = canvas_y[:, x : x + WIDTH]
            c = canvas_c[:, x // 2 : x // 2 + WIDTH // 2]
            planes = np.concatenate([y, c.reshape(HEIGHT // 4, WIDTH), c.reshape(HEIGHT // 4, WIDTH)])
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)
    return path


def model_folder(kind: str) -> Path:
    name, img, over = BACKBONES[kind]
    folder = OUT / f"model_{kind}"
    if not (folder / "model.json").is_file():
        torch.manual_seed(0)
        model = create_backbone(name, img_size=img, **over)
        save_model_folder(model, get_spec(name, img_size=img, **over), folder)
    return folder


def dataset_for(video: Path, tag: str) -> Path:
    """A one-video A2 split (symlink) so the real `run()` path is measured."""
    root = OUT / f"data_{tag}"
    target = root / "A2" / "user_id_1" / "Rear_view_user_id_1_NoAudio_1.MP4"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(video.resolve())
    return root


def stream_extract(video: Path, kind: str, stride: int, tag: str) -> dict:
    cfg = ExtractConfig(
        data_root=dataset_for(video, tag),
        splits=["A2"],
        views=["rear"],
        models=[ModelEntry(kind, str(model_folder(kind)), stride=stride)],
        out=OUT / f"features_{tag}_{kind}_s{stride}",
        batch_size=4,
        device="cpu",
        overwrite=True,
    )
    return run(cfg)


def decode_only(video: Path, size: int) -> float:
    start = time.perf_counter()
    for _ in iter_frames(video, [(size, size)]):
        pass
    return time.perf_counter() - start


def stream_windows_only(video: Path, size: int, stride: int) -> tuple[float, int]:
    """Decode once and cut + batch every window (the producer side of extraction), no model."""
    from ndar.extract.stream import WindowStream
    from ndar.video import WindowSpec

    stream = WindowStream(video, [WindowSpec(16, 2, stride)], [(size, size)], batch_size=4)
    start = time.perf_counter()
    windows = sum(len(batch.t_start) for batch in stream)
    return time.perf_counter() - start, windows


def decode_path(video: Path, kind: str, strides: list[int], ra_windows: int) -> dict:
    """Decoding side alone: streaming windows vs the seed's random access, per stride (no model)."""
    size = BACKBONES[kind][1]
    result = {}
    for stride in strides:
        stream_s, n = stream_windows_only(video, size, stride)
        ra = random_access_per_window(video, kind, stride, ra_windows, with_model=False)
        result[f"stride{stride}"] = {
            "windows": n,
            "stream_windows_s": stream_s,
            "seed_random_access_s_est": ra * n,
            "speedup": ra * n / stream_s,
        }
        print("decode path", kind, stride, json.dumps(result[f"stride{stride}"]), flush=True)
    return result


def model_only_per_window(kind: str, windows: int) -> float:
    """Seconds per window of preprocessing + forward on pre-decoded uint8 clips (batch 4)."""
    from ndar.backbones import load_model_folder

    model, spec = load_model_folder(model_folder(kind))
    net = FeaturesAndLogits(model).eval()
    clips = np.random.default_rng(0).integers(
        0, 255, (4, spec.num_frames, spec.img_size, spec.img_size, 3), np.uint8
    )
    embed(net, preprocess_clips(clips[:1], spec, torch.device("cpu")), None)  # warm-up
    batches = max(1, windows // 4)
    start = time.perf_counter()
    for _ in range(batches):
        embed(net, preprocess_clips(clips, spec, torch.device("cpu")), None)
    return (time.perf_counter() - start) / (4 * batches)


def random_access_per_window(video: Path, kind: str, stride: int, windows: int, with_model: bool) -> float:
    """The seed: decord VideoReader (resize on decode) + get_batch per window, on a contiguous run of
    windows from the middle of the video; seconds per window."""
    import decord

    from ndar.backbones import load_model_folder

    model, spec = load_model_folder(model_folder(kind))
    net = FeaturesAndLogits(model).eval()
    reader = decord.VideoReader(str(video), width=spec.img_size, height=spec.img_size, num_threads=0)
    span = spec.num_frames * spec.sampling_rate
    starts = window_starts(len(reader), span, stride)
    middle = len(starts) // 2
    chosen = starts[middle : middle + windows]
    start = time.perf_counter()
    for s in chosen:
        clip = reader.get_batch(list(range(s, s + span, spec.sampling_rate))).asnumpy()[None]
        if with_model:
            embed(net, preprocess_clips(clip, spec, torch.device("cpu")), None)
    return (time.perf_counter() - start) / len(chosen)


RSS_STRIDE = 64  # memory does not depend on the stride; a long stride keeps the 10-minute run short


def rss_child(video: str) -> None:
    """Run in a fresh process: stream-extract `video` with the tiny model, print peak RSS in MiB."""
    after_imports = peak_rss_mib()
    summary = stream_extract(Path(video), "tiny", RSS_STRIDE, tag=Path(video).stem)
    report = {"peak_rss_mib": peak_rss_mib(), "after_imports_mib": after_imports}
    print(json.dumps({**report, "extract_s": summary["extract_s"], "windows": summary["windows"]}))


def peak_rss_mib() -> float:
    """VmHWM of this process (ru_maxrss would also count the parent's memory copied at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(video: Path) -> dict:
    cmd = [*self_command(__spec__), "--rss-child", str(video)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ}).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_backbone(video: Path, kind: str, strides: list[int], ra_windows: int, model_windows: int) -> dict:
    info = probe(video)
    size = BACKBONES[kind][1]
    result: dict = {"video_s": info.duration, "frames": info.num_frames}
    result["decode_only_s"] = decode_only(video, size)
    per_model = model_only_per_window(kind, model_windows)
    result["model_per_window_s"] = per_model
    for stride in strides:
        n = len(window_starts(info.num_frames, 32, stride))
        summary = stream_extract(video, kind, stride, tag=video.stem)
        ra_decode = random_access_per_window(video, kind, stride, ra_windows, with_model=False)
        model_only = per_model * n
        seed = (ra_decode + per_model) * n
        result[f"stride{stride}"] = {
            "windows": n,
            "stream_s": summary["extract_s"],
            "model_only_s": model_only,
            "seed_random_access_decode_per_window_s": ra_decode,
            "seed_estimated_s": seed,
            "speedup_vs_seed": seed / summary["extract_s"],
            "wall_over_limit": summary["extract_s"] / max(result["decode_only_s"], model_only),
        }
        print(kind, stride, json.dumps(result[f"stride{stride}"]), flush=True)
    return result


def convert_per_frame_ms(video: Path, sizes: list[tuple[int, int]], frames: int = 120) -> dict:
    """Milliseconds per frame to convert to each (H, W): reformat per call vs kept contexts (same pixels)."""
    from ndar.video.reader import RgbConverter

    with av.open(str(video)) as container:
        decoded = [f for _, f in zip(range(frames), container.decode(video=0))]
    out = {"video": f"{decoded[0].width}x{decoded[0].height}", "frames": len(decoded)}
    for height, width in sizes:
        start = time.perf_counter()
        fresh = [
            f.reformat(format="rgb24", width=width, height=height, interpolation="BILINEAR").to_ndarray()
            for f in decoded
        ]
        per_call = (time.perf_counter() - start) / len(decoded)
        convert = RgbConverter()
        start = time.perf_counter()
        kept = [convert(f, (height, width)) for f in decoded]
        reuse = (time.perf_counter() - start) / len(decoded)
        same = all(np.array_equal(a, b) for a, b in zip(fresh, kept))
        out[f"{height}x{width}"] = {"reformat_ms": 1e3 * per_call, "kept_ms": 1e3 * reuse,
                                    "speedup": per_call / reuse, "same_pixels": same}  # fmt: skip
    return out


def small_video(path: Path, seconds: float = 10, fps: int = 10) -> Path:
    """A 160 x 120 H.264 video (the synthetic job's geometry)."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(int(seconds * fps)):
            image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--short-seconds", type=float, default=60)
    parser.add_argument("--long-seconds", type=float, default=600)
    parser.add_argument("--base-seconds", type=float, default=6)
    parser.add_argument("--ra-windows", type=int, default=30)
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--rss-only", action="store_true", help="only the peak RSS runs")
    parser.add_argument(
        "--tiny-only", action="store_true", help="only the tiny backbone and decode-path runs"
    )
    parser.add_argument("--decode-path-only", action="store_true", help="only the no-model decode comparison")
    parser.add_argument("--convert-only", action="store_true", help="only reformat per call vs kept contexts")
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    t0 = time.perf_counter()
    report: dict = {"machine": f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}"}
    report["load_avg_start"] = os.getloadavg()
    short = make_video(OUT / f"video_{int(args.short_seconds)}s.mp4", args.short_seconds)
    if args.convert_only:  # 1080p to the real decode sizes; 160 x 120 to the synthetic tiny ones
        report["convert_1080p"] = convert_per_frame_ms(short, [(224, 398), (256, 455)])
        report["convert_160x120"] = convert_per_frame_ms(
            small_video(OUT / "video_160x120.mp4"), [(28, 38), (42, 56)]
        )
        write_json(OUT / "convert.json", report)
        print(json.dumps(report, indent=2))
        return
    if args.rss_only:
        report["rss_short"] = peak_rss(short)
        report["rss_long"] = peak_rss(
            make_video(OUT / f"video_{int(args.long_seconds)}s.mp4", args.long_seconds)
        )
        print(json.dumps(report, indent=2))
        return
    report["decode_path"] = decode_path(short, "base", [16, 4], args.ra_windows)
    if args.decode_path_only:
        print(json.dumps(report, indent=2))
        return
    report["tiny"] = bench_backbone(short, "tiny", [16, 4], args.ra_windows, model_windows=16)
    if args.tiny_only:
        report["load_avg_end"] = os.getloadavg()
        print(json.dumps(report, indent=2))
        return
    base_clip = make_video(OUT / f"video_{int(args.base_seconds)}s.mp4", args.base_seconds)
    report["base"] = bench_backbone(base_clip, "base", [16], ra_windows=4, model_windows=4)
    report["rss_short"] = peak_rss(short)
    print("rss short", report["rss_short"], flush=True)
    if not args.skip_long:
        t = time.perf_counter()
        long = make_video(OUT / f"video_{int(args.long_seconds)}s.mp4", args.long_seconds)
        report["generate_long_s"] = time.perf_counter() - t
        report["rss_long"] = peak_rss(long)
        print("rss long", report["rss_long"], flush=True)
    report["load_avg_end"] = os.getloadavg()
    report["total_s"] = time.perf_counter() - t0
    write_json(OUT / "report.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
