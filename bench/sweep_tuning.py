"""Sweep the ensemble tuner's settings on the finished multi-seed runs, choosing on the nested A1 estimate.

python -m bench.sweep_tuning NAME [key=value ...] [NAME [key=value ...] ...]
    e.g. python -m bench.sweep_tuning default margin tuning.level_margin=0.01 gain tuning.min_gain=0.005

Why: re-running the whole ensemble stage per setting rebuilds the stacker and re-tunes every single
source; the tuner's settings only need the fused inputs. This builds each seed's inputs once (sources,
stacker), then for every variant (a name followed by its ensemble overrides; they may change only the
tuning and the priors, not the fusion inputs) reports, per seed and as the mean over seeds, for every
level of freedom: its nested estimate, and tuned on all of A1 its in-sample A1 mOS and (read after)
its A2 mOS; and the level the nested estimate keeps. Rows are appended to bench/out/sweep_tuning.jsonl.
Settings are chosen on the mean nested A1 mOS, never on A2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_inputs(prefix: str, seed: int):
    """(oof inputs, test inputs, A1 truth, A2 truth) of one seed, from its main ensemble config."""
    from ndar.config import load_config
    from ndar.ensemble.config import EnsembleConfig
    from ndar.ensemble.stage import (
        a1_ground_truth,
        a2_ground_truth,
        a2_video_ids,
        collect_sources,
        fusion_inputs,
    )

    cfg = load_config(EnsembleConfig, seed_config(prefix, seed), [])
    truth = a1_ground_truth(cfg)
    test_truth = a2_ground_truth(cfg, a2_video_ids(cfg))
    sources = collect_sources(cfg, REPO / "submissions" / f"{prefix}{seed}")
    oof, test = fusion_inputs(cfg, sources, truth)
    return oof, test, truth, test_truth


def seed_config(prefix: str, seed: int) -> Path:
    return REPO / "runs" / f"{prefix}{seed}" / "configs" / "ensemble.yaml"


def variant_config(prefix: str, seed: int, overrides: list[str]):
    """The seed's ensemble config with a variant's overrides; refused if they change the fusion inputs."""
    from ndar.config import load_config, to_dict
    from ndar.ensemble.config import EnsembleConfig

    base = load_config(EnsembleConfig, seed_config(prefix, seed), [])
    cfg = load_config(EnsembleConfig, seed_config(prefix, seed), overrides)
    for field in ("fusion", "stacker", "sources", "feature_sets", "seed"):
        if to_dict(getattr(cfg, field)) != to_dict(getattr(base, field)):
            raise SystemExit(f"{overrides}: changes `{field}`, which the shared fusion inputs depend on")
    return cfg


def parse_variants(tokens: list[str]) -> dict[str, list[str]]:
    """`NAME k=v k=v NAME2 k=v` -> {NAME: [k=v, k=v], NAME2: [k=v]}."""
    variants: dict[str, list[str]] = {}
    for token in tokens:
        if "=" not in token:
            if token in variants:
                raise SystemExit(f"variant {token!r} named twice")
            variants[token] = []
        elif not variants:
            raise SystemExit(f"{token!r}: name the variant before its overrides")
        else:
            variants[list(variants)[-1]].append(token)
    return variants


def evaluate(cfg, oof, test, truth, test_truth) -> dict:
    """Per level: nested estimate, in-sample A1 and A2 of the level tuned on all of A1; the level kept."""
    from ndar.ensemble.nested import changed_parameters, choose_level, nested_estimate, tune_level
    from ndar.ensemble.stage import score, start_params
    from ndar.ensemble.tuning import predict

    start = start_params(cfg, oof)
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


def summarise(name: str, overrides: list[str], per_seed: dict) -> dict:
    levels = list(next(iter(per_seed.values()))["levels"])
    runs = per_seed.values()
    return {
        "variant": name,
        "overrides": overrides,
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
            "kept levels": [r["level"] for r in runs],
        },
        "fold_gain": fold_gains(levels, runs),
    }


def fold_gains(levels: list[str], runs) -> dict:
    """Each level's gain over the one before it on every held-out driver fold of every seed (mean,
    sd, count): the noise a `level_margin` has to stand above."""
    out = {}
    for before, level in zip(levels, levels[1:]):
        diffs = [
            a - b
            for r in runs
            for a, b in zip(r["levels"][level]["fold_mOS"], r["levels"][before]["fold_mOS"])
        ]
        m = sum(diffs) / len(diffs)
        sd = (sum((d - m) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5 if len(diffs) > 1 else 0.0
        out[f"{level} - {before}"] = {"mean": round(m, 4), "sd": round(sd, 4), "n": len(diffs)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--prefix", default="acc_s")
    parser.add_argument("variants", nargs="+", help="NAME [key=value ...], repeated")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    variants = parse_variants(args.variants)
    results: dict[str, dict] = {name: {} for name in variants}
    for seed in args.seeds:
        oof, test, truth, test_truth = load_inputs(args.prefix, seed)
        for name, overrides in variants.items():
            cfg = variant_config(args.prefix, seed, overrides)
            results[name][seed] = evaluate(cfg, oof, test, truth, test_truth)
            print(f"seed {seed} {name}: {json.dumps(results[name][seed])}", flush=True)
    command = "python -m bench.sweep_tuning " + " ".join(sys.argv[1:])
    out = REPO / "bench" / "out" / "sweep_tuning.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as fh:
        for name, overrides in variants.items():
            summary = {**summarise(name, overrides, results[name]), "command": command}
            fh.write(json.dumps(summary) + "\n")
            print(name, json.dumps({**summary["mean"], "fold_gain": summary["fold_gain"]}, indent=1))


if __name__ == "__main__":
    main()
