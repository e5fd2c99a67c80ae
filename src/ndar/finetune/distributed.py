"""Process-group set-up for one process, `torchrun` or the `deepspeed` launcher (GPU: nccl, CPU: gloo)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True under torchrun / the deepspeed launcher (they set the rendezvous variables)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_single_process_group(backend: str) -> None:
    """A world of one for a plain `python -m ndar finetune`, without a launcher.

    The rendezvous store listens on a port the OS assigns when it binds (port 0), so two runs
    started at the same moment cannot pick the same free port and collide (a pick-then-bind race).
    The variables a launcher would set are filled in for code that reads them.
    """
    store = torch.distributed.TCPStore("127.0.0.1", 0, world_size=1, is_master=True)
    os.environ.update(
        RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(store.port)
    )
    torch.distributed.init_process_group(backend, store=store, rank=0, world_size=1)


def skip_cpu_shm_op() -> None:
    """Stop DeepSpeed from compiling its CPU shared-memory all-reduce op (deepspeed_shm_comm).

    DeepSpeed's CPU accelerator builds that C++ extension when its comm backend starts (~60-100 s
    the first time, cached in ~/.cache/torch_extensions). Only `inference_all_reduce` uses it;
    training all-reduces go through torch.distributed (gloo), so marking the op incompatible makes
    DeepSpeed fall back to gloo without changing training.
    """
    import deepspeed.ops

    compatible = deepspeed.ops.__compatible_ops__  # probed once, then cached by DeepSpeed
    compatible["deepspeed_shm_comm"] = False


def init_distributed(backend: str = "auto", cpu_shm_comm: bool = False) -> DistInfo:
    """Start (or reuse) the process group through DeepSpeed; returns this process's rank info."""
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    if accelerator.device_name() == "cpu" and not cpu_shm_comm:
        skip_cpu_shm_op()
    if backend == "auto":
        backend = accelerator.communication_backend_name()
        if backend == "ccl" and not _has_oneccl():
            backend = "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and accelerator.device_name() == "cuda":
        torch.cuda.set_device(local_rank)
    if not launched() and not torch.distributed.is_initialized():
        init_single_process_group(backend)
    deepspeed.init_distributed(dist_backend=backend)  # adopts a group that is already up
    info = DistInfo(
        rank=torch.distributed.get_rank(),
        world_size=torch.distributed.get_world_size(),
        local_rank=local_rank,
    )
    log.info("distributed: backend %s, rank %d of %d", backend, info.rank, info.world_size)
    return info


def _has_oneccl() -> bool:
    try:
        import oneccl_bindings_for_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def all_gather_objects(obj):
    """List of `obj` from every rank (rank order); [obj] when not distributed."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [obj]
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out
