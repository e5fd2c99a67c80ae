"""The fine-tuned model folder (docs/interfaces.md): `model.safetensors` + `model.json`.

Fine-tuning writes it, feature extraction reads it. `model.json` holds everything needed to rebuild
the exact model and its preprocessing (registry name, classes, input size, mean/std, overrides), so
the extractor never guesses. Both files are written atomically; `model.json` is written last, so its
presence means the folder is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ndar.backbones.factory import BackboneSpec, create_backbone, get_spec
from ndar.backbones.vit import VideoMAEViT
from ndar.utils.io import atomic_path, read_json, write_json

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
FORMAT_VERSION = 1
SPEC_META_KEYS = (
    "num_frames",
    "img_size",
    "sampling_rate",
    "mean",
    "std",
    "normalize",
    "subtract_video_mean",
    "crop_box",
    "resize",
)


def save_model_folder(
    model: VideoMAEViT,
    spec: BackboneSpec,
    folder: str | Path,
    backbone_name: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write `folder/model.safetensors` (official key layout) and `folder/model.json`.

    backbone_name / overrides default to what `create_backbone` recorded on the model. Runtime-only
    overrides (grad_checkpointing, drop rates) are kept: they do not change the weights and are
    harmless in eval mode.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    name = backbone_name or getattr(model, "backbone_name", None)
    if name is None:
        raise ValueError(
            "save_model_folder: backbone_name is required for a model not built by create_backbone"
        )
    overrides = dict(overrides if overrides is not None else getattr(model, "backbone_overrides", {}))
    overrides = {k: v for k, v in overrides.items() if k not in SPEC_META_KEYS}
    if model.num_frames != spec.num_frames or model.img_size != spec.img_size:
        raise ValueError(
            f"save_model_folder: spec says {spec.num_frames} frames x {spec.img_size}px but the model is "
            f"built for {model.num_frames} x {model.img_size}px"
        )
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "backbone": name})
    meta = {
        "backbone": name,
        "num_classes": model.num_classes,
        "num_frames": model.num_frames,
        "img_size": model.img_size,
        "sampling_rate": spec.sampling_rate,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "normalize": spec.normalize,
        "subtract_video_mean": spec.subtract_video_mean,
        "crop_box": list(spec.crop_box),
        "resize": spec.resize,
        "embed_dim": model.embed_dim,
        "overrides": overrides,
        "format_version": FORMAT_VERSION,
    }
    write_json(folder / META_FILE, meta)
    return folder


def read_model_meta(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {folder} is not a complete fine-tuned model folder")
    meta = read_json(path)
    missing = [k for k in ("backbone", "num_classes", "num_frames", "img_size") if k not in meta]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}")
    return meta


def load_model_folder(
    folder: str | Path, device: str | torch.device = "cpu"
) -> tuple[VideoMAEViT, BackboneSpec]:
    """Rebuild the model saved by `save_model_folder` (eval mode, on `device`) and its preprocessing."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = read_model_meta(folder)
    overrides = dict(meta.get("overrides", {}))
    model = create_backbone(
        meta["backbone"],
        num_classes=meta["num_classes"],
        num_frames=meta["num_frames"],
        img_size=meta["img_size"],
        **overrides,
    )
    weights = folder / WEIGHTS_FILE
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as err:
        raise RuntimeError(
            f"cannot read {weights}: {type(err).__name__}: {err} (truncated or corrupt?)"
        ) from err
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f"{weights} does not match {meta['backbone']} with overrides {overrides}: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    spec_values = {k: meta[k] for k in SPEC_META_KEYS if k in meta}
    spec = get_spec(meta["backbone"], **overrides, **spec_values)
    return model.to(device).eval(), spec
