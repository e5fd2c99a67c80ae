"""`python -m ndar heads train|predict --head tim|actionformer --config configs/heads/<x>.yaml [k=v ...]`."""

from __future__ import annotations

import argparse
import json

from ndar.config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="{train,predict}")
    helps = {
        "train": "fit every fold not yet finished, predict OOF and A2, write the prediction source",
        "predict": "reload the trained fold models and rewrite the predictions",
    }
    for name, text in helps.items():
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--head", default=None, help="head name (overrides `head:` of the config): actionformer | tim"
        )
        sub.add_argument("--config", required=True, help="YAML file for HeadsConfig (configs/heads/*.yaml)")
        sub.add_argument("overrides", nargs="*", help="dotted overrides, e.g. folds=3 actionformer.epochs=5")


def main(args: argparse.Namespace) -> int:
    from ndar.heads.config import HeadsConfig
    from ndar.heads.runner import run_predict, run_train

    overrides = list(args.overrides)
    if args.head:
        overrides.append(f"head={args.head}")
    cfg = load_config(HeadsConfig, args.config, overrides)
    metrics = run_train(cfg) if args.action == "train" else run_predict(cfg)
    summary = metrics.get("overall") or {}
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}, indent=2))
    return 0
