"""`FinetuneConfig`: every setting of one fine-tuning run (one backbone x one view x one fold).

Loaded from YAML with dotted overrides (`ndar.config.load_config`). The DeepSpeed JSON is generated
from this dataclass (`ndar.finetune.ds_config`), never kept by hand, and the resolved config is
saved in the output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ndar.config import ConfigError, check_value
from ndar.layout import STANDALONE


def typed_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides with each architecture / preprocessing key checked against its declared type
    (`depth=abc` is refused here, naming the key, not deep inside torch); unknown keys are left to
    the backbone registry, which lists the valid ones."""
    import typing

    from ndar.backbones.factory import BackboneSpec
    from ndar.backbones.vit import ViTArgs

    hints = {**typing.get_type_hints(BackboneSpec), **typing.get_type_hints(ViTArgs)}
    return {k: check_value(hints[k], v, f"overrides.{k}") if k in hints else v for k, v in overrides.items()}


@dataclass
class ModelSection:
    backbone: str = "videomae_vit_tiny"
    """Registered backbone name (`ndar.backbones.list_backbones()`)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Architecture / preprocessing overrides passed to `create_backbone` and `get_spec` (depth, ...)."""
    pretrained: Path | None = None
    """Checkpoint to start from (any layout `load_checkpoint` accepts); None = random init (tiny)."""
    num_frames: int | None = None
    """Frames per clip; None = the backbone spec's default."""
    img_size: int | None = None
    """Square input size; None = the backbone spec's default."""
    sampling_rate: int | None = None
    """Stride between sampled source frames; None = the backbone spec's default."""
    drop_path_rate: float = 0.1
    head_drop_rate: float = 0.0
    grad_checkpointing: bool = False
    """Recompute block activations in backward (saves memory on big models)."""
    min_loaded_fraction: float = 0.9
    """`load_checkpoint` fails when less than this fraction of the body is found in `pretrained`."""

    LIMITS = {
        "num_frames": ">= 1", "img_size": ">= 1", "sampling_rate": ">= 1", "drop_path_rate": ">= 0, < 1",
        "head_drop_rate": ">= 0, < 1", "min_loaded_fraction": ">= 0, <= 1",
    }  # fmt: skip

    def __post_init__(self) -> None:
        self.overrides = typed_overrides(self.overrides)


@dataclass
class DataSection:
    root: Path | None = Path("data/synthetic")
    """Dataset root holding A1/ (used when `clips` is not given)."""
    clips: Path | None = None
    """A `clips_<view>.csv` written by `python -m ndar prepare` (columns path, label, start, end, fold)."""
    split: str = "A1"
    view: str = "rear"
    """Camera view to fine-tune on: dashboard | rear | right."""
    k: int = 5
    """Number of folds (by driver)."""
    fold: int = 0
    """Held-out validation fold; -1 trains on every fold (no validation)."""
    fold_seed: int = 0
    background_per_video: int = 2
    """Class-0 clips cut from the gaps between activities, per video."""
    crop: Any = "full"
    """The view's crop box, the region the model sees (`ndar.video.geometry`): a preset name looked up
    for `view` ("full" = the whole frame, "synthetic" = the renderer's driver boxes, "aicity" = the
    driver boxes of the real camera poses) or [left, top, right, bottom] fractions. It is saved in
    model.json, so extraction crops the same box."""
    resize: str = "squash"
    """How the box becomes img_size x img_size (`ndar.video.geometry`): "squash" (aspect not kept) or
    "pad" (aspect kept, the rest zeros); saved in model.json like the box."""
    num_workers: int = 2
    """DataLoader workers per process (0 = decode in the main process)."""
    cache: bool = False
    """Decode every clip once into memory before training (small CPU runs: decoding dominates)."""
    cache_max_frames: int = 32
    """With `cache` or `cache_dir`, at most this many frames are kept per clip (stride widened when the
    clip is long); 0 keeps every frame at the sampling rate."""
    cache_dir: Path | None = None
    """A clip cache written by `python -m ndar cache-clips` (its folder holding `<view>/`): clips are
    read from it instead of decoded. It must match this run (frames, rate, geometry, clip table):
    any difference is an error that lists them."""

    LIMITS = {
        "k": ">= 2", "fold": ">= -1", "background_per_video": ">= 0",
        "num_workers": ">= 0", "cache_max_frames": ">= 0",
    }  # fmt: skip


@dataclass
class AugSection:
    rand_augment: str = "rand-m7-n4-mstd0.5-inc1"
    """timm RandAugment spec, the same random ops on every frame of a clip; '' disables it."""
    scale: tuple[float, float] = (0.08, 1.0)
    """Random resized crop: area fraction range."""
    ratio: tuple[float, float] = (0.75, 1.3333)
    """Random resized crop: aspect ratio range."""
    reprob: float = 0.25
    """Random erasing probability (one box through all frames, per-pixel noise)."""
    hflip: float = 0.0
    """Horizontal flip probability; a flipped clip's label is swapped via `taxonomy.FLIP_PAIRS`."""
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    label_smoothing: float = 0.1

    LIMITS = {
        "reprob": ">= 0, <= 1", "hflip": ">= 0, <= 1", "mixup": ">= 0", "cutmix": ">= 0",
        "mixup_prob": ">= 0, <= 1", "mixup_switch_prob": ">= 0, <= 1", "label_smoothing": ">= 0, < 1",
    }  # fmt: skip


@dataclass
class OptimSection:
    opt: str = "adamw"
    base_lr: float = 1e-3
    """Learning rate for a total batch of 256; the used lr is base_lr * total_batch / 256."""
    lr: float | None = None
    """Absolute learning rate (overrides base_lr scaling)."""
    min_lr: float = 1e-6
    warmup_lr: float = 1e-6
    warmup_epochs: float = 5.0
    weight_decay: float = 0.05
    layer_decay: float = 0.75
    """Layer-wise lr decay (timm, via the model's group_matcher); 1.0 disables it."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad: float = 0.0
    """Gradient clipping by global norm (DeepSpeed `gradient_clipping`); 0 = off."""
    fused: bool = False
    """torch's fused AdamW kernel (`fused=True`): one kernel per parameter group and step instead of a
    chain of foreach launches; for GPU runs, where the step is bound by kernel launches."""

    LIMITS = {
        "base_lr": "> 0", "lr": "> 0", "min_lr": ">= 0", "warmup_lr": ">= 0", "warmup_epochs": ">= 0",
        "weight_decay": ">= 0", "layer_decay": "> 0, <= 1", "eps": "> 0", "clip_grad": ">= 0",
    }  # fmt: skip


@dataclass
class TrainSection:
    epochs: int = 35
    batch_size: int = 8
    """Micro batch per process."""
    grad_accum: int = 1
    precision: str = "bf16"
    """bf16 | fp16 | fp32 (fp16 uses DeepSpeed's dynamic loss scaling)."""
    zero_stage: int = 1
    """DeepSpeed ZeRO stage 0, 1 or 2."""
    save_every: int = 1
    """Save a DeepSpeed checkpoint every N epochs (and always after the last)."""
    keep_checkpoints: int = 2
    """Keep the newest N checkpoint tags (older ones are deleted)."""
    max_steps_per_epoch: int = 0
    """Stop an epoch after this many optimizer steps (0 = full epoch); for smoke runs and benchmarks."""
    seed: int = 0
    torch_threads: int = 0
    """CPU threads of this process for torch ops (0 = torch's default). 1 is fastest for the tiny
    CPU configs on a busy 2-core machine, where two spinning OpenMP threads slow each other down."""
    log_every: int = 10
    """Write a train row to metrics.csv / TensorBoard every N optimizer steps."""
    compile: bool = False
    """Compile the model's forward and backward with torch.compile (inductor, through DeepSpeed's
    `engine.compile`): norms, GELU and bias adds fuse into the matmuls' neighbours, which cuts the
    kernel launches that bound a ViT step on a GPU. The first step (and the first of each new input
    shape, e.g. validation) pays a compile of tens of seconds; weights and checkpoints are unchanged."""

    LIMITS = {
        "epochs": ">= 1", "batch_size": ">= 1", "grad_accum": ">= 1", "precision": ("bf16", "fp16", "fp32"),
        "zero_stage": (0, 1, 2), "save_every": ">= 1", "keep_checkpoints": ">= 0", "max_steps_per_epoch": ">= 0",
        "torch_threads": ">= 0", "log_every": ">= 1",
    }  # fmt: skip


@dataclass
class EvalSection:
    every: int = 1
    """Validate every N epochs (and after the last)."""
    num_segments: int = 2
    """Temporal clips per validation sample (evenly spaced over the segment)."""
    num_crops: int = 3
    """Spatial crops per clip along the long side (1 = centre)."""
    batch_size: int = 4

    LIMITS = {"every": ">= 1", "num_segments": ">= 1", "num_crops": ">= 1", "batch_size": ">= 1"}


@dataclass
class DeepSpeedSection:
    backend: str = "auto"
    """torch.distributed backend: auto (nccl on GPU, gloo on CPU), nccl, gloo."""
    cpu_shm_comm: bool = False
    """Build DeepSpeed's CPU shared-memory all-reduce op (a C++ compile of ~60-100 s on first use;
    only inference all-reduce uses it, so training does not need it)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Extra keys merged (deep) into the generated DeepSpeed JSON."""

    LIMITS = {"backend": ("auto", "nccl", "gloo", "ccl", "mpi")}


@dataclass
class FinetuneConfig:
    """One fine-tuning run. `output` receives the model folder, checkpoints, logs and metrics."""

    output: Path = STANDALONE.finetune("tiny", "rear")
    overwrite: bool = False
    """Re-run from scratch even when `output` holds a finished run (default: skip it)."""
    resume: str = "auto"
    """auto: continue from the newest checkpoint in `output/checkpoints` if any; none: start fresh;
    or a checkpoint folder `<run>/checkpoints/<tag>`."""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    aug: AugSection = field(default_factory=AugSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    deepspeed: DeepSpeedSection = field(default_factory=DeepSpeedSection)

    def validate(self) -> None:
        """Raise ConfigError naming the field when a value cannot work."""
        t = self.train
        if t.precision not in ("bf16", "fp16", "fp32"):
            raise ConfigError(f"train.precision: expected bf16, fp16 or fp32, got {t.precision!r}")
        if t.zero_stage not in (0, 1, 2):
            raise ConfigError(
                f"train.zero_stage: expected 0, 1 or 2 (stage 3 shards weights), got {t.zero_stage}"
            )
        if t.batch_size < 1 or t.grad_accum < 1 or t.epochs < 1:
            raise ConfigError("train.batch_size, train.grad_accum and train.epochs must be >= 1")
        mixing = self.aug.mixup > 0 or self.aug.cutmix > 0
        if mixing and self.aug.mixup_prob > 0 and t.batch_size % 2:
            raise ConfigError(
                f"train.batch_size must be even with mixup/cutmix (timm Mixup), got {t.batch_size}"
            )
        if self.data.root is None and self.data.clips is None:
            raise ConfigError("data.root or data.clips must be set")
        from ndar.video.geometry import resolve_crop_box

        try:
            resolve_crop_box(self.data.crop, self.data.view)
        except ValueError as err:
            raise ConfigError(f"data.{err}") from err
        from ndar.video.geometry import RESIZE_RULES

        if self.data.resize not in RESIZE_RULES:
            raise ConfigError(f"data.resize: expected one of {list(RESIZE_RULES)}, got {self.data.resize!r}")
        if self.eval.num_segments < 1 or self.eval.num_crops < 1:
            raise ConfigError("eval.num_segments and eval.num_crops must be >= 1")
        if self.deepspeed.backend not in ("auto", "nccl", "gloo", "ccl", "mpi"):
            raise ConfigError(
                f"deepspeed.backend: expected auto, nccl, gloo, ccl or mpi, got {self.deepspeed.backend!r}"
            )
