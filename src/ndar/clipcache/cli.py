"""`python -m ndar cache-clips --config CLIPCACHE.yaml [key=value ...]` (ClipCacheConfig fields; no
config ships: the main job derives them), or `python -m ndar cache-clips --from-finetune A.yaml
[B.yaml ...] [key=value ...]`: the caches those fine-tuning configs name, every video decoded once
for all of them (the overrides then are fine-tuning keys, e.g. data.root=..., applied to each)."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=str, default=None, help="YAML of ClipCacheConfig fields")
    parser.add_argument(
        "--from-finetune",
        type=str,
        nargs="+",
        default=None,
        help="fine-tuning YAMLs: build the caches their data.cache_dir names, with their clips and "
        "geometry, each video decoded once for all of them (e.g. one config per track of a view)",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (with --from-finetune)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. views=[rear] workers=8")


def main(args: argparse.Namespace) -> int:
    from ndar.cli import is_override
    from ndar.clipcache.build import run
    from ndar.clipcache.config import ClipCacheConfig
    from ndar.config import load_config
    from ndar.utils.logging import setup_logging

    setup_logging()
    if args.from_finetune is not None:
        from ndar.clipcache.build import run_many
        from ndar.clipcache.config import from_finetune
        from ndar.finetune.config import FinetuneConfig

        extra = {"workers": args.workers} if args.workers else {}
        # nargs="+" also takes the `key=value` overrides written after the config paths
        paths = [p for p in args.from_finetune if not is_override(p)]
        overrides = [*(args.overrides or []), *(p for p in args.from_finetune if is_override(p))]
        cfgs = [from_finetune(load_config(FinetuneConfig, path, overrides), **extra) for path in paths]
        summaries = dict(zip((str(c.out) for c in cfgs), run_many(cfgs)))
        print(json.dumps(summaries))
        return 1 if any(v["failed"] for s in summaries.values() for v in s.values()) else 0
    cfg = load_config(ClipCacheConfig, args.config, args.overrides)
    summary = run(cfg)
    print(json.dumps(summary))
    return 1 if any(v["failed"] for v in summary.values()) else 0
