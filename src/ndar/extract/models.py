"""Fine-tuned backbones for extraction: load the model folders of one view, preprocess, embed.

Each backbone brings its own preprocessing (`BackboneSpec`: frames, sampling rate, input size,
mean/std, whether to normalise), so several backbones share one decoded stream of frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ndar.extract.config import ExtractConfig, ModelEntry
from ndar.utils.io import sha256_file
from ndar.video import WindowSpec
from ndar.video.geometry import FULL_FRAME, Geometry, GeometryPlan

log = logging.getLogger(__name__)

_SHA_CACHE: dict[Path, str] = {}


class ModelFolderError(ValueError):
    """A model folder's weights do not fit the architecture its model.json describes."""


def one_line(err: Exception, most: int = 2) -> str:
    """The first `most` non-empty lines of an error, joined: enough to name the mismatch."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines[:most]) or type(err).__name__


class FeaturesAndLogits(torch.nn.Module):
    """One forward returning both outputs, so `torch.compile` sees (and fuses) the whole pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.forward_features(x)  # (B, D)
        return feats, self.model.forward_head(feats)  # (B, C)


@dataclass
class Backbone:
    """One configured backbone of one view; the weights are loaded only when a video needs them."""

    track: str
    view: str
    folder: Path
    window: WindowSpec
    sha256: str  # of model.safetensors
    img_size: int
    geometry: Geometry  # the crop box of the view and the resize rule to img_size (as in fine-tuning)
    plan: GeometryPlan | None = None  # the geometry's plan for the current video (`plan_for`)
    net: torch.nn.Module | None = None  # FeaturesAndLogits (compiled when asked), once loaded
    spec: object | None = None  # ndar.backbones.BackboneSpec, once loaded

    def plan_for(self, frame_hw: tuple[int, int]) -> GeometryPlan:
        """Set and return the plan for a video of `frame_hw` ("pad" depends on the frame's size)."""
        self.plan = self.geometry.plan(frame_hw)
        return self.plan

    def load(self, device: torch.device, compile: bool) -> None:
        from ndar.backbones import load_model_folder

        if self.net is not None:
            return
        try:
            model, spec = load_model_folder(self.folder)
        except RuntimeError as err:  # torch's multi-line size-mismatch report, without the folder
            raise ModelFolderError(f"{self.folder}: {one_line(err)}") from err
        if int(spec.img_size) != self.img_size or int(spec.num_frames) != self.window.num_frames:
            raise ValueError(
                f"{self.folder}: model.json and the rebuilt model disagree on input size or frames"
            )
        net = FeaturesAndLogits(model).to(device).eval()
        self.net = torch.compile(net) if compile else net
        self.spec = spec
        log.info(
            "loaded %s/%s from %s (%s, sha256 %s)",
            self.track,
            self.view,
            self.folder,
            spec.name,
            self.sha256[:12],
        )


CHECKPOINTS = ("final", "best")


def model_folder(entry: ModelEntry, view: str) -> Path:
    """The folder of the entry's view, or its `best/` model folder when the entry selects it."""
    if entry.checkpoint not in CHECKPOINTS:
        raise ValueError(
            f"models[{entry.track}].checkpoint: {entry.checkpoint!r}, expected one of {', '.join(CHECKPOINTS)}"
        )
    folder = Path(entry.folder.format(view=view))
    if entry.checkpoint == "final":
        return folder
    if (folder / "model.json").is_file() and not (folder / "best").is_dir():
        raise FileNotFoundError(
            f"models[{entry.track}].checkpoint: best, but {folder} has no best/ (it is only kept when "
            "the fine-tune validates on a held fold; fold: -1 trains on every driver)"
        )
    return folder / "best"


def checkpoint_sha256(folder: Path) -> str:
    """Hash of the weights file, so a feature file says exactly which model made it."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(
            f"model folder {folder}: model.safetensors not found (run `ndar finetune` first)"
        )
    key = weights.resolve()
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(weights)
    return _SHA_CACHE[key]


def plan_backbones(cfg: ExtractConfig, view: str) -> list[Backbone]:
    """Every configured backbone of `view` with its window rule and hash, read from model.json only."""
    from ndar.backbones import read_model_meta

    backbones = []
    for entry in cfg.models:
        folder = model_folder(entry, view)
        meta = read_model_meta(folder)
        window = WindowSpec(
            num_frames=int(meta["num_frames"]),
            sampling_rate=int(entry.sampling_rate or meta.get("sampling_rate", 2)),
            stride=int(entry.stride or cfg.stride),
            window=entry.window,
        )
        size = int(meta["img_size"])
        # model folders written before crop boxes existed saw the whole frame
        box = tuple(meta.get("crop_box", FULL_FRAME))
        geometry = Geometry(size, box, meta.get("resize", "squash"))
        backbones.append(
            Backbone(entry.track, view, folder, window, checkpoint_sha256(folder), size, geometry)
        )
    return backbones


def preprocess_clips(clips: np.ndarray | torch.Tensor, spec: object, device: torch.device) -> torch.Tensor:
    """uint8 clips (B, T, H, W, 3) -> float (B, 3, T, S, S): resize to S x S, [0, 1], normalise.

    Clips cut by `WindowStream` are already the crop box at S x S (no resize here); native-size
    clips (`resize_on_decode: false`, whole-frame models only) are squashed to S x S.
    """
    x = torch.as_tensor(clips)
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    b, t, h, w, c = x.shape
    size = int(spec.img_size)
    x = x.permute(0, 1, 4, 2, 3).reshape(b * t, c, h, w).float()  # (B*T, 3, H, W)
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = x / 255.0
    if spec.normalize:
        mean = torch.tensor(spec.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4).contiguous()  # (B, 3, T, S, S)


@torch.inference_mode()
def embed(
    net: torch.nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features (B, D) and softmax probabilities (B, C), float32 on x's device.

    Results stay on the device (no synchronisation per batch); callers move them once per video.
    """
    enabled = amp_dtype is not None
    with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=enabled):
        feats, logits = net(x)  # (B, D), (B, C)
    return feats.float(), torch.softmax(logits.float(), dim=-1)
