"""`python -m ndar ensemble --config configs/ensemble/default.yaml [key=value ...]`."""

from __future__ import annotations

import argparse

from ndar.config import load_config
from ndar.ensemble.config import EnsembleConfig
from ndar.utils.logging import setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (configs/ensemble/default.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. run_name=try2 tuning.rounds=1")


def main(args: argparse.Namespace) -> int:
    from ndar.ensemble import run

    cfg = load_config(EnsembleConfig, args.config, args.overrides)
    setup_logging()
    result = run(cfg)
    print(f"OOF mOS {result['oof_mOS']:.4f}", end="")
    if result["test_mOS"] is not None:
        print(f"  test mOS {result['test_mOS']:.4f}", end="")
    print(f"\nsubmission: {result['submission']}\nreport: {result['report']}")
    return 0
