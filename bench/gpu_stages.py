"""The GPU sections of `bench.bench_gpu` for the stages after the backbone: streaming extraction
against the seed's random access (decord get_batch per window), and the heads' epoch times at real
scale. Each section returns a JSON-able dict that `bench_gpu` records under its name.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import cuda_time
from ndar.backbones import create_backbone, get_spec, save_model_folder

TRACKS = {  # the real per-view set: one ViT-H and two ViT-L on the same decoded frames
    "k400_vith": "videomae_vit_huge",
    "hybrid_vitl": "videomae_vit_large",
    "ego_vitl": "videomae_vit_large",
}


# ---------------------------------------------------------------- extraction


def model_folders(root: Path) -> dict[str, Path]:
    """Random-init fine-tuned model folders for the three real tracks (weights do not change speed)."""
    folders = {}
    for track, backbone in TRACKS.items():
        folder = root / f"model_{track}"
        if not (folder / "model.json").is_file():
            torch.manual_seed(0)
            save_model_folder(create_backbone(backbone), get_spec(backbone), folder)
        folders[track] = folder
    return folders


def stream_run(data_root: Path, folders: dict[str, Path], stride: int, out: Path, batch: int) -> dict:
    from ndar.extract import ExtractConfig, ModelEntry, run

    cfg = ExtractConfig(
        data_root=data_root, splits=["A2"], views=["rear"],
        models=[ModelEntry(track, str(folder), stride=stride) for track, folder in folders.items()],
        out=out, batch_size=batch, device="cuda", dtype="bfloat16", overwrite=True,
    )  # fmt: skip
    return run(cfg)


def model_only_s(folders: dict[str, Path], windows: int, batch: int) -> float:
    """Seconds for `windows` windows through every track on pre-decoded uint8 clips already in
    memory (preprocess on GPU + bf16 forward): the model side of the limit."""
    from ndar.backbones import load_model_folder
    from ndar.extract.models import FeaturesAndLogits, embed, preprocess_clips

    clips = np.random.default_rng(0).integers(0, 255, (batch, 16, 224, 224, 3), np.uint8)

    def seconds_per_batch(folder: Path) -> float:
        model, spec = load_model_folder(folder)
        net = FeaturesAndLogits(model).cuda().eval()
        return cuda_time(
            lambda: embed(net, preprocess_clips(clips, spec, torch.device("cuda")), torch.bfloat16),
            warmup=2, min_reps=5, budget_s=2.0,
        )  # fmt: skip

    total = 0.0
    for folder in folders.values():
        total += seconds_per_batch(folder) * windows / batch
        torch.cuda.empty_cache()
    return total


def decode_only_s(video: Path, convert_threads: int) -> float:
    """Decode + resize every frame to 224 px, no windows and no model: the decoding side of the limit."""
    from ndar.video import iter_frames

    start = time.perf_counter()
    for _ in iter_frames(video, [(224, 224)], convert_threads=convert_threads):
        pass
    return time.perf_counter() - start


def random_access_per_window_s(video: Path, folders: dict[str, Path], stride: int, windows: int) -> float:
    """The seed: decord VideoReader resizing on decode, get_batch of each window's 16 frames, then
    every track's forward on that one window; seconds per window, on a contiguous run of windows."""
    import decord

    from ndar.backbones import load_model_folder
    from ndar.extract.models import FeaturesAndLogits, embed, preprocess_clips
    from ndar.video import window_starts

    nets = []
    for folder in folders.values():
        model, spec = load_model_folder(folder)
        nets.append((FeaturesAndLogits(model).cuda().eval(), spec))
    reader = decord.VideoReader(str(video), width=224, height=224, num_threads=0)
    starts = window_starts(len(reader), 32, stride)
    chosen = starts[len(starts) // 2 :][:windows]
    clip = reader.get_batch(list(range(chosen[0], chosen[0] + 32, 2))).asnumpy()[None]
    for net, spec in nets:  # warm-up of the kernels
        embed(net, preprocess_clips(clip, spec, torch.device("cuda")), torch.bfloat16)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for s in chosen:
        clip = reader.get_batch(list(range(s, s + 32, 2))).asnumpy()[None]
        for net, spec in nets:
            embed(net, preprocess_clips(clip, spec, torch.device("cuda")), torch.bfloat16)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / len(chosen)


def bench_extract(work: Path, seconds: float, strides: list[int], batch: int, ra_windows: int) -> dict:
    from bench import bench_extract as cpu_bench
    from ndar.video import probe, window_starts

    video = cpu_bench.make_video(work / f"video_{int(seconds)}s.mp4", seconds)
    root = work / "data"
    target = root / "A2" / "user_id_1" / "Rear_view_user_id_1_NoAudio_1.MP4"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(video.resolve())
    folders = model_folders(work)
    info = probe(video)
    result: dict = {"video_s": info.duration, "frames": info.num_frames, "tracks": list(TRACKS)}
    from ndar.extract import ExtractConfig
    from ndar.extract.runner import convert_threads

    threads = convert_threads(ExtractConfig(), torch.device("cuda"))  # what the streaming run uses
    result["convert_threads"] = threads
    result["decode_only_serial_s"] = decode_only_s(video, 0)
    result["decode_only_s"] = decode_only_s(video, threads)
    print("decode only", result["decode_only_serial_s"], result["decode_only_s"], flush=True)
    # uncounted warm-up: CUDA/cuBLAS initialisation and first-use kernel selection, which the
    # model-only timing (after its own warm-up) does not pay either
    stream_run(root, folders, 64, work / "features_warmup", batch)
    for stride in strides:
        n = len(window_starts(info.num_frames, 32, stride))
        torch.cuda.reset_peak_memory_stats()
        summary = stream_run(root, folders, stride, work / f"features_s{stride}", batch)
        peak = torch.cuda.max_memory_allocated() / 2**30
        model_s = model_only_s(folders, n, batch)
        ra = random_access_per_window_s(video, folders, stride, ra_windows)
        row = {
            "windows_per_track": n, "stream_s": summary["extract_s"],
            "windows_per_s_all_tracks": 3 * n / summary["extract_s"], "model_only_s": model_s,
            "seed_random_access_per_window_s": ra, "seed_estimated_s": ra * n,
            "speedup_vs_seed": ra * n / summary["extract_s"],
            "wall_over_limit": summary["extract_s"] / max(result["decode_only_s"], model_s),
            "peak_gpu_gib": peak,
        }  # fmt: skip
        result[f"stride{stride}"] = row
        print("extract", stride, json.dumps(row), flush=True)
    return result


# ---------------------------------------------------------------- heads


def bench_heads(work: Path, epochs: int) -> dict:
    """Epoch seconds of the real-scale TIM and ActionFormer configs on GPU, on synthetic features
    shaped like AI City's: 9-minute sessions, a window every 16 frames at 30 fps, two views of
    1280-d (ViT-H) features; one fold of a 5-fold split (about 80% of 60 sessions train)."""
    from ndar.config import load_config
    from ndar.heads.config import HeadsConfig
    from ndar.heads.runner import run_folds
    from ndar.heads.synthetic import make_feature_videos

    shape = dict(
        duration=540.0, classes=tuple(range(1, 16)), length=(3, 25), gap=(5, 20), first=(3, 10),
        window_stride=16 / 30, window_len=32 / 30, dims={"rear": 1280, "dashboard": 1280}, blur=3,
    )  # fmt: skip
    a1 = make_feature_videos(n_drivers=20, sessions=3, noise=2.0, seed=0, **shape)
    a2 = make_feature_videos(
        n_drivers=2, sessions=2, noise=2.0, seed=1, split="A2", first_driver=301, **shape
    )
    result = {"a1_sessions": len(a1), "windows_per_session": int(a1[0].num_windows)}
    for head, config in (
        ("tim", "configs/heads/tim.yaml"),
        ("actionformer", "configs/heads/actionformer.yaml"),
    ):
        cfg = load_config(
            HeadsConfig,
            Path(config),
            [
                f"out={work / ('heads_' + head)}", "feature_sets=[synthetic/rear, synthetic/dashboard]",
                "only_folds=[0]", "predict_test=false", f"{head}.epochs={epochs}", f"{head}.device=cuda",
            ],
        )  # fmt: skip
        start = time.perf_counter()
        run_folds(cfg, a1, a2)
        wall = time.perf_counter() - start
        fold = json.loads((cfg.out / "folds" / "fold_0" / "fold.json").read_text())
        epoch_s = [e["epoch_seconds"] for e in fold["history"]["epochs"]]
        result[head] = {
            "epochs": epochs, "epoch_s_median": float(np.median(epoch_s)),
            "fold_wall_s": wall, "fit_seconds": fold.get("fit_seconds"),
        }  # fmt: skip
        print("heads", head, json.dumps(result[head]), flush=True)
    return result
