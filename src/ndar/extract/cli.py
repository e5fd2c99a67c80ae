"""`python -m ndar extract --config configs/extract/<name>.yaml [key=value ...] [--overwrite]`."""

from __future__ import annotations

import argparse
import logging

from ndar.config import load_config
from ndar.extract.config import ExtractConfig
from ndar.utils.logging import setup_logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="YAML file for ExtractConfig (configs/extract/*.yaml)"
    )
    parser.add_argument("--overwrite", action="store_true", help="recompute complete outputs too")
    parser.add_argument(
        "overrides", nargs="*", help="dotted key=value overrides, e.g. batch_size=4 device=cpu"
    )


def main(args: argparse.Namespace) -> int:
    from ndar.extract.runner import run

    cfg = load_config(ExtractConfig, args.config, args.overrides)
    if args.overwrite:
        cfg.overwrite = True
    setup_logging(cfg.out / "extract.log")
    summary = run(cfg)
    if summary["failed"]:
        log.error("extract: %d failure(s), see %s", summary["failed"], cfg.out / "failures.json")
        return 1
    return 0
