"""ActionFormer settings (the `actionformer:` section of a heads config)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ActionFormerConfig:
    """Model, training and inference settings; defaults follow the reference recipe at small scale."""

    # input
    fusion: str = (
        "concat"  # how views are fused: "concat" (features concatenated) | "sum" (projected, summed)
    )
    input_dropout: float = 0.0  # dropout on the fused input features
    # model
    embed_dim: int = 256  # width of the embedding and the transformer
    embed_kernel: int = 3  # kernel of the masked conv embedding layers
    embed_layers: int = 2  # masked conv + LayerNorm + ReLU layers before the transformer
    num_heads: int = 4  # attention heads
    window: int = 19  # local self-attention window (positions; odd); <= 1: global attention
    mlp_ratio: float = 4.0  # transformer MLP width / embed_dim
    stem_blocks: int = 2  # transformer blocks at stride 1
    levels: int = 6  # pyramid levels (strides 1, 2, ..., 2**(levels-1)); levels-1 downsampling blocks
    dropout: float = 0.0  # dropout after the attention projection and in the MLP (official train_cfg.dropout)
    drop_path: float = 0.1  # stochastic depth, the same on every block; > 0 also adds LayerScale (init 1e-4)
    # on both residual branches of every block, as the official AffineDropPath does
    head_dim: int = 256  # width of the classification and regression heads
    head_layers: int = 3  # conv layers per head (the last one predicts)
    head_kernel: int = 3  # kernel of the head convs
    prior_prob: float = 0.01  # classification bias initialised to this prior
    # label assignment and losses
    regression_ranges: list[list[float]] = field(
        default_factory=lambda: [[0, 4], [4, 8], [8, 16], [16, 32], [32, 64], [64, 10000]]
    )  # per level, in feature steps: which action lengths each level predicts
    center_radius: float = 1.5  # centre sampling radius, in strides of the level
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    reg_weight: float = 1.0  # weight of the DIoU loss
    loss_norm_init: float = 100.0  # initial running count of positives
    loss_norm_momentum: float = 0.9  # EMA momentum of the running count of positives
    # optimisation
    epochs: int = 30
    warmup_epochs: int = 5
    batch_size: int = 2
    lr: float = 1e-4
    min_lr: float = 1e-8
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # model EMA decay (0 disables EMA)
    eval_every: int = 1  # validation loss every this many epochs and after the last (0: never)
    max_seq_len: int = 2304  # longer training sequences are randomly cropped to this many steps
    crop_ratio: list[float] = field(default_factory=lambda: [0.9, 1.0])  # every training sequence
    # no longer than max_seq_len is cropped to a random length in this fraction of its own (official
    # crop_ratio); [] disables it
    crop_keep: float = 0.5  # an action cut by a crop is kept if this fraction of it stays inside
    # (official trunc_thresh)
    device: str = "auto"  # "auto" (cuda if available) | "cpu" | "cuda"
    cpu_threads: int = 0  # torch threads while fitting/predicting on CPU (0: leave torch's setting); 1 is
    # fastest for tiny models on a busy machine (measured: 2 threads were 10x slower under load)
    # inference
    pre_nms_thresh: float = 0.001  # candidates below this score are dropped
    pre_nms_topk: int = 2000  # candidates kept per level before Soft-NMS
    nms_sigma: float = 0.5  # Gaussian Soft-NMS sigma
    nms_min_score: float = 0.001  # Soft-NMS drops segments decayed below this
    max_segments: int = 200  # segments kept per video
    min_duration: float = 0.05  # segments shorter than this (seconds) are dropped

    # both heads use the same names for the same settings; the old names are refused naming the new
    RENAMED = {"val_every": "eval_every", "min_score": "nms_min_score"}
    # refused when loaded, naming the field (ndar.config.check_limits)
    LIMITS = {
        "epochs": ">= 1", "warmup_epochs": ">= 0", "batch_size": ">= 1", "lr": "> 0", "min_lr": ">= 0",
        "weight_decay": ">= 0", "grad_clip": ">= 0", "ema_decay": ">= 0, < 1", "eval_every": ">= 0",
        "max_seq_len": ">= 1", "crop_keep": ">= 0, <= 1", "device": r"re:auto|cpu|cuda(:\d+)?",
        "cpu_threads": ">= 0",
    }  # fmt: skip
