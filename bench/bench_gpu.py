"""GPU benchmarks for a lent GPU machine, in one command: backbones, a DeepSpeed fine-tuning step,
streaming extraction against the seed's random access, and heads epoch times.

    python bench/bench_gpu.py --out OUT [--sections matmul forward train extract heads]

Everything runs the package's own code: `create_backbone` for the forward passes, the fine-tuning
engine's `build_model` / `build_optimizer` / `build_deepspeed_config` under `deepspeed.initialize`
(bf16, ZeRO-1, NCCL) for the training step, `ndar.extract.run` for extraction and
`ndar.heads.runner.run_folds` for the heads. Model FLOPs are counted with FlopCounterMode on the
meta device (bench_backbones.count_model_flops); MFU is against the dense bf16 peak of the card
(989.4 TFLOP/s for H100 / H200 SXM) and, beside it, against a plain 8192^3 bf16 matmul measured
here. Writes OUT/gpu.json after every section (a section that fails records its error and the
others go on) and OUT/gpu.md (the tables).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backbones import count_model_flops  # noqa: E402

from ndar.backbones import create_backbone, get_spec, save_model_folder  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4}  # dense (no 2:4 sparsity), SXM parts
CLIP = (16, 224, 224)  # the real fine-tuning / extraction clip
TRACKS = {  # the real per-view set: one ViT-H and two ViT-L on the same decoded frames
    "k400_vith": "videomae_vit_huge",
    "hybrid_vitl": "videomae_vit_large",
    "ego_vitl": "videomae_vit_large",
}


def peak_tflops() -> float | None:
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def cuda_time(fn, warmup: int = 3, min_reps: int = 10, budget_s: float = 4.0) -> float:
    """Seconds per call (wall, synchronised) after `warmup` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < budget_s:
        fn()
        reps += 1
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


def env_info() -> dict:
    import timm

    info = {
        "gpu": torch.cuda.get_device_name(),
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "cpu_cores": __import__("os").cpu_count(),
    }
    for name in ("deepspeed", "decord", "av"):
        try:
            info[name] = __import__(name).__version__
        except Exception as exc:  # recorded, not hidden: the section that needs it will fail
            info[name] = f"missing ({exc})"
    return info


def bench_matmul(n: int = 8192) -> dict:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    seconds = cuda_time(lambda: torch.mm(a, b), budget_s=2.0)
    return {"n": n, "tflops": 2 * n**3 / seconds / 1e12}


def mfu(tflops: float, matmul: dict | None) -> dict:
    peak = peak_tflops()
    out = {"mfu": tflops / peak if peak else None}
    if matmul:
        out["vs_matmul"] = tflops / matmul["tflops"]
    return out


def forward_row(backbone: str, batch: int, compiled: bool, matmul: dict | None) -> dict:
    """bf16 autocast inference of one batch of clips: windows/s, TFLOP/s, MFU, peak memory."""
    torch.manual_seed(0)
    model = create_backbone(backbone).cuda().eval()
    x = torch.randn(batch, 3, *CLIP, device="cuda")
    net = torch.compile(model) if compiled else model

    def step():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            net(x)

    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first_call_s = time.perf_counter() - start
    torch.cuda.reset_peak_memory_stats()
    seconds = cuda_time(step)
    flops = count_model_flops({"backbone": backbone, "mode": "forward", "batch": batch})
    tflops = flops / seconds / 1e12
    row = {
        "backbone": backbone, "batch": batch, "compiled": compiled, "first_call_s": first_call_s,
        "ms_per_batch": seconds * 1e3, "windows_per_s": batch / seconds,
        "gflop_per_window": flops / batch / 1e9, "tflops": tflops, **mfu(tflops, matmul),
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30,
    }  # fmt: skip
    return row  # the model and input are freed on return; the caller empties the cache


def train_row(
    backbone: str, batch: int, ckpt: bool, steps: int, profile: bool = False, extra: list[str] | None = None
) -> dict:
    """One fine-tuning configuration through DeepSpeed, in this (fresh) process."""
    import deepspeed

    from ndar.config import load_config
    from ndar.finetune.config import FinetuneConfig
    from ndar.finetune.distributed import init_distributed
    from ndar.finetune.ds_config import build_deepspeed_config
    from ndar.finetune.engine import build_model, build_optimizer, learning_rate

    overrides = [
        f"model.backbone={backbone}", "model.num_frames=16", "model.img_size=224",
        f"model.grad_checkpointing={str(ckpt).lower()}", "model.drop_path_rate=0.2",
        "train.precision=bf16", "train.zero_stage=1", f"train.batch_size={batch}", "optim.layer_decay=0.8",
        *(extra or []),
    ]  # fmt: skip
    cfg = load_config(FinetuneConfig, None, overrides)
    dist = init_distributed("nccl")
    model, _ = build_model(cfg)
    optimizer = build_optimizer(model, cfg, learning_rate(cfg, dist))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, config=build_deepspeed_config(cfg, dist.world_size)
    )
    x = torch.randn(batch, 3, *CLIP, device=engine.device, dtype=torch.bfloat16)
    target = torch.softmax(torch.randn(batch, 16, device=engine.device), -1)

    def step():
        loss = torch.sum(-target * torch.log_softmax(engine(x).float(), -1), -1).mean()
        engine.backward(loss)
        engine.step()

    torch.cuda.reset_peak_memory_stats()
    seconds = cuda_time(step, warmup=2, min_reps=steps, budget_s=0.0)
    flops = count_model_flops({"backbone": backbone, "mode": "train", "batch": batch})
    tflops = flops / seconds / 1e12
    row = {
        "backbone": backbone, "batch": batch, "grad_ckpt": ckpt, "zero_stage": 1, "precision": "bf16",
        "s_per_step": seconds, "clips_per_s": batch / seconds, "tflops_model": tflops, "mfu": tflops / (peak_tflops() or float("nan")),
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "overrides": extra or [],
    }  # fmt: skip
    if profile:
        row["profile"] = profile_train_step(engine, x, target, steps)
    return row


def profile_train_step(engine, x: torch.Tensor, target: torch.Tensor, steps: int) -> dict:
    """Where the time of one fine-tuning step goes (`--profile-train`).

    ViT-H took the same time per step at micro batch 4 and 8, so part of the step does not scale
    with the batch. Three views of it, after the caller's warm-up:
    - each phase (forward + loss, `engine.backward`, `engine.step`) between synchronisations,
      with the seconds until the call returned (CPU: Python + launches) beside the seconds until
      the GPU finished: cpu ~= wall means the phase is bound by the host, not the GPU;
    - torch.profiler over two steps: the top ops by self CUDA time and by self CPU time;
    - cProfile of one step: the Python functions (DeepSpeed's included) by cumulative time.
    """
    import cProfile
    import io
    import pstats

    from torch.profiler import ProfilerActivity, profile, record_function

    def loss_of() -> torch.Tensor:
        return torch.sum(-target * torch.log_softmax(engine(x).float(), -1), -1).mean()

    phases: dict[str, list[float]] = {}

    def timed(name: str, fn):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with record_function(name):
            result = fn()
        returned = time.perf_counter()
        torch.cuda.synchronize()
        phases.setdefault(f"{name}_s", []).append(time.perf_counter() - start)
        phases.setdefault(f"{name}_cpu_s", []).append(returned - start)
        return result

    def step() -> None:
        loss = timed("forward", loss_of)
        timed("backward", lambda: engine.backward(loss))
        timed("step", engine.step)

    for _ in range(steps):
        step()
    out: dict = {name: float(np.median(v)) for name, v in phases.items()}
    out["sum_s"] = out["forward_s"] + out["backward_s"] + out["step_s"]
    out["optimizer"] = f"{type(engine.optimizer).__module__}.{type(engine.optimizer).__name__}"
    inner = getattr(engine.optimizer, "optimizer", engine.optimizer)
    out["inner_optimizer"] = f"{type(inner).__module__}.{type(inner).__name__} {inner.defaults}"
    out["param_groups"] = len(inner.param_groups)
    out["param_tensors"] = sum(1 for p in engine.module.parameters() if p.requires_grad)
    try:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(2):
                step()
        table = prof.key_averages()
        out["top_cuda"] = table.table(sort_by="self_cuda_time_total", row_limit=18, max_name_column_width=60)
        out["top_cpu"] = table.table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=60)
    except Exception:  # the phase times above still stand
        out["profiler_error"] = traceback.format_exc()[-1500:]
    profiler = cProfile.Profile()
    profiler.enable()
    step()
    profiler.disable()
    for key, limit in (("cumulative", 30), ("tottime", 15)):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(limit)
        out[f"cprofile_one_step_{key}"] = text.getvalue()
    return out


def train_rows(
    cases: list[str], steps: int, profile: bool = False, extra: list[str] | None = None
) -> list[dict]:
    """Each case in its own process: a clean process group, allocator and peak-memory counter."""
    rows = []
    for case in cases:
        cmd = [sys.executable, __file__, "--out", "-", "--train-case", case, "--steps", str(steps)]
        cmd += ["--profile-train"] if profile else []
        cmd += ["--train-override", *extra] if extra else []
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            rows.append({"case": case, "error": proc.stderr[-2000:]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print("train", json.dumps({k: v for k, v in rows[-1].items() if k != "profile"})[:400], flush=True)
        for key, value in rows[-1].get("profile", {}).items():  # the phase times and tables, readable
            print(f"{key}:\n{value}" if isinstance(value, str) and "\n" in value else f"{key}: {value}")
    return rows


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
    import bench_extract as cpu_bench

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
    from ndar.heads.runner import HeadsConfig, run_folds
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


# ---------------------------------------------------------------- report


def write(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=2, default=str))


def section(report: dict, out: Path, name: str, fn) -> None:
    start = time.perf_counter()
    try:
        report[name] = fn()
    except Exception:  # one failing section is recorded and the others still run
        report[name] = {"error": traceback.format_exc()[-3000:]}
        print(f"section {name} failed:\n{report[name]['error']}", flush=True)
    report.setdefault("section_s", {})[name] = time.perf_counter() - start
    write(out, report)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("bench/out/gpu"))
    parser.add_argument("--sections", nargs="+", default=["matmul", "forward", "train", "extract", "heads"])
    parser.add_argument("--forward", nargs="+", default=[
        "videomae_vit_large:16", "videomae_vit_huge:16", "videomae_vit_huge:32", "videomae_vit_large:16:compile",
    ], help="backbone:batch[:compile]")  # fmt: skip
    parser.add_argument("--train", nargs="+", default=[
        "videomae_vit_large:8:0", "videomae_vit_large:8:1", "videomae_vit_huge:4:1", "videomae_vit_huge:8:1",
    ], help="backbone:batch:grad_ckpt")  # fmt: skip
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument(
        "--profile-train", action="store_true",
        help="also time forward / backward / step apart and profile the train cases (JSON: 'profile')",
    )  # fmt: skip
    parser.add_argument(
        "--train-override", nargs="*", default=[],
        help="more FinetuneConfig overrides for the train cases, e.g. 'deepspeed.extra={bf16: {...}}'",
    )  # fmt: skip
    parser.add_argument("--video-seconds", type=float, default=60)
    parser.add_argument("--strides", type=int, nargs="+", default=[16, 4])
    parser.add_argument("--extract-batch", type=int, default=16)
    parser.add_argument("--ra-windows", type=int, default=40)
    parser.add_argument("--heads-epochs", type=int, default=3)
    parser.add_argument("--train-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_case:
        backbone, batch, ckpt = args.train_case.split(":")
        print(
            json.dumps(
                train_row(
                    backbone, int(batch), ckpt == "1", args.steps, args.profile_train, args.train_override
                )
            )
        )
        return 0
    report: dict = {"env": env_info(), "command": " ".join(sys.argv)}
    print(json.dumps(report["env"]), flush=True)
    write(args.out, report)
    if "matmul" in args.sections:
        section(report, args.out, "matmul", bench_matmul)
    matmul = report.get("matmul") if "tflops" in report.get("matmul", {}) else None

    def forward_rows():
        rows = []
        for case in args.forward:
            name, batch, *flag = case.split(":")
            rows.append(forward_row(name, int(batch), bool(flag), matmul))
            torch.cuda.empty_cache()
            print("forward", json.dumps(rows[-1]), flush=True)
        return rows

    if "forward" in args.sections:
        section(report, args.out, "forward", forward_rows)
    if "train" in args.sections:
        section(
            report,
            args.out,
            "train",
            lambda: train_rows(args.train, args.steps, args.profile_train, args.train_override),
        )
    if "extract" in args.sections:
        section(report, args.out, "extract", lambda: bench_extract(
            args.work, args.video_seconds, args.strides, args.extract_batch, args.ra_windows
        ))  # fmt: skip
    if "heads" in args.sections:
        section(report, args.out, "heads", lambda: bench_heads(args.work, args.heads_epochs))
    print(json.dumps({k: v for k, v in report.items() if k != "env"}, default=str)[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
