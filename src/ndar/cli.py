"""Command line: `python -m ndar <command> ...`.

Each command lives in its own module which exposes `add_arguments(parser)` and `main(args) -> int`.
Modules are imported only when their command runs, so `--help` stays fast and a broken optional
dependency of one stage never stops another stage from running.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help). Order is the pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("ndar.synth.cli", "write the synthetic dataset (official layout, H.264 videos, label CSVs)"),
    "check-data": (
        "ndar.data.cli",
        "parse a dataset root and report every problem with file, row and reason",
    ),
    "prepare": ("ndar.data.prepare", "index videos, build clip samples and k-fold splits by driver"),
    "baseline": ("ndar.baseline.cli", "train the simple per-window baseline and write a scored submission"),
    "cache-clips": (
        "ndar.clipcache.cli",
        "decode every training clip once, in order, at the models' geometry into a clip cache",
    ),
    "finetune": ("ndar.finetune.cli", "fine-tune a VideoMAE-style ViT on clips of one view (DeepSpeed)"),
    "extract": ("ndar.extract.cli", "stream videos once and save features + probabilities of every backbone"),
    "merge-features": (
        "ndar.extract.merge",
        "merge the feature folders of fold models (each A1 video from the model that never saw it)",
    ),
    "heads": ("ndar.heads.cli", "train / predict the temporal heads (TIM, ActionFormer) per fold"),
    "ensemble": (
        "ndar.ensemble.cli",
        "fuse heads and feature sets, tune post-processing on OOF mOS, write the submission",
    ),
    "notebooks": ("ndar.notebooks", "execute the parameterised notebooks with papermill"),
    "score": ("ndar.metrics.cli", "score a submission against ground truth with the official mOS"),
    "validate-submission": (
        "ndar.submission.cli",
        "check a submission file's format, ids, classes and times",
    ),
    "run": ("ndar.pipeline", "the main job: every stage from raw videos to a scored submission"),
}


def _print_help() -> None:
    print("usage: python -m ndar <command> [options]\n")
    print("Naturalistic driving action recognition: raw videos -> scored submission.\n")
    print("commands (pipeline order):")
    width = max(len(c) for c in COMMANDS)
    for name, (_, text) in COMMANDS.items():
        print(f"  {name:<{width}}  {text}")
    print("\n`python -m ndar <command> --help` shows a command's options.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _print_help()
        return 0
    if argv[0] in ("-V", "--version"):
        from ndar import __version__

        print(__version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"ndar: unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"python -m ndar {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return int(module.main(args) or 0)
