"""Fine-tuning fed from the clip cache at the real geometry: clips/s and the time spent waiting for data.

    python -m bench.bench_cachefeed --out OUT                        # a GPU host: ViT-L, bf16, ZeRO-1
    python -m bench.bench_cachefeed --out OUT --time-scale 0.04 --set data.background_per_video=16 \
        train.epochs=4 train.save_every=4                            # what a 15-min lease measured
    python -m bench.bench_cachefeed --out OUT --smoke                # any CPU: the same path, tiny

Why: the real A1 is 8-minute 1080p files; the clip cache is what should keep a GPU busy (#13's goal:
at most 10% of step time waiting for data). This runs the project's own path end to end on data it
makes itself: the synthetic renderer writes short sessions at 1920x1080 30 fps (rear view), `cache-
clips` builds the track's cache (16 frames at rate 4, 224 px, the `aicity` crop box), and the
fine-tuning engine trains a randomly initialised ViT-L (the hybrid_vitl track's config, every
augmentation on) from that cache with `--workers` loader processes. The engine itself reports clips/s
and `data_wait`, the fraction of the epoch blocked on the loader (`metrics.csv`, `train_epoch` rows),
with `first_batch_s` (the wait for the epoch's first batch: the workers' start in the first epoch,
they persist after it) and `data_wait_steady` (after it): these sessions give short epochs, where
the first batch weighs far more than in a real one. Two epochs are run by default: the first also
includes the model's first steps (allocations, cuBLAS set-up, and the compile the track's config
turns on: about 2 minutes), so `data_wait_steady` of the later ones is the steady figure. Writes
OUT/cachefeed.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from bench.common import machine, self_command, write_json

TRACK_CONFIG = "configs/finetune/hybrid_vitl.yaml"


def render(out: Path, smoke: bool, time_scale: float) -> dict:
    """Short rear-view sessions at the real geometry (`time_scale` x 8 minutes each). On a GPU host
    6 A1 drivers (12 videos) and the A2 one render side by side on 14 processes in the time of one
    video (about 1.5 s of one core per second of 1080p video): a first run with 2 drivers gave 8-step
    epochs, too short to show the loader's steady state. Shorter sessions with more background clips
    per video (`--set data.background_per_video=N`) give the same epoch for less render time."""
    from ndar.synth import SynthConfig, generate

    cfg = SynthConfig(
        out=out, drivers=2 if smoke else 6, test_drivers=1, width=1920, height=1080, fps=30.0, views=["rear"],
        time_scale=time_scale, min_activity_s=1, min_gap_s=1, workers=2 if smoke else 14,
    )  # fmt: skip
    start = time.perf_counter()
    generate(cfg)
    return {"render_s": time.perf_counter() - start}


def finetune_overrides(data: Path, cache: Path, output: Path, args: argparse.Namespace) -> list[str]:
    values = [
        f"data.root={data}", "data.view=rear", "data.k=2", "data.fold=-1", f"data.cache_dir={cache}",
        f"data.num_workers={args.workers}", "model.pretrained=null", f"output={output}",
        "train.epochs=2", f"train.max_steps_per_epoch={args.steps}", "train.save_every=2",
        "optim.warmup_epochs=0", f"train.batch_size={args.batch}", "train.log_every=10",
    ]  # fmt: skip
    values += args.set
    if args.smoke:  # the tiny backbone in fp32 on a CPU: the same data path, seconds per step
        values += [
            "model.backbone=videomae_vit_tiny", "model.num_frames=4", "model.img_size=32",
            "model.grad_checkpointing=false", "train.precision=fp32", "train.zero_stage=0",
            "deepspeed.backend=gloo",
        ]  # fmt: skip
    return values


def build_cache(ft_cfg, workers: int) -> dict:
    from ndar.clipcache.build import run_many
    from ndar.clipcache.config import from_finetune

    start = time.perf_counter()
    summary = run_many([from_finetune(ft_cfg, workers=workers)])[0]
    return {"cache_s": time.perf_counter() - start, "cache": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per epoch (two epochs)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=14, help="DataLoader processes (a 16-core host: 14)")
    parser.add_argument(
        "--time-scale", type=float, default=0.12, help="session length / 8 minutes (0.12: about 1 minute)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU (checks the path)")
    parser.add_argument(
        "--set", nargs="*", default=[], help="more fine-tuning overrides (train.compile=true)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.workers = min(args.steps, 4), min(args.batch, 2), min(args.workers, 1)
        args.time_scale = min(args.time_scale, 0.06)

    from ndar.config import load_config
    from ndar.finetune.config import FinetuneConfig
    from ndar.finetune.engine import run as finetune

    data, cache, output = args.out / "data", args.out / "cache", args.out / "finetune"
    command = " ".join([*self_command(__spec__)[1:], *(argv if argv is not None else sys.argv[1:])])
    result: dict = {
        "command": f"python {command}",
        "machine": machine(),
        "args": vars(args) | {"out": str(args.out)},
    }
    result |= render(data, args.smoke, args.time_scale)
    ft_cfg = load_config(FinetuneConfig, TRACK_CONFIG, finetune_overrides(data, cache, output, args))
    result |= build_cache(ft_cfg, args.workers)
    start = time.perf_counter()
    finetune(ft_cfg)
    result["finetune_s"] = time.perf_counter() - start
    epochs = pd.read_csv(output / "metrics.csv")
    epochs = epochs[epochs["split"] == "train_epoch"]
    result["epochs"] = epochs[
        ["epoch", "clips_per_s", "data_wait", "first_batch_s", "data_wait_steady", "loss"]
    ].to_dict("records")
    write_json(args.out / "cachefeed.json", result)
    print(json.dumps(result["epochs"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
