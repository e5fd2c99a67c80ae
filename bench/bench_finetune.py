"""Fine-tuning step throughput (clips/s) and peak memory on CPU at the real clip size.

Each case runs in its own process (so the peak RSS is that case's): the registered backbone at
16 x 224 x 224, timm's layer-decay AdamW (the engine's `build_optimizer`), soft-target loss, a few
full optimizer steps on random clips after one warm-up step. Optionally the same step through the
DeepSpeed engine (`--deepspeed`, fp32, ZeRO 0, gloo) to show the wrapper's overhead.

    python -m bench.bench_finetune                       # tiny and base, batch 2 / 1
    python -m bench.bench_finetune --cases videomae_vit_tiny:4 --steps 5 --deepspeed
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from bench.common import self_command


def run_case(
    backbone: str, batch: int, steps: int, frames: int, size: int, threads: int, use_ds: bool
) -> dict:
    import torch

    from ndar.config import load_config
    from ndar.finetune.config import FinetuneConfig
    from ndar.finetune.distributed import DistInfo
    from ndar.finetune.engine import build_model, build_optimizer, learning_rate

    if threads:
        torch.set_num_threads(threads)
    cfg = load_config(
        FinetuneConfig,
        None,
        [
            f"model.backbone={backbone}",
            f"model.num_frames={frames}",
            f"model.img_size={size}",
            "train.precision=fp32",
        ],
    )
    cfg.train.batch_size, cfg.train.zero_stage = batch, 0
    model, spec = build_model(cfg)
    optimizer = build_optimizer(model, cfg, learning_rate(cfg, DistInfo(0, 1, 0)))
    step_fn = model
    if use_ds:
        import deepspeed

        from ndar.finetune.distributed import init_distributed
        from ndar.finetune.ds_config import build_deepspeed_config

        init_distributed("gloo")
        step_fn, optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, config=build_deepspeed_config(cfg, 1)
        )
    x = torch.randn(batch, 3, spec.num_frames, spec.img_size, spec.img_size)
    target = torch.softmax(torch.randn(batch, 16), -1)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = torch.sum(-target * torch.log_softmax(step_fn(x), -1), -1).mean()
        if use_ds:
            step_fn.backward(loss)
            step_fn.step()
        else:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    step_s = sum(times) / len(times)
    return {
        "backbone": backbone,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "clip": f"{spec.num_frames}x{spec.img_size}x{spec.img_size}",
        "batch": batch,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "deepspeed": use_ds,
        "step_s": round(step_s, 3),
        "clips_per_s": round(batch / step_s, 3),
        "peak_rss_GiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["videomae_vit_tiny:2", "videomae_vit_base:1"],
                        help="backbone:batch pairs")  # fmt: skip
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument(
        "--deepspeed", action="store_true", help="also time each case through the DeepSpeed engine"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()
    if args.one:
        backbone, batch, use_ds = args.one.split(":")
        result = run_case(
            backbone, int(batch), args.steps, args.frames, args.size, args.threads, use_ds == "1"
        )
        print(json.dumps(result))
        return 0
    rows = []
    for case in args.cases:
        for use_ds in [False, True] if args.deepspeed else [False]:
            cmd = [*self_command(__spec__), "--one", f"{case}:{int(use_ds)}", "--steps", str(args.steps)]
            cmd += ["--frames", str(args.frames), "--size", str(args.size), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
