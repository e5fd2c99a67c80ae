"""Synthetic generation speed: video seconds written per wall second, per view.

    python -m bench.bench_synth [--out /tmp/ndar_bench_synth] [synth CLI args...]

Default arguments are the main job's setting (`ndar.synth.MAIN_JOB_ARGS`). Prints wall time, CPU time
(this process and its workers), and throughput. A busy machine inflates wall time; CPU time / 2 is
what an idle 2-core machine needs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

from ndar.synth import MAIN_JOB_ARGS, generate
from ndar.synth.cli import add_arguments, config_from_args


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    extra = sys.argv[1:] or list(MAIN_JOB_ARGS)
    if "--out" not in extra:
        extra = ["--out", "/tmp/ndar_bench_synth", *extra]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(extra))
    shutil.rmtree(cfg.out, ignore_errors=True)
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = generate(cfg)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    meta = json.loads((Path(out) / "synth.json").read_text())
    video_s = sum(s["duration_s"] for s in meta["sessions"])  # per view
    frames = sum(s["frames"] for s in meta["sessions"]) * len(cfg.views)
    result = {
        "args": " ".join(extra),
        "sessions": len(meta["sessions"]),
        "views": len(cfg.views),
        "video_s_per_view": video_s,
        "frames_total": frames,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "video_s_per_wall_s_per_view": round(video_s / wall, 2),
        "video_s_per_cpu_s_per_view": round(video_s / cpu, 2),
        "cpu_ms_per_frame": round(1000 * cpu / frames, 3),
        "size_mb": round(sum(p.stat().st_size for p in Path(out).rglob("*.MP4")) / 2**20, 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
