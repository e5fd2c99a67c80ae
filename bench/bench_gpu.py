"""GPU benchmarks for a lent GPU machine, in one command: backbones, a DeepSpeed fine-tuning step,
streaming extraction against the seed's random access, and heads epoch times.

    python -m bench.bench_gpu --out OUT [--sections matmul forward train extract heads]

Everything runs the package's own code: `create_backbone` for the forward passes, the fine-tuning
engine's `build_model` / `build_optimizer` / `build_deepspeed_config` under `deepspeed.initialize`
(bf16, ZeRO-1, NCCL) for the training step, `ndar.extract.run` for extraction and
`ndar.heads.runner.run_folds` for the heads. Model FLOPs are counted with FlopCounterMode on the
meta device (bench_backbones.count_model_flops); MFU is against the dense bf16 peak of the card
(989.4 TFLOP/s for H100 / H200 SXM) and, beside it, against a plain 8192^3 bf16 matmul measured
here. Writes OUT/gpu.json after every section (a section that fails records its error and the
others go on). The extraction and heads sections live in `bench.gpu_stages`.
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

from bench.bench_backbones import count_model_flops
from bench.common import cuda_time, machine, self_command, write_json
from bench.gpu_stages import bench_extract, bench_heads
from ndar.backbones import create_backbone

PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4}  # dense (no 2:4 sparsity), SXM parts
CLIP = (16, 224, 224)  # the real fine-tuning / extraction clip


def peak_tflops() -> float | None:
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def env_info() -> dict:
    import timm

    info = {
        "machine": machine(),
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
    from ndar.config import load_config
    from ndar.finetune.config import FinetuneConfig
    from ndar.finetune.distributed import init_distributed
    from ndar.finetune.ds_config import build_deepspeed_config
    from ndar.finetune.engine import build_engine, build_model, build_optimizer, learning_rate

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
    engine = build_engine(model, optimizer, cfg, build_deepspeed_config(cfg, dist.world_size))
    x = torch.randn(batch, 3, *CLIP, device=engine.device, dtype=torch.bfloat16)
    target = torch.softmax(torch.randn(batch, 16, device=engine.device), -1)

    def step():
        loss = torch.sum(-target * torch.log_softmax(engine(x).float(), -1), -1).mean()
        engine.backward(loss)
        engine.step()

    start = time.perf_counter()
    step()  # the first step: allocations, cuBLAS set-up and, with train.compile, the compile
    torch.cuda.synchronize()
    first_step_s = time.perf_counter() - start
    torch.cuda.reset_peak_memory_stats()
    seconds = cuda_time(step, warmup=2, min_reps=steps, budget_s=0.0)
    flops = count_model_flops({"backbone": backbone, "mode": "train", "batch": batch})
    tflops = flops / seconds / 1e12
    row = {
        "backbone": backbone, "batch": batch, "grad_ckpt": ckpt, "zero_stage": 1, "precision": "bf16",
        "first_step_s": first_step_s, "s_per_step": seconds, "clips_per_s": batch / seconds, "tflops_model": tflops, "mfu": tflops / (peak_tflops() or float("nan")),
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


CASE_FLAGS = {"compile": "train.compile=true", "fused": "optim.fused=true"}


def parse_train_case(case: str) -> tuple[str, int, bool, list[str]]:
    """ "videomae_vit_large:8:0:compile+fused" -> (backbone, batch, grad_ckpt, FinetuneConfig overrides)."""
    backbone, batch, ckpt, *flags = case.split(":")
    names = [name for name in "+".join(flags).split("+") if name]
    unknown = sorted(set(names) - set(CASE_FLAGS))
    if unknown:
        raise ValueError(
            f"train case {case!r}: unknown flag(s) {unknown}; expected some of {sorted(CASE_FLAGS)}"
        )
    return backbone, int(batch), ckpt == "1", [CASE_FLAGS[name] for name in names]


def train_rows(
    cases: list[str],
    steps: int,
    profile: bool = False,
    extra: list[str] | None = None,
    deadline_s: float = 0.0,
) -> list[dict]:
    """Each case in its own process: a clean process group, allocator and peak-memory counter.
    With `deadline_s` (a short device lease), cases past it are skipped and a running one is stopped."""
    for case in cases:
        parse_train_case(case)  # a typo in any case fails here, before GPU time is spent on the others
    rows, start = [], time.perf_counter()
    for case in cases:
        left = deadline_s - (time.perf_counter() - start) if deadline_s else None
        if left is not None and left < 20:
            rows.append({"case": case, "skipped": f"deadline of {deadline_s:.0f} s reached"})
            print("train", json.dumps(rows[-1]), flush=True)
            continue
        cmd = [*self_command(__spec__), "--out", "-", "--train-case", case, "--steps", str(steps)]
        cmd += ["--profile-train"] if profile else []
        cmd += ["--train-override", *extra] if extra else []
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=left)
        except subprocess.TimeoutExpired:
            rows.append({"case": case, "error": f"stopped at the deadline of {deadline_s:.0f} s"})
            print("train", json.dumps(rows[-1]), flush=True)
            continue
        if proc.returncode != 0:
            rows.append({"case": case, "error": proc.stderr[-2000:]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print("train", json.dumps({k: v for k, v in rows[-1].items() if k != "profile"})[:400], flush=True)
        for key, value in rows[-1].get("profile", {}).items():  # the phase times and tables, readable
            print(f"{key}:\n{value}" if isinstance(value, str) and "\n" in value else f"{key}: {value}")
    return rows


# ---------------------------------------------------------------- report


def write(out: Path, report: dict) -> None:
    write_json(out / "gpu.json", report)


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
    ], help="backbone:batch:grad_ckpt[:flag+flag], flags: " + ", ".join(CASE_FLAGS))  # fmt: skip
    parser.add_argument(
        "--deadline-s", type=float, default=0.0,
        help="start no train case after this many seconds (0 = none); a running case is stopped there",
    )  # fmt: skip
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
        backbone, batch, ckpt, extra = parse_train_case(args.train_case)
        row = train_row(backbone, batch, ckpt, args.steps, args.profile_train, [*args.train_override, *extra])
        print(json.dumps(row | {"case": args.train_case}))
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
            lambda: train_rows(
                args.train, args.steps, args.profile_train, args.train_override, args.deadline_s
            ),
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
