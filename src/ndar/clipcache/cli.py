"""`python -m ndar cache-clips --config configs/clipcache/<name>.yaml [key=value ...]`."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=str, default=None, help="YAML config (configs/clipcache/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. views=[rear] workers=8")


def main(args: argparse.Namespace) -> int:
    from ndar.clipcache.build import run
    from ndar.clipcache.config import ClipCacheConfig
    from ndar.config import load_config
    from ndar.utils.logging import setup_logging

    setup_logging()
    summary = run(load_config(ClipCacheConfig, args.config, args.overrides))
    print(json.dumps(summary))
    return 1 if any(v["failed"] for v in summary.values()) else 0
