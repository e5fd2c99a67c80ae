"""Typed config of `python -m ndar extract` (YAML + dotted overrides through `ndar.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ndar.layout import STANDALONE


@dataclass
class ModelEntry:
    """One fine-tuned backbone: a track name and the model folder written by `ndar finetune`."""

    track: str
    """Feature-set name, e.g. 'k400_vith'; outputs go to <out>/<track>/<view>/."""
    folder: str
    """Model folder (model.safetensors + model.json); '{view}' is replaced by the view, e.g.
    'weights/finetuned/k400_vith_{view}'."""
    stride: int | None = None
    """Frames between window starts; None = the config's `stride`."""
    window: int | None = None
    """Frames a window spans (the clip is its last num_frames * sampling_rate frames); None = exactly that."""
    sampling_rate: int | None = None
    """Override the model folder's sampling rate (None keeps the one it was fine-tuned with)."""
    checkpoint: str = "final"
    """'final': the model of the last epoch (the folder itself); 'best': the epoch with the highest
    held-fold top-1, kept in `<folder>/best`. Final by default: see docs/finetune.md."""


@dataclass
class ExtractConfig:
    data_root: Path = Path("data/synthetic")
    """Folder holding A1/ and A2/ (or a split folder itself)."""
    splits: list[str] = field(default_factory=lambda: ["A1", "A2"])
    """Splits whose videos are extracted."""
    labels_dir: Path | None = None
    """Separate labels folder, when the labels are not beside the videos."""
    views: list[str] = field(default_factory=lambda: ["rear", "dashboard"])
    """Camera views to extract (canonical names or any official spelling)."""
    models: list[ModelEntry] = field(default_factory=list)
    """Fine-tuned backbones; every one runs on every selected view."""
    stride: int = 16
    """Default frames between window starts (the seed's window every 16 frames)."""
    batch_size: int = 8
    """Windows per forward pass."""
    device: str = "auto"
    """'auto' (cuda:<local rank> when available, else cpu), 'cpu', 'cuda', 'cuda:1', ..."""
    dtype: str = "auto"
    """Autocast dtype: 'auto' (bfloat16 on GPU when supported else float16; float32 on CPU),
    'float32', 'bfloat16', 'float16'."""
    compile: bool = False
    """Wrap each backbone in torch.compile (worth it for long runs on GPU)."""
    out: Path = STANDALONE.features
    """Output folder: <out>/<track>/<view>/<video_stem>.npz + .json, failures.json, summary.json."""
    overwrite: bool = False
    """Recompute outputs that are already complete (otherwise they are skipped: resume)."""
    num_workers: int = 0
    """Decoder threads per video (0 lets FFmpeg choose)."""
    convert_threads: int | None = None
    """Threads that resize and colour-convert decoded frames (swscale) beside the decoder; 0 = in the
    decoding thread. None = auto: min(8, cores // 2) on GPU, where the CPU side is the bottleneck
    (1080p conversion costs more than decoding), and 0 on CPU, where the model needs the cores."""
    resize_on_decode: bool = True
    """Resize frames to the backbones' input size while decoding (swscale bilinear, from YUV); when
    False frames are decoded at full size and resized with torch (bilinear, antialias)."""
    prefetch: int = 4
    """Batches queued between the decoding thread and the models (bounds memory)."""
    expected_fps: float | None = None
    """A video whose frame rate differs from this by more than `fps_tolerance` fails (None: any)."""
    fps_tolerance: float = 0.5
    limit: int | None = None
    """Only the first n sessions of each split (smoke runs); None = all."""
    held_out_fold: int | None = None
    """Only the A1 sessions of this fold's drivers, and every session of the other splits: the videos
    a fold model (fine-tuned with `data.fold` = this fold) never saw. None = every session."""
    folds: int = 5
    """k of the driver folds `held_out_fold` refers to (the fine-tuning's `data.k`)."""
    fold_seed: int = 0
    """Seed of the driver folds (the fine-tuning's `data.fold_seed`)."""
    augment_copies: int = 0
    """RandAugment copies of every window written beside the clean features (`features_aug`,
    `probs_aug`), for TIM's per-slot copy sampling (`tim.augment_copies`). Each costs one more
    forward pass per window; 0 writes the clean features only."""
    augment_spec: str = "rand-m9-n2-mstd0.5"
    """timm RandAugment spec of the copies, applied identically to every frame of a clip."""
    augment_seed: int = 0
    """Seed of the copies: the same seed gives the same bytes whatever the batch size or ranks."""

    LIMITS = {
        "stride": ">= 1", "batch_size": ">= 1", "device": r"re:auto|cpu|cuda(:\d+)?",
        "dtype": ("auto", "float32", "bfloat16", "float16"), "num_workers": ">= 0", "convert_threads": ">= 0",
        "prefetch": ">= 1", "expected_fps": "> 0", "fps_tolerance": ">= 0", "limit": ">= 0", "held_out_fold": ">= 0",
        "folds": ">= 2", "augment_copies": ">= 0", "augment_spec": r"re:rand-.*",
    }  # fmt: skip
