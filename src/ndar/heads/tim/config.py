"""TIM options. Names follow the flags of the public TIM code (num_feats, feat_stride, feat_gap,
d_model, lambda_drloc, mixup_alpha, ...) so a reference recipe can be copied over field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TimConfig:
    """The `head` section of a TIM run (configs/heads/tim*.yaml)."""

    mode: str = "recognition"
    """"recognition": classify intervals (softmax, cross-entropy), the official TIM recognition model;
    "detection": ndar's own detector on the same network (a pyramid of interval queries per window,
    sigmoid focal classification and (start, end) regression; not the official TIM detection,
    docs/tim.md)."""

    # --- sliding windows -------------------------------------------------------------------
    num_feats: int = 50
    """Feature tokens per stream in one window."""
    feat_stride: int = 1
    """Take every `feat_stride`-th feature inside a window (reference: context hop)."""
    feat_gap: float = 0.0
    """Seconds between consecutive features; 0 = the median step of `t_start` in the training videos.
    A window lasts num_feats * feat_stride * feat_gap seconds."""
    window_stride: float = 1.0
    """Seconds between windows at test time (a query's logits are averaged over every window containing it)."""
    train_window_stride: float = 2.0
    """Seconds between windows during training."""

    # --- model -----------------------------------------------------------------------------
    d_model: int = 512
    """Width of the feature projection and of the time-interval encoding; tokens are their
    concatenation, so the transformer is 2 * d_model wide (as in the reference)."""
    num_heads: int = 8
    num_layers: int = 4
    feedforward_scale: int = 4
    """Feed-forward width = feedforward_scale * d_model."""
    dropout: float = 0.1
    """Dropout inside the transformer encoder layers."""
    feat_dropout: float = 0.5
    """Dropout on the input features before their projection."""
    seq_dropout: float = 0.5
    """Dropout on the whole token sequence (features and queries) before the encoder."""

    # --- queries ---------------------------------------------------------------------------
    min_query: float = 0.2
    """Recognition training: a ground-truth interval cut by the window edge is queried only if at
    least this many seconds of it lie inside the window."""
    random_queries: int = 8
    """Recognition training: extra random intervals per window, labelled by the class covering most of them."""
    background_chunk: float = 20.0
    """Recognition training: gaps between activities become class-0 queries, cut into pieces of at most this many seconds."""
    pyramid_base: float = 0.01
    """Smallest pyramid query as a fraction of the window; level k has size pyramid_base * 2^k."""
    pyramid_levels: int = 7
    """Number of pyramid levels (sizes above the whole window are dropped)."""
    pyramid_overlap: float = 0.5
    """Stride of a pyramid level as a fraction of its size (0.5 = half the size)."""
    max_queries: int = 512
    """Queries fed with one window at once (more are split into chunks; queries are independent)."""

    # --- detection targets and losses ------------------------------------------------------
    iou_threshold: float = 0.5
    """A pyramid query is labelled with its best-IoU activity at or above this tIoU, else background."""
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    lambda_reg: float = 1.0
    """Weight of the L1 (start, end) regression loss (detection)."""

    # --- regularisation --------------------------------------------------------------------
    lambda_drloc: float = 0.3
    """Weight of the DRLoc loss (predict the normalised distance of two feature tokens)."""
    m_drloc: int = 32
    """Token pairs sampled per window for DRLoc."""
    mixup_alpha: float = 0.2
    """Mixup of features and time encodings with Beta(alpha, alpha); 0 disables it."""
    label_smoothing: float = 0.2
    """Label smoothing of the recognition cross-entropy."""
    augment_copies: bool = False
    """Train on the features' augmented copies (written by `extract.augment_copies`): each feature
    slot of each training window draws one copy per step, clean included (official TIM); validation
    and prediction use the clean copy. Training videos without copies are an error when on."""

    # --- optimisation ----------------------------------------------------------------------
    lr: float = 1e-4
    weight_decay: float = 1e-4
    epochs: int = 100
    warmup_epochs: int = 2
    """Warm-up epochs of the cosine schedule."""
    batch_size: int = 64
    grad_clip: float = 1.0
    """Max gradient norm; 0 disables clipping."""
    ema_decay: float = 0.0
    """Exponential moving average of the weights (timm ModelEmaV3 with warm-up, as ActionFormer's);
    predictions, validation accuracy and the saved model use the average. 0 = off (the official
    TIM has none)."""

    # --- post-processing ------------------------------------------------------------------
    recognition_proposals: str = "curve"
    """Recognition-mode segments: "curve" = runs of the per-second curve above each of
    `proposal_thresholds`, classified by TIM on their exact interval; "pyramid" = the pyramid queries."""
    proposal_thresholds: list[float] = field(default_factory=lambda: [0.2, 0.35, 0.5, 0.65, 0.8])
    proposal_min_len: float = 1.0
    """Shortest curve run (seconds) kept as a proposal."""
    proposal_score: str = "prob"
    """Score of a curve proposal: "prob" = TIM's probability of the run's class on the interval
    (the recogniser's own judgement); "prob_x_curve" = that times the run's mean curve value. The
    product favours short peaky runs (higher mean), so the best segment per class came out too
    short: on the synthetic main job's A1 OOF, "prob" gave mOS 0.329 / 0.263 / 0.354 against
    0.315 / 0.250 / 0.327 (k400 / hybrid / ego; docs/tim.md)."""
    pre_nms_topk: int = 2000
    """Candidates per video kept (by score) before Soft-NMS."""
    nms_sigma: float = 0.5
    nms_min_score: float = 0.001
    max_segments: int = 200
    """Segments kept per video after Soft-NMS."""

    # --- run -------------------------------------------------------------------------------
    device: str = "auto"
    """"auto" (cuda if available), "cpu" or "cuda"."""
    cpu_threads: int = 0
    """torch threads on CPU (0 = leave torch's default); 1 is fastest on a small shared CPU."""
    amp: bool = True
    """bfloat16 autocast on cuda (ignored on CPU)."""
    eval_every: int = 1
    """Validate every this many epochs (0 = only after the last one)."""
    checkpoint_every: int = 1
    """Write out_dir/checkpoint.pt every this many epochs (resume point)."""

    # both heads use the same names for the same settings; the old name is refused naming the new
    RENAMED = {"warmup": "warmup_epochs"}
    # refused when loaded, naming the field (ndar.config.check_limits); `check` adds the rules
    # across fields
    LIMITS = {
        "lr": "> 0", "weight_decay": ">= 0", "epochs": ">= 1", "warmup_epochs": ">= 0", "batch_size": ">= 1",
        "grad_clip": ">= 0", "ema_decay": ">= 0, < 1", "device": r"re:auto|cpu|cuda(:\d+)?", "cpu_threads": ">= 0", "eval_every": ">= 0",
        "checkpoint_every": ">= 0",
    }  # fmt: skip

    def check(self) -> None:
        """Raise a clear error for values the model cannot use."""
        if self.recognition_proposals not in ("curve", "pyramid"):
            raise ValueError(
                f"tim.recognition_proposals must be 'curve' or 'pyramid', got {self.recognition_proposals!r}"
            )
        if self.proposal_score not in ("prob", "prob_x_curve"):
            raise ValueError(
                f"tim.proposal_score must be 'prob' or 'prob_x_curve', got {self.proposal_score!r}"
            )
        if self.mode not in ("recognition", "detection"):
            raise ValueError(f"tim.mode must be 'recognition' or 'detection', got {self.mode!r}")
        if (2 * self.d_model) % self.num_heads:
            raise ValueError(
                f"tim: 2 * d_model ({2 * self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        for name in ("num_feats", "feat_stride", "num_layers", "batch_size", "epochs", "max_queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"tim.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("window_stride", "train_window_stride", "pyramid_base", "pyramid_overlap"):
            if getattr(self, name) <= 0:
                raise ValueError(f"tim.{name} must be > 0, got {getattr(self, name)}")
