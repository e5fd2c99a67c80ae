"""Fine-tuning checkpoints without pickle: tensors in safetensors, everything else in JSON.

DeepSpeed's own `save_checkpoint` / `load_checkpoint` store `.pt` pickles and unpickle them on
resume, so a crafted file in the output folder would run code. ndar writes and reads its own layout
instead, and never hands a file to DeepSpeed or to `torch.load`:

    checkpoints/epochNNN/
        model.safetensors            the module's state (its training dtype)
        optimizer_rankR.safetensors  this rank's optimizer state tensors (ZeRO: its fp32 partition)
        state_rankR.json             this rank's optimizer skeleton, RNG states and sampler state
        trainer.json                 epoch, step counters, world size (written by rank 0)
        config.yaml                  the settings the checkpoint was trained with
    checkpoints/latest               the newest complete tag, replaced last (the commit point)

A tag is written into `epochNNN.partial/` and renamed when every rank is done, so a run killed at any
moment leaves `latest` pointing at a complete tag. The JSON skeleton keeps the optimizer state's
structure (dict keys with their int/str type, tuples, numbers, strings); each tensor is a reference
into the safetensors file. Anything else (an arbitrary object) is refused at save time, so nothing
needs an unpickler at load time.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ndar.config import save_config
from ndar.utils.io import atomic_write_text, read_json

log = logging.getLogger(__name__)

FORMAT = "ndar-finetune-checkpoint-1"
REQUIRED_FILES = ("trainer.json", "config.yaml", "model.safetensors")
TAG_PATTERN = re.compile(r"epoch\d{3,}")
# DeepSpeed optimizer keys only used to convert to its "universal" layout; not needed to resume.
SKIPPED_KEYS = ("param_slice_mappings", "universal_checkpoint_info")


class CheckpointError(RuntimeError):
    """A checkpoint folder cannot be resumed; the message names it and says why."""


# ------------------------------------------------------------------------------ tree <-> json + tensors
def encode_tree(obj: Any, tensors: dict[str, torch.Tensor], where: str = "state") -> Any:
    """A JSON-able skeleton of `obj`; its tensors are moved into `tensors` (CPU copies) by reference."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": encode_tree(torch.from_numpy(obj.astype(np.int64)), tensors, where)}
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            if isinstance(key, bool) or not isinstance(key, (int, str)):
                raise TypeError(f"{where}: a key of type {type(key).__name__} cannot be stored")
            if key in SKIPPED_KEYS:
                continue
            items.append(
                [int(key) if isinstance(key, int) else key, encode_tree(value, tensors, f"{where}.{key}")]
            )
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_tree(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_tree(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)  # also IntEnum members such as DeepSpeed's ZeroStageEnum
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    raise TypeError(
        f"{where}: a {type(obj).__name__} cannot be stored in a checkpoint (tensors and plain values only)"
    )


def decode_tree(node: Any, tensors: dict[str, torch.Tensor], where: str = "state") -> Any:
    """The inverse of `encode_tree`; a reference to a missing tensor is a `CheckpointError`."""
    if isinstance(node, list):
        return [decode_tree(v, tensors, where) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        if node["__tensor__"] not in tensors:
            raise CheckpointError(
                f"{where}: tensor {node['__tensor__']!r} is missing from the safetensors file"
            )
        return tensors[node["__tensor__"]]
    if "__ndarray__" in node:
        return decode_tree(node["__ndarray__"], tensors, where).numpy()
    if "__tuple__" in node:
        return tuple(decode_tree(v, tensors, where) for v in node["__tuple__"])
    if "__dict__" in node:
        return {key: decode_tree(value, tensors, f"{where}.{key}") for key, value in node["__dict__"]}
    raise CheckpointError(f"{where}: unknown node {sorted(node)}")


# ------------------------------------------------------------------------------------- RNG state
def rng_state(sampler_generator: torch.Generator | None) -> dict:
    """Every random stream a resumed epoch draws from: python, numpy, torch (CPU, CUDA), the sampler."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if sampler_generator is not None:
        state["sampler"] = sampler_generator.get_state()
    return state


def restore_rng_state(state: dict, sampler_generator: torch.Generator | None) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if sampler_generator is not None:
        if "sampler" not in state:
            raise CheckpointError("the checkpoint holds no sampler state but this run shuffles with one")
        sampler_generator.set_state(state["sampler"])


# ------------------------------------------------------------------------------------ optimizer
def _deepspeed_wrapper(optimizer) -> bool:
    """True for DeepSpeed's ZeRO-1/2 and bf16 optimizers, which load a list of per-rank states."""
    from deepspeed.runtime.bf16_optimizer import BF16_Optimizer
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    return isinstance(optimizer, (DeepSpeedZeroOptimizer, BF16_Optimizer))


def optimizer_state(optimizer) -> dict:
    """The optimizer's state dict with DeepSpeed's loss-scaler object reduced to its plain fields."""
    if getattr(optimizer, "elastic_checkpoint", False):  # its state is only loadable from every rank's
        raise CheckpointError(
            "deepspeed.extra zero_optimization.elastic_checkpoint=true is not supported: each rank "
            "resumes from its own partition (same number of processes)"
        )
    state = dict(optimizer.state_dict())
    scaler = state.pop("loss_scaler", None)
    if scaler is not None:
        state["loss_scaler_fields"] = {
            k: v for k, v in vars(scaler).items() if isinstance(v, (bool, int, float, str)) or v is None
        }
    return state


def load_optimizer_state(optimizer, state: dict, rank: int, world_size: int) -> None:
    """Hand `state` to the optimizer the way its type expects (fp32 master copies from the file)."""
    fields = state.pop("loss_scaler_fields", None)
    if _deepspeed_wrapper(optimizer):
        per_rank: list = [None] * world_size
        per_rank[rank] = state  # same world size: each rank only reads its own partition
        optimizer.load_state_dict(per_rank, load_optimizer_states=True, load_from_fp32_weights=True)
    else:
        optimizer.load_state_dict(state)
    if fields and getattr(optimizer, "loss_scaler", None) is not None:
        for key, value in fields.items():
            setattr(optimizer.loss_scaler, key, value)


# --------------------------------------------------------------------------------- save / load
def tag_name(epoch: int) -> str:
    return f"epoch{epoch:03d}"


def tag_epoch(tag: str) -> int:
    """The epoch of tag `epochNNN` (the inverse of `tag_name`)."""
    return int(tag.removeprefix("epoch"))


def save_checkpoint(
    engine, ckpt_dir: Path, epoch: int, cfg, rank: int, world_size: int, sampler_generator, barrier
) -> Path:
    """Write tag `epochNNN` (every rank takes part) and point `latest` at it; returns the tag folder."""
    from safetensors.torch import save_file

    final = ckpt_dir / tag_name(epoch)
    partial = ckpt_dir / f"{final.name}.partial"
    if rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    barrier()
    tensors: dict[str, torch.Tensor] = {}
    skeleton = {
        "optimizer": encode_tree(optimizer_state(engine.optimizer), tensors, "optimizer"),
        "rng": encode_tree(rng_state(sampler_generator), tensors, "rng"),
    }
    save_file(tensors, str(partial / f"optimizer_rank{rank}.safetensors"))
    atomic_write_text(partial / f"state_rank{rank}.json", json.dumps(skeleton))
    if rank == 0:
        model = {
            k: v.detach().to("cpu", copy=True).contiguous() for k, v in engine.module.state_dict().items()
        }
        save_file(model, str(partial / "model.safetensors"))
        save_config(cfg, partial / "config.yaml")
        trainer = {
            "format": FORMAT,
            "epoch": epoch,
            "global_steps": int(engine.global_steps),
            "global_samples": int(engine.global_samples),
            "skipped_steps": int(engine.skipped_steps),
            "world_size": world_size,
        }
        atomic_write_text(partial / "trainer.json", json.dumps(trainer, indent=2))
    barrier()
    if rank == 0:
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        atomic_write_text(ckpt_dir / "latest", final.name + "\n")
    barrier()
    return final


def resume_folder(ckpt_dir: Path, resume: str) -> Path | None:
    """The tag folder a run resumes from (None = fresh): `latest` for auto, or the given folder."""
    if resume == "none":
        return None
    if resume == "auto":
        latest = ckpt_dir / "latest"
        if not latest.is_file():
            return None
        tag = latest.read_text().strip()
        if not TAG_PATTERN.fullmatch(tag):
            raise CheckpointError(f"{latest}: names {tag!r}, not a checkpoint tag like epoch003")
        folder = ckpt_dir / tag
    else:
        folder = Path(resume)
    check_folder(folder)
    return folder


def check_folder(folder: Path) -> None:
    """Refuse anything but a complete ndar checkpoint, before any file in it is parsed."""
    if not folder.is_dir():
        raise CheckpointError(
            f"resume {folder}: not a checkpoint folder (expected <run>/checkpoints/epochNNN)"
        )
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        found = sorted(p.name for p in folder.iterdir())[:4]
        raise CheckpointError(
            f"{folder}: not a complete ndar checkpoint (no {', '.join(missing)}; found {found}). "
            "DeepSpeed .pt files are pickles and are never loaded: remove the folder, or pass "
            "overwrite=true to start afresh"
        )
    trainer = read_json(folder / "trainer.json")
    if trainer.get("format") != FORMAT:
        raise CheckpointError(f"{folder}/trainer.json: format {trainer.get('format')!r}, expected {FORMAT!r}")


def load_checkpoint(engine, folder: Path, rank: int, world_size: int) -> tuple[int, dict]:
    """Restore the module, optimizer and step counters from `folder`; returns (epoch, rng skeleton).

    The RNG state is returned rather than applied, so the caller restores it just before the next
    epoch, after everything that draws random numbers while the run is being set up.
    """
    from safetensors.torch import load_file

    trainer = read_json(folder / "trainer.json")
    if trainer["world_size"] != world_size:
        raise CheckpointError(
            f"{folder}: saved by {trainer['world_size']} process(es), resumed by {world_size}; "
            "resume with the same number of processes"
        )
    model = load_file(str(folder / "model.safetensors"))
    engine.module.load_state_dict(model)
    tensors = load_file(str(folder / f"optimizer_rank{rank}.safetensors"))
    skeleton = json.loads((folder / f"state_rank{rank}.json").read_text())
    load_optimizer_state(
        engine.optimizer, decode_tree(skeleton["optimizer"], tensors, "optimizer"), rank, world_size
    )
    engine.global_steps = trainer["global_steps"]
    engine.global_samples = trainer["global_samples"]
    engine.skipped_steps = trainer["skipped_steps"]
    engine.micro_steps = trainer["global_steps"] * engine.gradient_accumulation_steps()
    return int(trainer["epoch"]), decode_tree(skeleton["rng"], tensors, "rng")


def prune(ckpt_dir: Path, keep: int, current: str | None = None) -> None:
    """Delete all but the newest `keep` complete tags (and any leftover partial folder).

    `current` is the tag just saved (the one `latest` names). Tags after it belong to a run this one
    replaced (resume=none, or resumed from an earlier tag) and go too: counted as the newest, they
    would push `current` out and leave `latest` naming a deleted folder.
    """
    for partial in ckpt_dir.glob("epoch*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
    if keep <= 0:
        return
    tags = [p for p in ckpt_dir.glob("epoch*") if p.is_dir() and TAG_PATTERN.fullmatch(p.name)]
    tags.sort(key=lambda p: tag_epoch(p.name))  # by number: epoch1000 after epoch999
    stale = [p for p in tags if current is not None and tag_epoch(p.name) > tag_epoch(current)]
    tags = [p for p in tags if p not in stale]
    for old in stale + tags[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
