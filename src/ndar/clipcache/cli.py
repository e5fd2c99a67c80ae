"""`python -m ndar cache-clips --config configs/clipcache/<name>.yaml [key=value ...]`."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=str, default=None, help="YAML config (configs/clipcache/*.yaml)")
    parser.add_argument(
        "--from-finetune",
        type=str,
        default=None,
        help="a fine-tuning YAML: build the cache its data.cache_dir names, with its clips and geometry",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (with --from-finetune)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. views=[rear] workers=8")


def main(args: argparse.Namespace) -> int:
    from ndar.clipcache.build import run
    from ndar.clipcache.config import ClipCacheConfig
    from ndar.config import load_config
    from ndar.utils.logging import setup_logging

    setup_logging()
    if args.from_finetune is not None:
        from ndar.clipcache.config import from_finetune
        from ndar.finetune.config import FinetuneConfig

        extra = {"workers": args.workers} if args.workers else {}
        cfg = from_finetune(load_config(FinetuneConfig, args.from_finetune, args.overrides), **extra)
    else:
        cfg = load_config(ClipCacheConfig, args.config, args.overrides)
    summary = run(cfg)
    print(json.dumps(summary))
    return 1 if any(v["failed"] for v in summary.values()) else 0
