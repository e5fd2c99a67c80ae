"""Checks the shell scripts run before they start torchrun: `python -m ndar.utils.preflight ...`.

A wrong data root or checkpoint used to surface 30 s into a torchrun start, as 57 lines from every
rank, with an output folder left behind. These checks name the wrong argument in one line (exit 2)
before anything is started or created; `forget` removes an output folder a failed run created that
holds nothing to resume from. The scripts keep no logic of their own beyond calling these.

    python -m ndar.utils.preflight finetune --data-root D --pretrained P --out O [--out O2 ...]
    python -m ndar.utils.preflight extract --config C [key=value ...]
    python -m ndar.utils.preflight forget O
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


class PreflightError(ValueError):
    """An argument of a shell script is wrong; the message says which and what was expected."""


def check_data_root(root: str | Path) -> None:
    """The folder holding A1/ (the labelled split the fine-tuning reads)."""
    from ndar.data.discover import find_split_dir

    root = Path(root)
    if not root.is_dir():
        raise PreflightError(f"data root {root}: no such folder (expected the folder holding A1/ and A2/)")
    try:
        find_split_dir(root, "A1")
    except FileNotFoundError as err:
        raise PreflightError(f"data root {root}: no A1/ split inside ({err})") from err


def check_checkpoint(path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise PreflightError(f"pretrained checkpoint {path}: no such file")


def check_output(path: str | Path) -> None:
    """A folder the run may write: absent (created by the run) or an earlier run's folder, and the
    nearest existing parent writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PreflightError(f"output folder {path}: exists and is not a folder")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise PreflightError(f"output folder {path}: {parent} is not writable")


def resumable(folder: Path) -> bool:
    """Whether a fine-tuning folder holds anything a later run would reuse (a model or checkpoints)."""
    checkpoints = folder / "checkpoints"
    has_checkpoint = checkpoints.is_dir() and any(checkpoints.iterdir())
    return has_checkpoint or (folder / "model.safetensors").is_file()


def forget(folder: str | Path) -> bool:
    """Remove `folder` if a failed run left nothing in it to resume from; returns whether removed."""
    folder = Path(folder)
    if not folder.is_dir() or resumable(folder):
        return False
    shutil.rmtree(folder)
    return True


def check_extract(config: str, overrides: list[str]) -> None:
    from ndar.config import load_config
    from ndar.extract.config import ExtractConfig

    cfg = load_config(ExtractConfig, config, overrides)
    check_data_root(cfg.data_root)
    for model in cfg.models:
        for view in cfg.views:
            folder = Path(str(model.folder).format(view=view))
            if not folder.is_dir():
                raise PreflightError(
                    f"{config}: model folder {folder} ({model.track}, {view}) does not exist"
                )
    check_output(cfg.out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ndar.utils.preflight", description=__doc__.split("\n")[0]
    )
    actions = parser.add_subparsers(dest="action", required=True)
    finetune = actions.add_parser("finetune", help="data root, checkpoint and output folders")
    finetune.add_argument("--data-root", required=True)
    finetune.add_argument("--pretrained", default="", help="checkpoint file ('' = none)")
    finetune.add_argument("--out", action="append", default=[], help="output folder (repeatable)")
    extract = actions.add_parser("extract", help="the extraction config, its data root and model folders")
    extract.add_argument("--config", required=True)
    extract.add_argument("overrides", nargs="*")
    gone = actions.add_parser("forget", help="remove an output folder with nothing to resume from")
    gone.add_argument("folder")
    args = parser.parse_args(argv)
    from ndar.config import ConfigError

    try:
        if args.action == "finetune":
            check_data_root(args.data_root)
            if args.pretrained:
                check_checkpoint(args.pretrained)
            for out in args.out:
                check_output(out)
        elif args.action == "extract":
            check_extract(args.config, args.overrides)
        elif forget(args.folder):
            print(f"removed {args.folder}: the failed run left nothing to resume from", file=sys.stderr)
    except (PreflightError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
