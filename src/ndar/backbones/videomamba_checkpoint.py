"""Fit official VideoMamba state dicts to a `VideoMamba` built for this clip size.

`load_checkpoint` unwraps the file (`{"model": ...}`, DeepSpeed `{"module": ...}`, prefixes) and then
calls the model's `adapt_state_dict`, which lands here. What the official releases need:
- K400 / SSv2 / Breakfast / COIN fine-tuned models: `temporal_pos_embedding` was trained for 8-64
  frames; it is resized linearly over time to this model's frames (align_corners=False, like the
  official fine-tuning script), and `pos_embed` bicubically over space when the input size differs
  (the cls row is kept as is).
- ImageNet-1K models (`videomamba_*16_in1k`): a 2-D `patch_embed.proj.weight` (D, 3, p, p), inflated
  to (D, 3, tubelet, p, p) with the weights on the centre frame (the official `inflate_weight`), and
  no `temporal_pos_embedding` (it stays zero, as the official fine-tuning starts it).
- Masked pre-training (`videomamba_m16_*_mask_pt_*`): the CLIP-distillation decoder
  (`clip_decoder.*`, `clip_pos_embed`) is dropped; the final per-token norm is named `norm` there.
  The official fine-tuning leaves `norm_f` fresh (the names differ); `norm_to_final=True` loads it.
Everything done is written into the `LoadReport`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PRETRAIN_ONLY = ("clip_decoder.", "clip_pos_embed")


def adapt_videomamba_state(
    model, state: dict[str, torch.Tensor], report, norm_to_final: bool = False
) -> None:
    """Drop pre-training-only tensors, inflate/resize embeddings to `model`; edits `state` in place."""
    for key in [k for k in state if k.startswith(PRETRAIN_ONLY)]:
        del state[key]
        report.dropped[key] = "masked pre-training CLIP decoder (not part of the encoder)"
    _pretrain_norm(state, report, norm_to_final)
    _inflate_patch_embed(model, state, report)
    _resize_spatial(model, state, report)
    _resize_temporal(model, state, report)
    if "temporal_pos_embedding" not in state and "patch_embed.proj.weight" in state:
        report.notes.append("no temporal_pos_embedding (image checkpoint): it starts at zero, as officially")


def _pretrain_norm(state: dict, report, norm_to_final: bool) -> None:
    if "norm.weight" not in state or "norm_f.weight" in state:
        return
    if norm_to_final:
        state["norm_f.weight"] = state.pop("norm.weight")
        report.notes.append("checkpoint's final `norm` loaded into `norm_f` (norm_to_fc_norm=True)")
        return
    del state["norm.weight"]
    report.dropped["norm.weight"] = (
        "masked pre-training's final norm; `norm_f` stays fresh, as the official fine-tuning leaves it"
    )


def _inflate_patch_embed(model, state: dict, report) -> None:
    weight = state.get("patch_embed.proj.weight")
    target = model.patch_embed.proj.weight
    if weight is None or weight.ndim != 4 or target.ndim != 5:
        return
    tubelet = target.shape[2]
    inflated = weight.new_zeros(weight.shape[0], weight.shape[1], tubelet, *weight.shape[2:])
    inflated[:, :, tubelet // 2] = weight
    state["patch_embed.proj.weight"] = inflated
    report.interpolated["patch_embed.proj.weight"] = (
        f"{tuple(weight.shape)} -> {tuple(inflated.shape)} (2-D image patch embedding on the centre frame)"
    )


def _resize_spatial(model, state: dict, report) -> None:
    pos = state.get("pos_embed")
    target = tuple(model.pos_embed.shape)
    if pos is None or tuple(pos.shape) == target or pos.ndim != 3 or pos.shape[-1] != target[-1]:
        return  # absent, fitting, or a shape mismatch that match_state_dict reports
    old_side = int(round((pos.shape[1] - 1) ** 0.5))
    if old_side * old_side != pos.shape[1] - 1:
        return
    _, new_h, new_w = model.grid
    dim = pos.shape[-1]
    grid = pos[:, 1:].float().reshape(1, old_side, old_side, dim).permute(0, 3, 1, 2)  # (1, D, H0, W0)
    grid = F.interpolate(grid, size=(new_h, new_w), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim).to(pos.dtype)
    state["pos_embed"] = torch.cat((pos[:, :1], grid), dim=1)
    report.interpolated["pos_embed"] = (
        f"{tuple(pos.shape)} grid {old_side}x{old_side} -> {target} grid {new_h}x{new_w} (cls row kept)"
    )


def _resize_temporal(model, state: dict, report) -> None:
    pos = state.get("temporal_pos_embedding")
    target = tuple(model.temporal_pos_embedding.shape)
    if pos is None or tuple(pos.shape) == target or pos.ndim != 3 or pos.shape[-1] != target[-1]:
        return
    resized = F.interpolate(pos.float().permute(0, 2, 1), size=target[1], mode="linear", align_corners=False)
    state["temporal_pos_embedding"] = resized.permute(0, 2, 1).to(pos.dtype)  # (1, T, D)
    report.interpolated["temporal_pos_embedding"] = f"{tuple(pos.shape)} -> {target} (linear over time)"
