"""Device choice and CPU thread count, shared by extraction, fine-tuning and the heads.

One parser for the `device` field keeps the accepted spellings and the error message the same in
every stage; the thread-count context exists because torch's thread count is process-global, so a
stage that changes it must give it back (tests and notebooks run several stages in one process).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import torch

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(name: str, field: str = "device", local_rank: bool = False) -> torch.device:
    """'auto' (CUDA when available), 'cpu' or 'cuda[:N]' -> torch.device.

    With `local_rank`, a bare 'cuda' means this process's GPU under torchrun/DeepSpeed
    (LOCAL_RANK) and becomes the current CUDA device, so every rank uses its own card.
    """
    if not _DEVICE.match(str(name)):
        raise ValueError(f"{field} must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not local_rank:
        return torch.device(name)
    if name == "cuda":
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch CPU threads when > 0; the old count comes back after."""
    if threads <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_threads(device: torch.device, threads: int) -> contextlib.AbstractContextManager[None]:
    """`torch_threads(threads)` on CPU; nothing on an accelerator, where the count only slows the host."""
    return torch_threads(threads if device.type == "cpu" else 0)
