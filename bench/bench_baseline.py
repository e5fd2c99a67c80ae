"""Baseline mOS on synthetic datasets, per view alone and fused, over several seeds.

    python -m bench.bench_baseline --seeds 0 1 2 [--keep /tmp/ndar_bench_bl] [synth args...]

For each seed: generate the dataset with the given synth arguments (default: the main job's
setting), then run the baseline with views [rear, dashboard], [rear], [dashboard], [right]. Prints one
JSON line per run and a summary (mean mOS per view set, per-class mOS of each view set).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ndar.baseline import BaselineConfig, run
from ndar.config import load_config
from ndar.synth import MAIN_JOB_ARGS, generate
from ndar.synth.cli import add_arguments, config_from_args

VIEW_SETS = (["rear", "dashboard"], ["rear"], ["dashboard"], ["right"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--keep", type=Path, default=Path("/tmp/ndar_bench_bl"))
    parser.add_argument("--baseline-config", type=Path, default=Path("configs/baseline/default.yaml"))
    args, synth_args = parser.parse_known_args()
    synth_args = synth_args or list(MAIN_JOB_ARGS)
    summary: dict[str, list[float]] = {}
    per_class: dict[str, dict[int, list[float]]] = {}
    for seed in args.seeds:
        synth_parser = argparse.ArgumentParser()
        add_arguments(synth_parser)
        root = args.keep / f"data_seed{seed}"
        cfg = config_from_args(
            synth_parser.parse_args([*synth_args, "--seed", str(seed), "--out", str(root)])
        )
        generate(cfg)
        for views in VIEW_SETS:
            name = "+".join(views)
            out = args.keep / f"bl_seed{seed}_{name}"
            bl = load_config(
                BaselineConfig,
                args.baseline_config,
                [f"data_root={root}", f"out={out}", f"views=[{','.join(views)}]"],
            )
            start = time.perf_counter()
            metrics = run(bl)
            line = {
                "seed": seed,
                "views": name,
                "mOS": round(metrics["mOS"], 4),
                "sec_acc": round(metrics["a2_second_accuracy"], 4),
            }
            line["wall_s"] = round(time.perf_counter() - start, 1)
            print(json.dumps(line), flush=True)
            summary.setdefault(name, []).append(metrics["mOS"])
            for row in metrics["per_class"]:
                per_class.setdefault(name, {}).setdefault(row["label"], []).append(row["mos"])
    print("\nmean mOS per view set:")
    for name, values in summary.items():
        print(f"  {name:<16} {sum(values) / len(values):.4f}  ({', '.join(f'{v:.3f}' for v in values)})")
    print("\nper-class mOS (mean over seeds):")
    names = list(per_class)
    print("  class " + " ".join(f"{n:>15}" for n in names))
    for label in range(1, 16):
        cells = []
        for n in names:
            vals = per_class[n].get(label, [])
            cells.append(f"{sum(vals) / len(vals):15.3f}" if vals else f"{'-':>15}")
        print(f"  {label:>5} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
