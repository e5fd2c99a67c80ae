"""`BaselineConfig`: the simple per-second classifier that the real pipeline must beat."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ndar.config import ConfigError
from ndar.layout import STANDALONE
from ndar.taxonomy import VIEWS


@dataclass
class BaselineConfig:
    """Downsampled frame statistics per second -> scikit-learn classifier -> one segment per class."""

    LIMITS = {
        "fusion": ("late", "early"),
        "classifier": ("logreg", "random_forest"),
        "thumb_width": ">= 1",
        "thumb_height": ">= 1",
        "context_s": ">= 0",
        "pca": ">= 1",
        "oof_folds": ">= 0",
    }

    data_root: Path = Path("data/synthetic")  # dataset root with A1/ and A2/
    out: Path = STANDALONE.baseline  # writes submission.txt, metrics.json, config.yaml, curves.npz
    ground_truth: Path | None = None  # A2 ground truth (default <data_root>/A2_ground_truth.txt)
    views: list[str] = field(default_factory=lambda: ["rear", "dashboard"])
    thumb_width: int = 16  # grey thumbnail size the frames are shrunk to
    thumb_height: int = 12
    fusion: str = (
        "late"  # "late": one classifier per view, probabilities averaged; "early": features concatenated
    )
    context_s: int = 2  # also give each second the mean features of +-context_s seconds around it
    normalise_per_video: bool = True  # subtract each video's mean thumbnail (camera / driver offsets)
    classifier: str = "logreg"  # "logreg" or "random_forest"
    pca: int = 64  # logistic regression: principal components kept (after standardising)
    C: float = 0.5  # logistic regression inverse regularisation
    max_iter: int = 2000  # logistic regression solver iterations (500 did not converge on synth data)
    n_estimators: int = 200  # random forest trees
    threshold: float = 0.25  # post-processing: class probability a second must reach
    smooth: int = 3  # post-processing: moving average over seconds
    min_len: float = 1.0  # post-processing: shortest segment kept (seconds)
    oof_folds: int = 3  # also score A1 out of fold (k-fold by driver, the heads' split); 0 = off
    fold_seed: int = 0  # seed of the driver -> fold assignment (the heads' `fold_seed`)
    seed: int = 0
    workers: int = 2  # processes decoding videos in parallel
    overwrite: bool = False  # redo a run whose `out` holds outputs of other settings (else refused)

    def __post_init__(self) -> None:
        """Why here: `run` records its settings before decoding every video, so a wrong view found
        only then would leave them behind and make the corrected run look like other settings."""
        if not self.views or len(set(self.views)) != len(self.views) or not set(self.views) <= set(VIEWS):
            raise ConfigError(f"views: expected distinct views from {list(VIEWS)}, got {self.views!r}")
        if self.oof_folds == 1:  # one fold has no driver to train on
            raise ConfigError("oof_folds: expected 0 (off) or >= 2, got 1")
