"""Load official (and our own) checkpoints into a `VideoMAEViT` or a `VideoMamba`, reporting every decision.

Handles the layouts seen in the wild: a bare state dict; weights under `model`, `module` or
`state_dict` (DeepSpeed's `mp_rank_00_model_states.pt` keeps them under `module`), possibly nested;
key prefixes `module.`, `backbone.`, `encoder.`, `_orig_mod.` in any combination; pre-training
checkpoints (`encoder.*` + `decoder.*`, `encoder_to_decoder.*`, `mask_token`). The decoder is
dropped, a head of the wrong shape is dropped, a learnable `pos_embed` of another token grid is
interpolated, and what stays freshly initialised is reported. A checkpoint that matches too little
of the model is an error, never a warning: a wrong architecture must not train from scratch silently.
Files are untrusted input: `torch.load(..., weights_only=True)` or safetensors only.
A model with an `adapt_state_dict` method (VideoMamba) fits its own embeddings after the unwrapping.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ndar.backbones.vit import VideoMAEViT

log = logging.getLogger(__name__)

WRAPPER_KEYS = ("model", "module", "state_dict", "model_state")
KEY_PREFIXES = ("module.", "_orig_mod.", "backbone.", "encoder.")
PRETRAIN_ONLY = ("decoder.", "encoder_to_decoder.", "mask_token")
HEAD_KEYS = ("head.weight", "head.bias")
FRESH_OK = ("head.", "fc_norm.")


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or does not fit the model."""


@dataclass
class LoadReport:
    """What `load_checkpoint` did. Key names are the model's (after unwrapping and prefix removal)."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Model keys the checkpoint did not provide: they keep their fresh initialisation."""
    unexpected: list[str] = field(default_factory=list)
    """Checkpoint keys the model has no place for (ignored)."""
    dropped: dict[str, str] = field(default_factory=dict)
    """Checkpoint keys deliberately discarded -> why (decoder, mismatched head, ...)."""
    interpolated: dict[str, str] = field(default_factory=dict)
    """Keys resized to the model's shape -> 'old shape -> new shape'."""
    notes: list[str] = field(default_factory=list)

    @property
    def fresh(self) -> list[str]:
        return list(self.missing)

    def summary(self) -> str:
        lines = [
            f"checkpoint {self.path}: loaded {len(self.loaded)} tensors, missing {len(self.missing)}, "
            f"unexpected {len(self.unexpected)}, dropped {len(self.dropped)}, interpolated {len(self.interpolated)}"
        ]
        if self.missing:
            lines.append(f"  missing (fresh init): {_short(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected (ignored): {_short(self.unexpected)}")
        for key, why in list(self.dropped.items())[:8]:
            lines.append(f"  dropped {key}: {why}")
        if len(self.dropped) > 8:
            lines.append(f"  ... and {len(self.dropped) - 8} more dropped")
        for key, how in self.interpolated.items():
            lines.append(f"  interpolated {key}: {how}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _short(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


# --- reading files --------------------------------------------------------------------------------
def resolve_checkpoint_path(path: str | Path) -> Path:
    """A file as is; a folder: DeepSpeed's `latest` tag, a bare `mp_rank_00_model_states.pt`, or a
    fine-tuned model folder's `model.safetensors`."""
    path = Path(path)
    if not path.is_dir():
        return path
    if (path / "latest").is_file():
        tag = (path / "latest").read_text().strip()
        candidate = path / tag / "mp_rank_00_model_states.pt"
        if not candidate.is_file():
            raise CheckpointError(
                f"checkpoint folder {path}: 'latest' names {tag!r} but {candidate} does not exist"
            )
        return candidate
    for name in ("mp_rank_00_model_states.pt", "model.safetensors"):
        if (path / name).is_file():
            return path / name
    raise CheckpointError(
        f"checkpoint folder {path} holds neither a DeepSpeed 'latest' tag, mp_rank_00_model_states.pt "
        "nor model.safetensors"
    )


def read_checkpoint_file(path: str | Path) -> Any:
    """Read a checkpoint (.pth/.pt/.bin via torch.load weights_only, .safetensors) with clear errors."""
    path = resolve_checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        # Official training scripts save their argparse.Namespace under "args": harmless, so allowed.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch/safetensors raise many types for a damaged file
        raise CheckpointError(
            f"cannot read checkpoint {path} ({path.stat().st_size} bytes): {type(err).__name__}: {err}. "
            "The file may be truncated or corrupt (re-download it), or hold objects that a "
            "weights_only load refuses (re-save the state dict alone)."
        ) from err


def unwrap_state_dict(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside a checkpoint object (bare, or under model/module/state_dict, nested)."""
    for _ in range(4):
        if not isinstance(obj, dict):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    keys = list(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(
        f"checkpoint {path}: no state dict found (expected a dict of tensors, bare or under one of "
        f"{list(WRAPPER_KEYS)}); top-level content: {keys}"
    )


def clean_keys(state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes per key (nested allowed) and drop pre-training-only tensors."""
    cleaned: dict[str, torch.Tensor] = {}
    for raw_key, tensor in state.items():
        key = raw_key
        while key.startswith(KEY_PREFIXES):
            key = key.split(".", 1)[1]
        if key.startswith(PRETRAIN_ONLY):
            report.dropped[raw_key] = "pre-training decoder / mask token (not part of the encoder)"
            continue
        if not isinstance(tensor, torch.Tensor):
            report.dropped[raw_key] = f"not a tensor ({type(tensor).__name__})"
            continue
        if key in cleaned:
            raise CheckpointError(
                f"checkpoint {report.path}: two tensors map to {key!r} after removing wrapper prefixes "
                f"(one of them is {raw_key!r}); save a single copy of the weights"
            )
        cleaned[key] = tensor
    return cleaned


# --- position embedding ---------------------------------------------------------------------------
def infer_pos_grid(num_tokens: int, model_grid: tuple[int, int, int]) -> tuple[int, int, int]:
    """Guess the (T, H, W) token grid of a pos_embed with `num_tokens` rows (square spatial grids).

    Prefers the model's temporal size, then the model's spatial size, then common temporal sizes.
    """
    t_model, h_model, w_model = model_grid
    if num_tokens % t_model == 0 and math.isqrt(num_tokens // t_model) ** 2 == num_tokens // t_model:
        side = math.isqrt(num_tokens // t_model)
        return (t_model, side, side)
    if num_tokens % (h_model * w_model) == 0:
        return (num_tokens // (h_model * w_model), h_model, w_model)
    for t in (8, 4, 16, 2, 1):
        if num_tokens % t == 0 and math.isqrt(num_tokens // t) ** 2 == num_tokens // t:
            side = math.isqrt(num_tokens // t)
            return (t, side, side)
    raise CheckpointError(f"cannot infer the token grid of a pos_embed with {num_tokens} tokens")


def interpolate_pos_embed(
    pos: torch.Tensor, old_grid: tuple[int, int, int], new_grid: tuple[int, int, int]
) -> torch.Tensor:
    """Resize a (1, T*H*W, D) pos_embed: bicubic over space, then linear over time."""
    t0, h0, w0 = old_grid
    t1, h1, w1 = new_grid
    dim = pos.shape[-1]
    x = pos.float().reshape(t0, h0, w0, dim).permute(0, 3, 1, 2)  # (T0, D, H0, W0)
    if (h0, w0) != (h1, w1):
        x = F.interpolate(x, size=(h1, w1), mode="bicubic", align_corners=False)  # (T0, D, H1, W1)
    x = x.permute(2, 3, 1, 0).reshape(h1 * w1, dim, t0)  # (H1*W1, D, T0)
    if t0 != t1:
        x = F.interpolate(x, size=t1, mode="linear", align_corners=False)  # (H1*W1, D, T1)
    x = x.reshape(h1, w1, dim, t1).permute(3, 0, 1, 2).reshape(1, t1 * h1 * w1, dim)
    return x.to(pos.dtype)


# --- matching -------------------------------------------------------------------------------------
def _adapt_pos_embed(state: dict, model: VideoMAEViT, report: LoadReport, pos_grid: tuple | None) -> None:
    if "pos_embed" not in state:
        return
    if model.pos_embed is None:
        report.dropped["pos_embed"] = "model uses the fixed sinusoid table (use_learnable_pos_emb=False)"
        del state["pos_embed"]
        return
    pos = state["pos_embed"]
    if pos.ndim == 2:
        pos = pos.unsqueeze(0)
    target = tuple(model.pos_embed.shape)
    if tuple(pos.shape) == target:
        state["pos_embed"] = pos
        return
    if pos.ndim != 3 or pos.shape[-1] != target[-1]:
        raise CheckpointError(
            f"checkpoint {report.path}: pos_embed has shape {tuple(pos.shape)}, model expects {target}"
        )
    old_grid = tuple(pos_grid) if pos_grid else infer_pos_grid(pos.shape[1], model.grid)
    state["pos_embed"] = interpolate_pos_embed(pos, old_grid, model.grid)
    report.interpolated["pos_embed"] = f"{tuple(pos.shape)} grid {old_grid} -> {target} grid {model.grid}"


def _note_pretrain_norm(state: dict, model_keys: set, report: LoadReport, norm_to_fc_norm: bool) -> None:
    """Pre-training encoders end with `norm` (per token) where fine-tuning models have `fc_norm`."""
    norm_keys = [k for k in state if k in ("norm.weight", "norm.bias")]
    if not norm_keys or "norm.weight" in model_keys:
        return
    if norm_to_fc_norm and "fc_norm.weight" not in state:
        for key in norm_keys:
            state["fc_" + key] = state.pop(key)
        report.notes.append("checkpoint's final `norm` loaded into `fc_norm` (norm_to_fc_norm=True)")
        return
    for key in norm_keys:
        del state[key]
        report.dropped[key] = (
            "pre-training encoder's final per-token norm; this model pools then applies `fc_norm` "
            "(kept fresh, as the official fine-tuning does)"
        )


def match_state_dict(
    state: dict[str, torch.Tensor], model: VideoMAEViT, report: LoadReport
) -> dict[str, torch.Tensor]:
    """Keep the tensors that fit the model; drop mismatched heads; fill missing/unexpected lists."""
    model_state = model.state_dict()
    usable: dict[str, torch.Tensor] = {}
    body_mismatch: list[str] = []
    for key, tensor in state.items():
        if key not in model_state:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(model_state[key].shape):
            if key in HEAD_KEYS:
                report.dropped[key] = (
                    f"head shape {tuple(tensor.shape)} != model {tuple(model_state[key].shape)} "
                    "(other number of classes): kept fresh"
                )
            else:
                body_mismatch.append(
                    f"{key}: checkpoint {tuple(tensor.shape)} vs model {tuple(model_state[key].shape)}"
                )
        else:
            usable[key] = tensor
    if body_mismatch and all(state[k.split(":")[0]].numel() == 0 for k in body_mismatch):
        raise CheckpointError(
            f"checkpoint {report.path} holds empty (partitioned) tensors: a DeepSpeed ZeRO-3 checkpoint. "
            "Consolidate it first with DeepSpeed's zero_to_fp32.py (or save with "
            "stage3_gather_16bit_weights_on_model_save=true)"
        )
    if body_mismatch:
        raise CheckpointError(
            f"checkpoint {report.path} does not fit the model ({len(body_mismatch)} shape mismatches, "
            f"wrong architecture?): first: {'; '.join(body_mismatch[:5])}"
        )
    report.loaded = sorted(usable)
    report.missing = [k for k in model_state if k not in usable]
    return usable


def _check_enough(model: VideoMAEViT, state: dict, report: LoadReport, min_fraction: float) -> None:
    """Error when too little of the model body is loaded or too much of the checkpoint is unused."""
    fresh_ok = tuple(getattr(model, "fresh_ok", FRESH_OK))
    body = [k for k in model.state_dict() if not k.startswith(fresh_ok)]
    loaded_body = [k for k in report.loaded if not k.startswith(fresh_ok)]
    model_fraction = len(loaded_body) / max(1, len(body))
    ckpt_fraction = len(report.loaded) / max(1, len(state))
    if model_fraction < min_fraction or ckpt_fraction < min_fraction:
        raise CheckpointError(
            f"checkpoint {report.path} matches too little of the model (wrong architecture?): "
            f"{len(loaded_body)}/{len(body)} model body tensors found, {len(report.loaded)}/{len(state)} "
            f"checkpoint tensors used (minimum fraction {min_fraction}). First missing: "
            f"{_short(report.missing, 5)}; first unexpected: {_short(report.unexpected, 5)}"
        )


def load_state_dict_into(
    model: VideoMAEViT,
    state: dict[str, torch.Tensor],
    path: str | Path = "<state dict>",
    strict_min_fraction: float = 0.9,
    pos_grid: tuple[int, int, int] | None = None,
    norm_to_fc_norm: bool = False,
) -> LoadReport:
    """Like `load_checkpoint` for a state dict already in memory (wrapped or not)."""
    report = LoadReport(path=str(path))
    state = clean_keys(unwrap_state_dict(state, path), report)
    model_keys = set(model.state_dict())
    if hasattr(model, "adapt_state_dict"):  # another family (VideoMamba) fits its own embeddings
        model.adapt_state_dict(state, report, pos_grid, norm_to_fc_norm)
    else:
        _note_pretrain_norm(state, model_keys, report, norm_to_fc_norm)
        _adapt_pos_embed(state, model, report, pos_grid)
    usable = match_state_dict(state, model, report)
    _check_enough(model, state, report, strict_min_fraction)
    fresh_top = sorted({k.split(".")[0] for k in report.missing})
    if fresh_top:
        report.notes.append(f"freshly initialised: {', '.join(fresh_top)}")
    model.load_state_dict(usable, strict=False)
    log.info(report.summary())
    return report


def load_checkpoint(
    model: VideoMAEViT,
    path: str | Path,
    strict_min_fraction: float = 0.9,
    pos_grid: tuple[int, int, int] | None = None,
    norm_to_fc_norm: bool = False,
) -> LoadReport:
    """Load checkpoint `path` into `model` in place and return (and log) a `LoadReport`.

    `path` is a .pth/.pt/.bin/.safetensors file, a DeepSpeed checkpoint folder (its `latest` tag is
    followed) or a fine-tuned model folder.

    strict_min_fraction: at least this fraction of the model's body tensors (everything but fc_norm
      and head) must be found in the checkpoint, and at least this fraction of the checkpoint's
      encoder tensors must be used; otherwise `CheckpointError` names the file and the first keys.
    pos_grid: (T, H, W) token grid of a learnable pos_embed when it cannot be inferred.
    norm_to_fc_norm: load a pre-training encoder's final `norm` into `fc_norm` (off by default,
      matching the official fine-tuning which keeps fc_norm fresh).
    """
    path = resolve_checkpoint_path(path)
    obj = read_checkpoint_file(path)
    return load_state_dict_into(model, obj, path, strict_min_fraction, pos_grid, norm_to_fc_norm)
