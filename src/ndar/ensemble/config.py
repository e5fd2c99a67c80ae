"""Typed config of the ensemble stage (YAML: configs/ensemble/default.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ndar.config import ConfigError
from ndar.ensemble.stacker import StackerConfig
from ndar.ensemble.tuning import TuningConfig
from ndar.postprocess.priors import PriorParams


@dataclass
class SourceSpec:
    """One prediction source folder (docs/interfaces.md)."""

    name: str
    """short unique name, used in weights and the report (e.g. "tim", "actionformer")"""
    path: Path
    """the folder holding oof/ and test/"""
    kind: str = "head"
    """"head" | "feature_set" | "other" (the report groups by it)"""


@dataclass
class FusionConfig:
    """Which fusions run; the tuner sets their weights (0 switches one off)."""

    curve: bool = True
    """weighted pooling of the sources' per-second curves"""
    curve_rule: Literal["mean", "geometric"] = "geometric"
    """how the curves are pooled: arithmetic `mean` or `geometric` (log-linear, renormalised per
    second; chosen over seeds 0-2: docs/ensemble.md, ndar.ensemble.fusion)"""
    segment: bool = True
    """score-weighted fusion of the sources' segments, as extra candidates"""
    segment_weight: float = 1.0
    """the untuned weight of the segment-fusion candidates beside the fused curve (0 = curve
    candidates only); the tuner's `weights` level may change it"""
    stacker: bool = True
    """LightGBM stacker over all curves, fused as one more curve"""
    segment_min_iou: float = 0.0
    """segments cluster when they overlap with at least this tIoU (0 = any overlap)"""

    def __post_init__(self) -> None:
        if self.segment_weight < 0:
            raise ConfigError(f"segment_weight must be >= 0, got {self.segment_weight}")
        if self.segment and not self.curve and not self.stacker and self.segment_weight == 0:
            raise ConfigError("segment_weight 0 with curve and stacker off leaves nothing to predict")


@dataclass
class EnsembleConfig:
    """Fuse prediction sources, tune on A1 OOF mOS, write the submission and its report."""

    run_name: str = "ensemble"
    """the run's folder name under `out_dir`"""
    out_dir: Path = Path("submissions")
    """where run folders go"""
    data_root: Path | None = None
    """dataset root (A1/ with labels, A2/ with video_ids.csv): A1 ground truth and A2 video ids"""
    labels_dir: Path | None = None
    """labels folder when the labels are not inside A1/"""
    a2_ground_truth: Path | None = None
    """A2 ground truth in submission format; default <data_root>/A2_ground_truth.txt when present"""
    sources: list[SourceSpec] = field(default_factory=list)
    """prediction sources of the heads (and any others)"""
    features_root: Path | None = None
    """extracted features; with `feature_sets`, each set becomes a source"""
    feature_sets: list[str] = field(default_factory=list)
    """feature sets ("<track>/<view>") turned into single-set sources"""
    fusion: FusionConfig = field(default_factory=FusionConfig)
    """which fusions run"""
    stacker: StackerConfig = field(default_factory=StackerConfig)
    """LightGBM stacker settings"""
    priors: PriorParams = field(default_factory=PriorParams)
    """post-processing start values (the tuner changes them)"""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """the search"""
    seed: int = 0
    """seed of the stacker and of the tuner's parameter order"""
    report_timelines: int = 32
    """at most this many videos get a timeline plot in report.html, A2 first (the real A2 has 30; 0 = none)"""
    overwrite: bool = False
    """redo a run whose folder holds outputs of other settings (without it such a run is refused)"""
