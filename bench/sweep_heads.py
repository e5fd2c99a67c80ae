"""Sweep head settings on A1 out-of-fold mOS only: many single-threaded `ndar heads train` runs at once.

    python -m bench.sweep_heads --config "runs/s10/configs/heads_tim_{track}.yaml" \
        --tracks k400_vith hybrid_vitl ego_vitl --jobs 2 --out runs/sweep_tim \
        --variant base --variant "d64:tim.d_model=64" --variant "l2:tim.num_layers=2,tim.epochs=60"

Each variant is `name[:override,override,...]` (dotted overrides of the heads config). Every
(variant, track) runs `python -m ndar heads train` with `predict_test=false`, so a sweep never
looks at the A2 test set: settings are chosen on A1 OOF alone. Each run is given one thread
(OMP_NUM_THREADS=1, the heads' own `cpu_threads: 1`), so `--jobs` can match the cores. The table
(OOF mOS of the head's own segments, of its curve, and mAP, per track and the mean over tracks)
goes to `<out>/sweep.md` and `<out>/sweep.json`; a variant whose run fails is reported with its
log and the others go on. Finished runs (a metrics.json in their folder) are read, not re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import write_json, write_text

METRICS = ("mOS_segments", "mOS", "mAP")


def split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: 'a=1,b=[x,y]' -> ['a=1', 'b=[x,y]']."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [item for item in [*items, current] if item]


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'name:a=1,b=[x,y]' -> ('name', ['a=1', 'b=[x,y]']); 'name' -> ('name', [])."""
    name, _, rest = text.partition(":")
    if not name or "/" in name:
        raise SystemExit(f"--variant {text!r}: expected name[:key=value,...] with a plain name")
    return name, split_top_level(rest)


def run_one(config: str, out: Path, overrides: list[str], extra: list[str]) -> dict:
    """One heads run in a subprocess; returns its overall metrics and wall time, or the failure."""
    metrics_path = out / "metrics.json"
    if metrics_path.is_file():
        overall = json.loads(metrics_path.read_text())["overall"]
        return {"ok": True, "cached": True, **{k: overall[k] for k in METRICS}}
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ndar", "heads", "train", "--config", config,
           f"out={out}", "predict_test=false", *extra, *overrides]  # fmt: skip
    start = time.perf_counter()
    with open(out / "sweep.log", "w") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    if code != 0 or not metrics_path.is_file():
        return {"ok": False, "seconds": seconds, "log": str(out / "sweep.log"), "code": code}
    overall = json.loads(metrics_path.read_text())["overall"]
    return {"ok": True, "seconds": seconds, **{k: overall[k] for k in METRICS}}


def table(variants: list[str], tracks: list[str], results: dict) -> str:
    """Markdown: one row per variant, OOF mOS of own segments per track, their mean, curve mOS mean."""
    head = "| variant | " + " | ".join(tracks) + " | mean own segments | mean curve | mean mAP | s/run |"
    lines = [head, "|" + "---|" * (len(tracks) + 5)]
    for name in variants:
        rows = [results[name][t] for t in tracks]
        ok = [r for r in rows if r["ok"]]
        cells = [f"{r['mOS_segments']:.3f}" if r["ok"] else "failed" for r in rows]
        if len(ok) == len(rows):
            means = [sum(r[k] for r in ok) / len(ok) for k in METRICS]
            summary = [f"{means[0]:.3f}", f"{means[1]:.3f}", f"{means[2]:.3f}"]
        else:
            summary = ["-", "-", "-"]
        secs = [r["seconds"] for r in ok if "seconds" in r]
        summary.append(f"{sum(secs) / len(secs):.0f}" if secs else "-")
        lines.append(f"| {name} | " + " | ".join(cells + summary) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="heads config; '{track}' is replaced per track")
    parser.add_argument("--tracks", nargs="+", required=True)
    parser.add_argument("--variant", action="append", required=True, help="name[:key=value,...]")
    parser.add_argument(
        "--set", nargs="*", default=[], help="overrides applied to every run (e.g. data_root=...)"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    variants = dict(parse_variant(v) for v in args.variant)
    if len(variants) != len(args.variant):
        raise SystemExit("--variant names must be unique")
    work = [(name, track) for name in variants for track in args.tracks]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            key: pool.submit(
                run_one,
                args.config.format(track=key[1]),
                args.out / key[0] / key[1],
                variants[key[0]],
                args.set,
            )
            for key in work
        }
        results: dict[str, dict[str, dict]] = {name: {} for name in variants}
        for (name, track), future in futures.items():
            results[name][track] = result = future.result()
            state = f"{result['mOS_segments']:.3f}" if result["ok"] else f"FAILED, see {result['log']}"
            print(f"{name} / {track}: {state}", flush=True)
    report = {
        "command": " ".join(sys.argv),
        "wall_s": time.perf_counter() - start,
        "variants": {name: overrides for name, overrides in variants.items()},
        "results": results,
    }
    write_json(args.out / "sweep.json", report)
    text = table(list(variants), args.tracks, results)
    write_text(args.out / "sweep.md", text)
    print(text)
    return 0 if all(r["ok"] for per in results.values() for r in per.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
