"""Command line: `python -m ndar <command> ...`.

Each command lives in its own module which exposes `add_arguments(parser)` and `main(args) -> int`.
Modules are imported only when their command runs, so `--help` stays fast and a broken optional
dependency of one stage never stops another stage from running.
"""

from __future__ import annotations

import argparse
import importlib
import re
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
    "layout": ("ndar.layout", "print a run's folder names (for shell scripts): finetune-dir, features-dir"),
}


def _print_help() -> None:
    print("usage: python -m ndar <command> [options]\n")
    print("Naturalistic driving action recognition: raw videos -> scored submission.\n")
    print("commands (pipeline order):")
    width = max(len(c) for c in COMMANDS)
    for name, (_, text) in COMMANDS.items():
        print(f"  {name:<{width}}  {text}")
    print(
        "\n`python -m ndar <command> --help` shows a command's options; `--debug` shows the traceback of an error."
    )


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and pointing at --help."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def is_override(token: str) -> bool:
    """A free-standing `key=value` token: a dotted config override."""
    return bool(_OVERRIDE.match(token))


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse `argv`, taking `key=value` overrides wherever they stand on the line.

    argparse stops filling a positional list at the first option, so `run a=1 --config X b=2` would
    leave `b=2` unrecognised; overrides are the only free-standing `key=value` tokens, so they are
    collected from what argparse left over."""
    args, extra = parser.parse_known_args(argv)
    stray = [token for token in extra if not (is_override(token) and hasattr(args, "overrides"))]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*(args.overrides or []), *extra]
    return args


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the user's input is wrong (a config, an override, a path): reported as
    one line; a traceback would only hide the message. Anything else is a bug and keeps its traceback."""
    from ndar.backbones.checkpoint import CheckpointError
    from ndar.config import ConfigError
    from ndar.finetune.checkpoint import CheckpointError as ResumeError
    from ndar.resume import SettingsChanged

    return (
        ConfigError,
        CheckpointError,
        ResumeError,  # `finetune --resume DIR` naming no checkpoint, or one that cannot be resumed
        SettingsChanged,  # a resume over outputs of other settings: the message lists what differs
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv:
        _print_help()
        return 2
    if argv[0] in ("-h", "--help"):
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
    parser = _OneLineParser(prog=f"python -m ndar {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parse_command_line(parser, argv[1:])
    try:
        return int(module.main(args) or 0)
    except user_errors() as err:
        if debug:
            raise
        print(
            f"python -m ndar {name}: error: {_one_line(err)} (--debug shows the traceback)", file=sys.stderr
        )
        return 2


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return " ".join(str(err).split())
