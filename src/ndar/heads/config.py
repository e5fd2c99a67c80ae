"""Config of a heads run (`python -m ndar heads`): the run's settings and the selected head's section.

The head's own hyperparameters (ActionFormerConfig, TimConfig) live beside each head and are typed
here through the head registry (`head_config`), so a wrong key in a head section is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ndar.config import from_dict
from ndar.heads.base import get_head


@dataclass
class HeadsConfig:
    """One heads run: which head, on which feature sets, how many folds, where to write."""

    head: str = "actionformer"  # registered head name: "actionformer" | "tim"
    data_root: Path = Path("data/synthetic")  # dataset root holding A1/ and A2/
    labels_dir: Path | None = None  # label CSVs kept outside A1/ (None: inside the driver folders)
    features_root: Path = Path("runs/features")  # <features>/<track>/<view>/<video_stem>.npz
    feature_sets: list[str] = field(default_factory=lambda: ["k400_vith/rear", "k400_vith/dashboard"])
    trim_mismatch: bool = (
        False  # cut views of different lengths to the common length (warning) instead of failing
    )
    inputs: str = "features"  # what each window gives the head: features | probs | log_probs (see data.py)
    # More training sequences: the same views of these tracks for the same sessions (the run's own
    # track is skipped, so the main job can list every track). Only with probs / log_probs, which mean
    # the same thing whatever the backbone. A fold trains on them for its own training sessions only;
    # predictions and metrics stay on `feature_sets` (docs/heads.md, "Training on other tracks").
    extra_train_tracks: list[str] = field(default_factory=list)
    folds: int = 5  # k of the k-fold split by driver
    fold_seed: int = 0  # seed of the driver -> fold assignment
    seed: int = 0  # training seed; fold k trains with seed + k
    only_folds: list[int] = field(default_factory=list)  # train just these folds (empty: all); OOF needs all
    predict_test: bool = True  # also predict A2 (test/) with every fold model
    merge_sigma: float = 0.5  # Soft-NMS sigma when pooling the fold models' A2 segments
    max_segments: int = 200  # segments kept per video after merging fold models
    tious: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5])  # mAP thresholds
    curve_threshold: float = 0.3  # metrics only: threshold of the one-segment-per-class rule on curves
    curve_smooth: int = 1  # metrics only: moving-average seconds before that rule
    out: Path = Path("runs/heads/actionformer")  # output folder (the prediction source)
    # train again over fold models of other settings in `out` (every fold is removed first); without it
    # such a run is refused, listing the changes (ndar.resume)
    overwrite: bool = False
    actionformer: dict[str, Any] = field(default_factory=dict)  # ActionFormerConfig fields
    tim: dict[str, Any] = field(default_factory=dict)  # TimConfig fields


def head_config(cfg: HeadsConfig) -> Any:
    """The selected head's typed config, built from its section (unknown keys are an error)."""
    entry = get_head(cfg.head)
    section = getattr(cfg, cfg.head, None) or {}  # a head without a section here runs on its defaults
    return from_dict(entry.config_cls, dict(section), where=cfg.head)
