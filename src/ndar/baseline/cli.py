"""`python -m ndar baseline --config configs/baseline/default.yaml [key=value ...]`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ndar.baseline.config import BaselineConfig
from ndar.config import load_config
from ndar.utils.logging import setup_logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="YAML with BaselineConfig fields (configs/baseline/default.yaml)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. data_root=data/synthetic views=[rear]"
    )


def main(args: argparse.Namespace) -> int:
    from ndar.baseline.run import run

    cfg = load_config(BaselineConfig, args.config, args.overrides)
    setup_logging(Path(cfg.out) / "baseline.log")
    metrics = run(cfg)
    summary = {k: metrics.get(k) for k in ("mOS", "n_pred", "n_gt", "n_matched", "a2_second_accuracy")}
    print(json.dumps(summary))
    return 0
