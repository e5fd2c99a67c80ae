"""CPU forward cost per clip of videomamba_tiny vs videomae_vit_tiny at 8, 16, 32 and 64 frames.

The point is the growth with frames: VideoMamba's cost is linear in tokens, a ViT's attention
quadratic. CPU time of the process (one torch thread) is the cost measure, since other jobs on a
shared machine inflate wall time but not it; wall time is reported beside it. A second table times
the selective scan alone (the choice of the pure-PyTorch paths): the log-depth chunked and the
stepwise scan at a few chunk sizes, a plain token loop, `mambapy`'s Blelloch scan when that package is
importable, and forward + backward of the two paths.

    .venv/bin/python -m bench.bench_videomamba --out bench/results/videomamba_cpu.md
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ndar.backbones import create_backbone
from ndar.backbones.scan import chunked_selective_scan, stepwise_selective_scan
from ndar.utils.io import atomic_write_text

BACKBONES = ("videomamba_tiny", "videomae_vit_tiny")


def time_call(fn, repeats: int, warmup: bool = True) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call, the mean of `repeats` calls (after a warm-up call)."""
    if warmup:
        fn()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.process_time() - cpu) / repeats, (time.perf_counter() - wall) / repeats


def forward_rows(frames: list[int], img_size: int, repeats: int) -> list[dict]:
    rows = []
    for name in BACKBONES:
        for t in frames:
            torch.manual_seed(0)
            model = create_backbone(name, num_classes=16, num_frames=t, img_size=img_size).eval()
            x = torch.randn(1, 3, t, img_size, img_size)
            with torch.inference_mode():
                # one warm-up per backbone (the first, smallest clip): long clips cost a minute each
                cpu, wall = time_call(lambda m=model, x=x: m(x), repeats, warmup=t == frames[0])
            tokens = getattr(model, "num_tokens", None) or 1 + t * model.grid[1] * model.grid[2]
            rows.append({"backbone": name, "frames": t, "tokens": tokens, "cpu_s": cpu, "wall_s": wall})
            print(rows[-1], flush=True)
    return rows


def loop_scan(u, delta, A, B, C):
    """A plain token-by-token scan (what a straightforward port runs)."""
    delta = F.softplus(delta)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[-1]):
        h = (
            torch.exp(delta[:, :, t, None] * A) * h
            + delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        )
        ys.append((h * C[:, None, :, t]).sum(-1))
    return torch.stack(ys, dim=-1)


def mambapy_scan(pscan):
    def scan(u, delta, A, B, C):
        delta = F.softplus(delta)
        decay = torch.exp(delta[..., None] * A[None, :, None]).transpose(1, 2).contiguous()  # (B, L, D, N)
        drive = (delta[..., None] * u[..., None] * B.transpose(1, 2)[:, None]).transpose(1, 2).contiguous()
        h = pscan(decay, drive)  # (B, L, D, N)
        return (h * C.transpose(1, 2)[:, :, None]).sum(-1).transpose(1, 2)

    return scan


def scan_rows(length: int, dim: int, repeats: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    u, delta = torch.randn(1, dim, length, generator=g), torch.randn(1, dim, length, generator=g) - 1
    A = -torch.rand(dim, 16, generator=g) * 16
    B, C = torch.randn(1, 16, length, generator=g), torch.randn(1, 16, length, generator=g)
    cases = {}
    for k in (16, 32, 64):
        cases[f"chunked (log-depth), chunk {k}"] = lambda k=k: chunked_selective_scan(
            u, delta, A, B, C, delta_softplus=True, chunk=k
        )
    for k in (64, 256):
        cases[f"stepwise, chunk {k}"] = lambda k=k: stepwise_selective_scan(
            u, delta, A, B, C, delta_softplus=True, chunk=k
        )
    cases["token loop"] = lambda: loop_scan(u, delta, A, B, C)
    try:
        from mambapy.pscan import pscan

        cases["mambapy pscan (Blelloch, pads to 2^k)"] = lambda: mambapy_scan(pscan)(u, delta, A, B, C)
    except ImportError:
        print("mambapy not importable: its row is skipped")
    reference = loop_scan(u, delta, A, B, C)
    rows = []
    with torch.inference_mode():
        for name, fn in cases.items():
            err = (fn() - reference).abs().max().item()
            cpu, wall = time_call(fn, repeats)
            rows.append({"scan": name, "cpu_s": cpu, "wall_s": wall, "max_abs_err": err})
            print(rows[-1], flush=True)
    grads = [t.requires_grad_(True) for t in (u, delta, A, B, C)]
    training = {
        "chunked (log-depth), chunk 32": lambda: chunked_selective_scan(
            *grads, delta_softplus=True, chunk=32
        ),
        "stepwise, chunk 64": lambda: stepwise_selective_scan(*grads, delta_softplus=True, chunk=64),
    }
    for name, fn in training.items():
        cpu, wall = time_call(lambda fn=fn: fn().sum().backward(), repeats)
        rows.append(
            {"scan": f"{name}: forward + backward", "cpu_s": cpu, "wall_s": wall, "max_abs_err": float("nan")}
        )
        print(rows[-1], flush=True)
    return rows


def _err(row: dict) -> str:
    return "-" if math.isnan(row["max_abs_err"]) else f"{row['max_abs_err']:.1e}"


def render(forward: list[dict], scans: list[dict], args, seconds: float) -> str:
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [
        "## VideoMamba vs ViT: CPU forward cost per clip (`bench/bench_videomamba.py`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), {torch.get_num_threads()} torch thread; "
        f"torch {torch.__version__}; load average at the end {load}. Command: "
        f"`.venv/bin/python -m bench.bench_videomamba --frames {' '.join(map(str, args.frames))} "
        f"--repeats {args.repeats}` (wall {seconds:.0f} s). Batch 1, {args.img_size} px, fp32, inference mode, "
        "random weights. CPU s = process CPU time per clip (the cost; wall is inflated by other jobs).",
        "",
        "| frames | videomamba_tiny tokens | CPU s | videomae_vit_tiny tokens | CPU s | mamba / ViT | wall s (mamba / ViT) |",
        "|---|---|---|---|---|---|---|",
    ]
    by = {(r["backbone"], r["frames"]): r for r in forward}
    for t in args.frames:
        m, v = by[(BACKBONES[0], t)], by[(BACKBONES[1], t)]
        lines.append(
            f"| {t} | {m['tokens']} | {m['cpu_s']:.2f} | {v['tokens']} | {v['cpu_s']:.2f} | "
            f"{m['cpu_s'] / v['cpu_s']:.2f} | {m['wall_s']:.2f} / {v['wall_s']:.2f} |"
        )
    first = args.frames[0]
    for name in BACKBONES:
        growth = " / ".join(
            f"{by[(name, t)]['cpu_s'] / by[(name, first)]['cpu_s']:.1f}x" for t in args.frames
        )
        lines.append(
            f"\nGrowth of {name} from {first} frames ({' / '.join(map(str, args.frames))}): {growth}."
        )
    lines += [
        "",
        f"Selective scan alone, one direction of one videomamba_tiny block at 16 frames "
        f"(B 1, D {args.scan_dim}, L {args.scan_length}, N 16), errors against the token loop:",
        "",
        "| scan | CPU s | wall s | max abs err |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['scan']} | {r['cpu_s']:.3f} | {r['wall_s']:.3f} | {_err(r)} |" for r in scans]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--scan-length", type=int, default=3137)
    parser.add_argument("--scan-dim", type=int, default=384)
    parser.add_argument("--out", type=Path, default=Path("bench/results/videomamba_cpu.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    scans = scan_rows(args.scan_length, args.scan_dim, args.repeats)
    forward = forward_rows(args.frames, args.img_size, args.repeats)
    text = render(forward, scans, args, time.perf_counter() - start)
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
