"""Sweep the ensemble tuner's settings on the finished multi-seed runs, choosing on the nested A1 estimate.

python -m bench.sweep_tuning --variant NAME [key=value ...]    # e.g. tuning.min_gain=0.005

Why: re-running the whole ensemble stage per setting rebuilds the stacker and re-tunes every single
source; the tuner's settings only need the fused inputs. This loads each seed's inputs once (sources,
stacker; cached in bench/out/), then for the given ensemble overrides reports, per seed and as the
mean over seeds, for every level of freedom: its nested estimate, and tuned on all of A1 its in-sample
A1 mOS and (read after) its A2 mOS; and the level the nested estimate keeps. Rows are appended to
bench/out/sweep_tuning.jsonl. Settings are chosen on the mean nested A1 mOS, never on A2.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import pickle
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_inputs(prefix: str, seed: int, overrides: list[str]):
    """(cfg, oof inputs, test inputs, A1 truth, A2 truth) of one seed; fusion inputs cached on disk."""
    from ndar.config import load_config, to_dict
    from ndar.ensemble.config import EnsembleConfig
    from ndar.ensemble.stage import (
        a1_ground_truth,
        a2_ground_truth,
        a2_video_ids,
        collect_sources,
        fusion_inputs,
    )

    config = REPO / "runs" / f"{prefix}{seed}" / "configs" / "ensemble.yaml"
    cfg = load_config(EnsembleConfig, config, overrides)
    fusion_key = json.dumps(
        {"fusion": to_dict(cfg.fusion), "stacker": to_dict(cfg.stacker), "seed": cfg.seed}, sort_keys=True
    )
    digest = hashlib.sha1(fusion_key.encode()).hexdigest()[:10]
    cache = REPO / "bench" / "out" / f"fusion_{prefix}{seed}_{digest}.pkl"
    truth = a1_ground_truth(cfg)
    test_truth = a2_ground_truth(cfg, a2_video_ids(cfg))
    if cache.is_file():
        oof, test = pickle.loads(cache.read_bytes())
    else:
        sources = collect_sources(cfg, REPO / "submissions" / f"{prefix}{seed}")
        oof, test = fusion_inputs(cfg, sources, truth)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps((oof, test)))
    return cfg, oof, test, truth, test_truth


def evaluate(cfg, oof, test, truth, test_truth) -> dict:
    """Per level: nested estimate, in-sample A1 and A2 of the level tuned on all of A1; the level kept."""
    from ndar.ensemble.nested import changed_parameters, choose_level, nested_estimate, tune_level
    from ndar.ensemble.stage import score
    from ndar.ensemble.tuning import EnsembleParams, predict

    start = EnsembleParams(curve_weights={n: 1.0 for n in oof.curves}, priors=copy.deepcopy(cfg.priors))
    clock = time.perf_counter()
    levels, estimates = {}, []
    for level in cfg.tuning.levels:
        est = nested_estimate(oof.curves, oof.segments, truth, start, cfg.tuning, level, cfg.seed)
        estimates.append(est)
        tuned, _ = tune_level(oof.curves, oof.segments, truth, start, cfg.tuning, level, cfg.seed)
        levels[level] = {
            "nested": est.nested_mOS,
            "fold_mOS": est.fold_mOS,
            "inner_mOS": est.inner_mOS,
            "in_sample": score(predict(oof.curves, oof.segments, tuned), truth),
            "a2": score(predict(test.curves, test.segments, tuned), test_truth),
            "n_changed": len(changed_parameters(start, tuned)),
        }
    kept, reason = choose_level(estimates, cfg.tuning.level_margin)
    return {
        "level": kept,
        "reason": reason,
        "levels": levels,
        "nested_kept": levels[kept]["nested"],
        "in_sample": levels[kept]["in_sample"],
        "a2": levels[kept]["a2"],
        "seconds": round(time.perf_counter() - clock, 1),
    }


def mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--prefix", default="acc_s")
    parser.add_argument("--variant", required=True, help="name of this setting in the output")
    parser.add_argument("overrides", nargs="*", help="ensemble config overrides, e.g. tuning.min_gain=0.005")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    per_seed = {}
    for seed in args.seeds:
        cfg, oof, test, truth, test_truth = load_inputs(args.prefix, seed, args.overrides)
        per_seed[seed] = evaluate(cfg, oof, test, truth, test_truth)
        print(f"seed {seed}: {json.dumps(per_seed[seed])}", flush=True)
    levels = list(per_seed[args.seeds[0]]["levels"])
    runs = per_seed.values()
    summary = {
        "variant": args.variant,
        "overrides": args.overrides,
        "command": "python -m bench.sweep_tuning " + " ".join(sys.argv[1:]),
        "seeds": per_seed,
        "mean": {
            **{
                f"{lv} {k}": mean(r["levels"][lv][k] for r in runs)
                for lv in levels
                for k in ("nested", "in_sample", "a2")
            },
            "kept nested": mean(r["nested_kept"] for r in runs),
            "kept in_sample": mean(r["in_sample"] for r in runs),
            "kept a2": mean(r["a2"] for r in runs),
        },
    }
    out = REPO / "bench" / "out" / "sweep_tuning.jsonl"
    with open(out, "a") as fh:
        fh.write(json.dumps(summary) + "\n")
    print(json.dumps(summary["mean"], indent=1))


if __name__ == "__main__":
    main()
