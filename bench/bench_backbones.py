"""Backbone throughput, FLOP rate and peak memory at the real clip size (16 x 224 x 224).

Each case runs in its own subprocess so its peak RSS (ru_maxrss) belongs to that case alone.
FLOPs are counted with torch.utils.flop_counter.FlopCounterMode; the achieved GFLOP/s is compared with
a plain fp32 matmul's GFLOP/s measured in the same way on the same machine (target: at least half).

    python -m bench.bench_backbones                      # CPU cases, writes bench/results/backbones.md
    python -m bench.bench_backbones --preset gpu --device cuda --out bench/results/backbones_gpu.md
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from bench.common import load_average, machine, self_command, time_per_call, write_text
from ndar.backbones import create_backbone

PRESETS = {
    # (backbone, mode, batch, grad_checkpointing, dtype)
    "cpu": [
        ("videomae_vit_tiny", "forward", 1, False, "fp32"),
        ("videomae_vit_tiny", "forward", 2, False, "fp32"),
        ("videomae_vit_base", "forward", 1, False, "fp32"),
        ("videomae_vit_tiny", "train", 2, False, "fp32"),
        ("videomae_vit_tiny", "train", 2, True, "fp32"),
    ],
    # a base batch of 2 and base training steps take minutes on a shared 2-core machine: opt-in
    "cpu-full": [
        ("videomae_vit_base", "forward", 2, False, "fp32"),
        ("videomae_vit_base", "train", 1, False, "fp32"),
        ("videomae_vit_base", "train", 1, True, "fp32"),
    ],
    "gpu": [
        ("videomae_vit_large", "train", 8, False, "bf16"),
        ("videomae_vit_large", "train", 8, True, "bf16"),
        ("videomae_vit_large", "forward", 16, False, "bf16"),
    ],
}


def cpu_attention_flops() -> dict:
    """FlopCounterMode knows the CUDA attention kernels but not the CPU flash kernel: add it."""

    def forward(q, k, v, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(q, k, v)

    def backward(grad_out, q, k, v, *args, out_shape=None, **kwargs):
        return sdpa_backward_flop_count(grad_out, q, k, v)

    aten = torch.ops.aten
    mapping = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = forward
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = backward
    return mapping


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn, device: str, min_reps: int, budget_s: float) -> tuple[float, float]:
    """(wall, process CPU) seconds per call after one warm-up call (`common.time_per_call`), the
    GPU synchronised on cuda. With one thread, CPU seconds are what the step costs on a shared machine."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    return time_per_call(fn, min_reps, budget_s, warmup=1, sync=sync)


def matmul_gflops(
    device: str, dtype: torch.dtype, n: int = 2048, budget_s: float = 3.0
) -> tuple[float, float]:
    """(wall, CPU-time) GFLOP/s of a plain n x n x n matmul."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    wall, cpu = timed(lambda: torch.mm(a, b), device, 3, budget_s)
    return 2 * n**3 / wall / 1e9, 2 * n**3 / cpu / 1e9


def count_model_flops(case: dict) -> int:
    """Model FLOPs of one step, counted on the meta device (no compute, no memory).

    Without gradient checkpointing, so recomputation is not counted as useful work; on meta, SDPA
    takes the math path, whose bmm FLOPs equal the attention formula (backward: 2x forward).
    """
    with torch.device("meta"):
        model = create_backbone(case["backbone"]).train(case["mode"] == "train")
        x = torch.randn(case["batch"], 3, 16, 224, 224)
    with FlopCounterMode(display=False, custom_mapping=cpu_attention_flops()) as counter:
        if case["mode"] == "train":
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops()


def run_case(case: dict) -> dict:
    """Build one backbone and measure one case (called in a fresh subprocess)."""
    torch.set_num_threads(case["threads"])
    device, dtype_name = case["device"], case["dtype"]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    torch.manual_seed(0)
    model = create_backbone(case["backbone"], grad_checkpointing=case["grad_ckpt"]).to(device)
    x = torch.randn(case["batch"], 3, 16, 224, 224, device=device)
    autocast = torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype_name != "fp32")
    if case["mode"] == "forward":
        model.eval()

        def step():
            with torch.no_grad(), autocast:
                model(x)
    else:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        target = torch.randint(0, 16, (case["batch"],), device=device)

        def step():
            with autocast:
                loss = torch.nn.functional.cross_entropy(model(x), target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    base_rss = rss_mb()  # model, input and libraries (import torch alone is ~0.7 GB here)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    seconds, cpu_seconds = timed(step, device, case["reps"], case["budget_s"])
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    matmul, matmul_cpu = matmul_gflops(device, dtype, budget_s=1.5)  # same moment, same machine load
    flops = count_model_flops(case)
    result = dict(case)
    result.update(
        matmul_gflops=matmul,
        matmul_cpu_gflops=matmul_cpu,
        seconds_per_step=seconds,
        cpu_seconds_per_step=cpu_seconds,
        cpu_gflops=flops / cpu_seconds / 1e9,
        clips_per_s=case["batch"] / seconds,
        gflop_per_step=flops / 1e9,
        gflops=flops / seconds / 1e9,
        peak_rss_mb=peak_rss,
        rss_before_mb=base_rss,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        threads=torch.get_num_threads(),
    )
    if device.startswith("cuda"):
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_in_subprocess(case: dict) -> dict:
    proc = subprocess.run(
        [*self_command(__spec__), "--one", json.dumps(case)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def render(results: list[dict], matmul: tuple[float, float], args: argparse.Namespace, wall: float) -> str:
    gpu = args.device.startswith("cuda")
    rate = "GFLOP/s" if gpu else "GFLOP per CPU-s"
    lines = [
        "# Backbone benchmark (`python -m bench.bench_backbones`)",
        "",
        f"Machine: {machine()}; {args.threads} torch thread(s), device {args.device}; "
        f"load average at start {args.load}.",
        "Shared machine: other jobs ran at the same time. Wall times are therefore upper bounds; on CPU the",
        "FLOP rates use process CPU time (one thread: the time the step really ran), which other jobs do",
        "not inflate, and the matmul reference is measured the same way right after each case.",
        f"Command: `python -m bench.bench_backbones --preset {args.preset} --device {args.device} "
        f"--threads {args.threads}` (wall {wall:.0f} s).",
        "Clip 16 x 224 x 224 (1568 tokens). Model FLOPs from FlopCounterMode on the meta device (forward;",
        "train = forward + backward; recomputation of gradient checkpointing and the AdamW step not counted).",
        "Peak RSS = process high-water mark; 'before' = RSS after building the model and input,",
        "before any compute (libraries included: `import torch` alone is ~0.7 GB, timm ~0.2 GB more);",
        "'peak - before' is the working memory of the step (activations, gradients, optimizer state).",
        "",
        f"Plain matmul (2048^3, {args.matmul_dtype}) at the start: {matmul[0]:.1f} GFLOP/s wall, "
        f"{matmul[1]:.1f} GFLOP per CPU-s.",
        "",
        f"| backbone | mode | batch | grad ckpt | dtype | wall s/step | clips/s (wall) | CPU s/step | GFLOP/step "
        f"| {rate} | matmul {rate} | ratio | peak RSS MB | RSS before MB | peak - before MB |"
        + (" peak GPU MB |" if gpu else ""),
        "|---" * 15 + "|" + ("---|" if gpu else ""),
    ]
    for r in results:
        ours, ref = (r["gflops"], r["matmul_gflops"]) if gpu else (r["cpu_gflops"], r["matmul_cpu_gflops"])
        row = (
            f"| {r['backbone']} | {r['mode']} | {r['batch']} | {r['grad_ckpt']} | {r['dtype']} | "
            f"{r['seconds_per_step']:.2f} | {r['clips_per_s']:.3f} | {r['cpu_seconds_per_step']:.2f} | "
            f"{r['gflop_per_step']:.1f} | {ours:.1f} | {ref:.1f} | {ours / ref:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} | {r['peak_rss_mb'] - r['rss_before_mb']:.0f} |"
        )
        if "peak_gpu_mb" in r:
            row += f" {r['peak_gpu_mb']:.0f} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=1, help="timed steps per case (after one warm-up)")
    parser.add_argument("--budget-s", type=float, default=3.0, help="keep timing a case this many seconds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (cases and matmul)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "backbones.md")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(json.loads(args.one))))
        return 0
    torch.set_num_threads(args.threads)
    args.matmul_dtype = "bf16" if args.preset == "gpu" else "fp32"
    args.load = load_average()
    start = time.perf_counter()
    matmul = matmul_gflops(args.device, torch.bfloat16 if args.matmul_dtype == "bf16" else torch.float32)
    print(f"matmul {matmul[0]:.1f} GFLOP/s wall, {matmul[1]:.1f} GFLOP per CPU-s", flush=True)
    results = []
    for backbone, mode, batch, ckpt, dtype in PRESETS[args.preset]:
        case = dict(
            backbone=backbone, mode=mode, batch=batch, grad_ckpt=ckpt, dtype=dtype, device=args.device,
            reps=args.reps, budget_s=args.budget_s, threads=args.threads,
        )  # fmt: skip
        results.append(run_in_subprocess(case))
        r = results[-1]
        print(
            f"{backbone} {mode} b{batch} ckpt={ckpt}: {r['clips_per_s']:.3f} clips/s, "
            f"{r['cpu_gflops']:.1f} GFLOP per CPU-s (matmul {r['matmul_cpu_gflops']:.1f}), "
            f"peak {r['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    text = render(results, matmul, args, time.perf_counter() - start)
    write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
