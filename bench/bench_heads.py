"""ActionFormer on synthetic features shaped like the main job's: k-fold time, epoch time, OOF scores.

    python -m bench.bench_heads [--noise 1.0 2.0 3.0] [--out /tmp/ndar_bench_heads] [--real-scale]

Features: 8 A1 drivers x 2 sessions + 2 A2 drivers, 120 s sessions (the main job's time scale 0.25),
all 15 classes per session (1-6 s long, gaps 1-8 s), windows of 2 s every 16 frames at 15 fps
(1.067 s), two views of 96-d features (the demo backbones' width), class means + Gaussian noise,
blurred over 3 windows. Runs `ndar.heads.runner.run_folds` with configs/heads/actionformer_tiny.yaml
(k=3) on them, directly in memory (no feature files), and prints one JSON line per noise level,
with the scores of a chance guesser for reference. `--real-scale` also times one training step of
the real-scale config (configs/heads/actionformer.yaml) on CPU: batch 2 x 1024 steps x 2 x 1280-d.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ndar.config import load_config
from ndar.formats.predictions import segments_frame
from ndar.heads.actionformer import ActionFormerConfig, ActionFormerHead
from ndar.heads.actionformer.head import flatten_levels, make_batch
from ndar.heads.actionformer.targets import detection_losses
from ndar.heads.config import HeadsConfig
from ndar.heads.runner import run_folds, score_predictions
from ndar.heads.synthetic import make_feature_videos
from ndar.utils.io import read_json

SHAPE = dict(
    duration=120.0,
    classes=tuple(range(1, 16)),
    length=(1, 6),
    gap=(1, 8),
    first=(1, 5),
    window_stride=16 / 15,
    window_len=2.0,
    dims={"rear": 96, "dashboard": 96},
    blur=3,
)


def chance(videos, cfg) -> dict:
    rng = np.random.default_rng(0)
    rows = {}
    for v in videos:
        rows[v.key] = []
        for seg in v.segments:
            start = rng.uniform(0, v.duration - seg.duration)
            rows[v.key].append((seg.label, start, start + seg.duration, rng.random()))
    curves = {v.key: np.zeros((v.num_seconds, 16), dtype=np.float32) for v in videos}
    return score_predictions(cfg, videos, curves, segments_frame(rows))


def bench_noise(noise: float, out: Path, config: Path) -> dict:
    a1 = make_feature_videos(n_drivers=8, sessions=2, noise=noise, seed=0, **SHAPE)
    a2 = make_feature_videos(
        n_drivers=2, sessions=1, noise=noise, seed=1, split="A2", first_driver=201, **SHAPE
    )
    cfg = load_config(
        HeadsConfig, config, [f"out={out}", "feature_sets=[synthetic/rear, synthetic/dashboard]"]
    )
    shutil.rmtree(out, ignore_errors=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    metrics = run_folds(cfg, a1, a2)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    epochs = epoch_seconds(out, cfg.folds)
    ref = chance(a1, cfg)
    overall = metrics["overall"]
    return {
        "noise": noise,
        "kfold_wall_s": round(wall, 1),
        "kfold_cpu_s": round(cpu, 1),  # CPU time of this process: what an idle machine would take
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "fit_s_per_fold": [round(f["fit_seconds"], 1) for f in metrics["folds"].values()],
        "epoch_s_median": round(float(np.median(epochs)), 3),
        "windows_per_video": int(a1[0].num_windows),
        "mAP": round(overall["mAP"], 4),
        "mAP@0.5": round(overall["mAP@0.5"], 4),
        "mOS_curve": round(overall["mOS"], 4),
        "mOS_segments": round(overall["mOS_segments"], 4),
        "chance_mAP": round(ref["mAP"], 4),
        "chance_mOS_segments": round(ref["mOS_segments"], 4),
    }


def epoch_seconds(out: Path, folds: int) -> list[float]:
    """Seconds of every training epoch of every fold (from folds/fold_<k>/fold.json)."""
    seconds = []
    for fold in range(folds):
        history = read_json(out / "folds" / f"fold_{fold}" / "fold.json")["history"]["epochs"]
        seconds.extend(e["epoch_seconds"] for e in history)
    return seconds


def real_scale_step(config: Path) -> dict:
    """Seconds of one forward+backward of the real-scale model on CPU (batch 2 x 1024 steps)."""
    cfg = load_config(HeadsConfig, config).actionformer
    af = ActionFormerConfig(**{**cfg, "device": "cpu"})
    dims = {"rear": 1280, "dashboard": 1280}
    head = ActionFormerHead(af, dims, seed=0)
    rng = np.random.default_rng(0)
    items = [
        {
            "feats": {s: rng.normal(size=(1024, d)).astype(np.float32) for s, d in dims.items()},
            "gt": np.array([[100.0, 120.0], [400.0, 430.0]]),
            "labels": np.array([2, 7]),
        }
        for _ in range(2)
    ]
    batch = make_batch(items, head.streams, af, head.device)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        logits, offsets, valid = flatten_levels(head.model(batch["feats"], batch["mask"]))
        parts = detection_losses(logits, offsets, valid, batch["cls"], batch["reg"], batch["pos"], af)
        (parts["cls"] + parts["reg"]).backward()
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in head.model.parameters())
    return {
        "real_scale_step_s": round(min(times), 2),
        "params_M": round(params / 1e6, 2),
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/ndar_bench_heads"))
    parser.add_argument("--config", type=Path, default=Path("configs/heads/actionformer_tiny.yaml"))
    parser.add_argument("--real-scale", action="store_true")
    args = parser.parse_args()
    for noise in args.noise:
        print(json.dumps(bench_noise(noise, args.out / f"noise{noise:g}", args.config)), flush=True)
    if args.real_scale:
        print(json.dumps(real_scale_step(Path("configs/heads/actionformer.yaml"))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
