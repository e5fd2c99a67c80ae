"""Benchmark the ensemble stage on synthetic prediction sources (no videos needed).

python -m bench.bench_ensemble --drivers 8 --sources 12 --out /tmp/bench_ensemble [key=value ...]

Builds noisy sources with known ground truth (ndar.ensemble.synthetic), a stub dataset, then runs
`ndar.ensemble.run` with configs/ensemble/default.yaml (paths replaced, extra overrides allowed) and
prints the wall time of each part and the side-by-side table (OOF and test mOS).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd

from ndar.config import load_config
from ndar.ensemble import run
from ndar.ensemble.config import EnsembleConfig
from ndar.ensemble.synthetic import make_sources, write_dataset_stub, write_source_folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drivers", type=int, default=8)
    parser.add_argument("--test-drivers", type=int, default=2)
    parser.add_argument("--sources", type=int, default=12)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/bench_ensemble")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    sources, oof_truth, test_truth = make_sources(
        args.drivers, args.sources, args.test_drivers, seed=args.seed, noise=args.noise
    )
    write_dataset_stub(out / "data", oof_truth, test_truth)
    folders = write_source_folders(out / "sources", sources)
    source_list = "[" + ",".join(f"{{name: {n}, path: {p}, kind: head}}" for n, p in folders.items()) + "]"
    settings = [
        f"out_dir={out / 'runs'}",
        f"data_root={out / 'data'}",
        f"sources={source_list}",
        "feature_sets=[]",
        "features_root=null",
        f"run_name=bench_{int(time.time())}",
        *args.overrides,
    ]
    cfg = load_config(EnsembleConfig, "configs/ensemble/default.yaml", settings)
    start = time.perf_counter()
    result = run(cfg)
    seconds = time.perf_counter() - start
    table = pd.read_csv(Path(cfg.out_dir) / cfg.run_name / "report.csv")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(json.dumps({"seconds": round(seconds, 1), **result}, indent=2))


if __name__ == "__main__":
    main()
