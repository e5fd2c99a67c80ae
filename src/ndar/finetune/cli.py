"""`python -m ndar finetune --config configs/finetune/<name>.yaml [key=value ...] [--resume auto]`.

Launch the same command as one process, under `torchrun --nproc_per_node N -m ndar finetune ...`,
or under `deepspeed --no_local_rank --module ndar finetune ...` (the rendezvous comes from the
environment the launcher sets).
"""

from __future__ import annotations

import argparse

from ndar.config import load_config
from ndar.finetune.config import FinetuneConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=str, required=True, help="YAML config (configs/finetune/*.yaml)")
    parser.add_argument(
        "overrides", nargs="*", help="dotted overrides, e.g. data.view=dashboard train.epochs=3"
    )
    parser.add_argument(
        "--resume",
        default=None,
        help="auto (newest checkpoint in <output>/checkpoints, the default), none, or a checkpoint folder",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="re-run even if the output folder is finished"
    )
    # the deepspeed launcher passes --local_rank unless told --no_local_rank; the env var is used instead
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    from ndar.finetune.engine import run
    from ndar.utils.logging import setup_logging

    setup_logging()
    cfg = load_config(FinetuneConfig, args.config, args.overrides)
    if args.resume is not None:
        cfg.resume = args.resume
    if args.overwrite:
        cfg.overwrite = True
    try:
        out = run(cfg)
    finally:
        end_process_group()
    print(out)
    return 0


def end_process_group() -> None:
    """Leave the process group before exiting (NCCL warns about leaked resources otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
