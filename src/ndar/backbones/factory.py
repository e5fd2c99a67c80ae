"""Registered backbones, each carrying its preprocessing, and the factory that builds them.

Every entry holds the architecture (`ViTArgs`) and the preprocessing (`BackboneSpec`), so fine-tuning
and feature extraction read mean/std, frames, sampling rate and input size from one place and can
never disagree. Names carry the `videomae_` prefix so they never shadow timm's own models.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ndar.backbones.videomamba import MambaArgs, VideoMamba
from ndar.backbones.vit import VideoMAEViT, ViTArgs
from ndar.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class BackboneSpec:
    """Preprocessing a backbone expects: pixels in [0, 1], then (x - mean) / std if `normalize`."""

    name: str
    num_frames: int = 16
    """Frames per clip fed to the model."""
    sampling_rate: int = 2
    """Stride between sampled frames (16 frames at rate 2 cover 32 source frames, the AI City seed)."""
    img_size: int = 224
    """Square input size (resize without crop at extraction time)."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    normalize: bool = True
    """False for feature extractors that skipped normalisation (pixels stay in [0, 1])."""
    subtract_video_mean: bool = False
    """Subtract each video's mean frame before everything else (`ndar.video.mean`): fine-tuning and
    extraction both honour it, so a model trained on residual frames is always fed residual frames."""
    embed_dim: int = 768
    """Size of the pooled feature (B, D) that `forward_features` returns."""
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    """Region of the frame the model sees, (left, top, right, bottom) fractions: the view's driver
    region, set per view by fine-tuning and saved in model.json, so extraction crops the same box."""
    resize: str = "squash"
    """How the crop box becomes img_size x img_size (`ndar.video.geometry`); the same in fine-tuning
    (train and validation), the clip cache and extraction."""


@dataclass(frozen=True)
class BackboneEntry:
    """One registered backbone: its architecture and its default preprocessing."""

    name: str
    args: ViTArgs | MambaArgs
    spec_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def arg_keys(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.args)}


BACKBONES = Registry("backbone")

SPEC_KEYS = {f.name for f in dataclasses.fields(BackboneSpec)} - {"name"}
ARG_KEYS = {f.name for f in dataclasses.fields(ViTArgs)}
MODEL_CLASSES = {ViTArgs: VideoMAEViT, MambaArgs: VideoMamba}


def _register(name: str, args_cls: type = ViTArgs, **arch: Any) -> None:
    arg_keys = {f.name for f in dataclasses.fields(args_cls)}
    spec_defaults = {k: arch.pop(k) for k in list(arch) if k in SPEC_KEYS and k not in arg_keys}
    BACKBONES.register(name)(BackboneEntry(name, args_cls(**arch), spec_defaults))


# Sizes from the official VideoMAE (v1/v2) models; tiny exists for tests and CPU demos.
_register("videomae_vit_tiny", embed_dim=192, depth=12, num_heads=3)
_register("videomae_vit_small", embed_dim=384, depth=12, num_heads=6)
_register("videomae_vit_base", embed_dim=768, depth=12, num_heads=12)
_register("videomae_vit_large", embed_dim=1024, depth=24, num_heads=16)
_register("videomae_vit_huge", embed_dim=1280, depth=32, num_heads=16)
_register("videomae_vit_giant", embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11, patch_size=14)

# VideoMamba sizes from the official `videomamba.py`; test exists for tests only. Default clip: 32
# frames at rate 2 (64 source frames, about 2 s at 30 fps), twice a ViT window, since its cost is linear.
_MAMBA_CLIP = dict(num_frames=32, sampling_rate=2)
_register("videomamba_test", MambaArgs, embed_dim=32, depth=2, **_MAMBA_CLIP)
_register("videomamba_tiny", MambaArgs, embed_dim=192, depth=24, **_MAMBA_CLIP)
_register("videomamba_small", MambaArgs, embed_dim=384, depth=24, **_MAMBA_CLIP)
_register("videomamba_middle", MambaArgs, embed_dim=576, depth=32, **_MAMBA_CLIP)


def list_backbones() -> list[str]:
    return BACKBONES.names()


def _split_overrides(name: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split overrides into architecture keys and preprocessing keys; unknown keys are an error."""
    arg_keys = BACKBONES.get(name).arg_keys
    unknown = sorted(set(overrides) - arg_keys - SPEC_KEYS)
    if unknown:
        raise TypeError(
            f"unknown override(s) {unknown} for backbone {name!r}; valid: "
            f"architecture {sorted(arg_keys)}, preprocessing {sorted(SPEC_KEYS - arg_keys)}"
        )
    arch = {k: v for k, v in overrides.items() if k in arg_keys}
    spec = {k: v for k, v in overrides.items() if k in SPEC_KEYS and k not in arg_keys}
    return arch, spec


def resolve_args(name: str, **overrides: Any) -> ViTArgs | MambaArgs:
    """The architecture of `name` with overrides applied (preprocessing keys are ignored here)."""
    entry: BackboneEntry = BACKBONES.get(name)
    arch, _ = _split_overrides(name, overrides)
    return dataclasses.replace(entry.args, **arch)


def create_backbone(
    name: str, num_classes: int = 16, num_frames: int = 16, img_size: int = 224, **overrides: Any
) -> VideoMAEViT | VideoMamba:
    """Build registered backbone `name` (random init) for clips of `num_frames` x `img_size`^2.

    `overrides` change the architecture (embed_dim, depth, num_heads, drop_path_rate, head_drop_rate,
    use_learnable_pos_emb, init_values, grad_checkpointing, tubelet_size, patch_size, ...; for
    VideoMamba: d_state, d_conv, expand, dt_rank, scan_impl, scan_chunk, ...).
    Preprocessing keys (mean, std, sampling_rate, normalize) are accepted and ignored, so the same
    override dict can be passed to `get_spec` and `create_backbone`.
    """
    args = resolve_args(name, **overrides)
    model_cls = MODEL_CLASSES[type(args)]
    model = model_cls(args, num_classes=num_classes, num_frames=num_frames, img_size=img_size)
    model.backbone_name = name
    model.backbone_overrides = dict(overrides)
    return model


def get_spec(name: str, **overrides: Any) -> BackboneSpec:
    """Preprocessing of backbone `name`; overrides may hold spec fields and architecture keys."""
    entry: BackboneEntry = BACKBONES.get(name)
    arch, spec_over = _split_overrides(name, overrides)
    values = {**entry.spec_defaults, **spec_over}
    values.setdefault("embed_dim", arch.get("embed_dim", entry.args.embed_dim))
    if "crop_box" in values:
        from ndar.video.geometry import check_box

        values["crop_box"] = check_box(values["crop_box"], f"backbone {name!r}: crop_box")
    for key in ("mean", "std"):
        if key in values:
            values[key] = tuple(float(v) for v in values[key])
            if len(values[key]) != 3:
                raise ValueError(f"backbone {name!r}: {key} must have 3 values (RGB), got {values[key]}")
    return BackboneSpec(name=name, **values)
