"""`python -m ndar synth --out DIR --drivers N --seed S [...]`: write the synthetic dataset."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ndar.config import load_config
from ndar.synth.config import SynthConfig
from ndar.utils.logging import setup_logging

log = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--size must look like 160x120, got {text!r}") from err
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="YAML with SynthConfig fields")
    parser.add_argument("--out", type=Path, help="dataset root to write (default data/synthetic)")
    parser.add_argument("--drivers", type=int, help="training drivers in A1 (default 8)")
    parser.add_argument("--test-drivers", type=int, help="test drivers in A2 (default max(1, drivers // 4))")
    parser.add_argument("--seed", type=int, help="random seed (default 0); same seed, same bytes")
    parser.add_argument("--fps", type=float, help="frames per second (default 30)")
    parser.add_argument("--size", type=_size, help="WIDTHxHEIGHT, even numbers (default 160x120)")
    parser.add_argument("--time-scale", type=float, help="multiplies durations and gaps (default 1.0)")
    parser.add_argument("--views", help="comma-separated subset of dashboard,rear,right (default all three)")
    parser.add_argument("--workers", type=int, help="parallel processes (default 2)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a dataset of other settings in --out"
    )
    parser.add_argument("overrides", nargs="*", help="extra SynthConfig fields as key=value (e.g. noise=4)")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    overrides = list(args.overrides)
    for flag, key in (
        ("out", "out"),
        ("drivers", "drivers"),
        ("test_drivers", "test_drivers"),
        ("seed", "seed"),
        ("fps", "fps"),
        ("time_scale", "time_scale"),
        ("workers", "workers"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.size is not None:
        overrides += [f"width={args.size[0]}", f"height={args.size[1]}"]
    if args.views:
        overrides.append(f"views=[{args.views}]")
    if getattr(args, "overwrite", False):
        overrides.append("overwrite=true")
    return load_config(SynthConfig, args.config, overrides)


def main(args: argparse.Namespace) -> int:
    from ndar.synth.generate import generate

    setup_logging()
    cfg = config_from_args(args)
    start = time.perf_counter()
    out = generate(cfg)
    log.info("synth: dataset at %s (%.1f s)", out, time.perf_counter() - start)
    return 0
