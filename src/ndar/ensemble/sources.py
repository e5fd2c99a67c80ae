"""Prediction sources: load the heads' folders, and turn one feature set into a source.

A source (docs/interfaces.md) holds per-second curves and segments for `oof` (every A1 session) and
`test` (A2). The six single feature sets become sources too, so the ensemble can fuse them and the
report can show how each one scores on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ndar.formats.features import feature_files_digest
from ndar.formats.predictions import read_predictions, segments_frame, write_predictions
from ndar.postprocess.simple import one_segment_per_class
from ndar.utils.io import write_json
from ndar.utils.progress import progress as tqdm

log = logging.getLogger(__name__)


@dataclass
class PredictionSource:
    """One source in memory: curves {session: (S, 16)} and segments per split."""

    name: str
    kind: str  # "head" | "feature_set" | "other"
    oof_curves: dict[str, np.ndarray]
    oof_segments: pd.DataFrame
    test_curves: dict[str, np.ndarray]
    test_segments: pd.DataFrame


def load_source(name: str, folder: str | Path, kind: str = "other") -> PredictionSource:
    """Read both splits of a source folder; a missing file is an error naming it."""
    oof_curves, oof_segments = read_predictions(folder, "oof")
    test_curves, test_segments = read_predictions(folder, "test")
    log.info("source %s (%s): %d OOF and %d test sessions", name, kind, len(oof_curves), len(test_curves))
    return PredictionSource(name, kind, oof_curves, oof_segments, test_curves, test_segments)


def _feature_curve(path: Path) -> np.ndarray:
    """Per-second (S, 16) curve of one feature file's window probabilities."""
    from ndar.formats.features import video_duration
    from ndar.postprocess.curves import windows_to_curve

    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}")
    with np.load(path) as data:
        missing = [k for k in ("probs", "t_start", "t_end") if k not in data.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {missing}; found {data.files}")
        probs, t_start, t_end = data["probs"], data["t_start"], data["t_end"]
    if probs.ndim != 2 or probs.shape[1] != 16 or len(probs) != len(t_start):
        raise ValueError(
            f"{path}: probs {probs.shape} and t_start {t_start.shape}: expected (N, 16) and (N,)"
        )
    return windows_to_curve(t_start, t_end, probs, video_duration(path, t_end))


def feature_set_curves(
    features_root: str | Path, feature_set: str, data_root: str | Path, split: str, labels_dir=None
) -> dict[str, np.ndarray]:
    """{session key: (S, 16)} for every session of `split` from `<features>/<track>/<view>/<stem>.npz`."""
    from ndar.data.discover import load_dataset
    from ndar.formats.features import feature_path

    index = load_dataset(data_root, split=split, labels_dir=labels_dir)
    curves = {}
    for session in tqdm(index.sessions, desc=f"{feature_set} {split}", leave=False):
        if split.upper() == "A1" and not session.segments:
            continue  # the heads leave unlabelled A1 sessions out too
        curves[session.key] = _feature_curve(feature_path(Path(features_root), feature_set, session))
    return curves


def feature_set_source(
    features_root: str | Path,
    feature_set: str,
    data_root: str | Path,
    out_dir: str | Path,
    labels_dir: str | Path | None = None,
    threshold: float = 0.3,
    smooth: int = 1,
) -> Path:
    """Write the prediction source of one feature set (e.g. "k400_vith/rear") into `out_dir`.

    `oof` = the A1 sessions, `test` = the A2 sessions; curves are the backbone's window softmax
    resampled to seconds, segments come from `ndar.postprocess.one_segment_per_class`. The A1
    curves are out-of-fold only if the backbone itself was fine-tuned per fold; otherwise they are
    in-sample and their OOF score is optimistic (said in docs/ensemble.md).
    """
    out_dir = Path(out_dir)
    for split, name in (("A1", "oof"), ("A2", "test")):
        curves = feature_set_curves(features_root, feature_set, data_root, split, labels_dir)
        segments = segments_frame(
            {k: one_segment_per_class(c, threshold=threshold, smooth=smooth) for k, c in curves.items()}
        )
        write_predictions(out_dir, name, curves, segments)
    meta = {"kind": "feature_set", "feature_set": feature_set}
    write_json(
        out_dir / "source.json", {**meta, "features_sha256": feature_set_digest(features_root, feature_set)}
    )
    return out_dir


def feature_set_digest(features_root: str | Path, feature_set: str) -> str:
    """Hash of the feature set's files (`feature_files_digest`): a source built from other feature
    files is rebuilt, not reused."""
    return feature_files_digest([Path(features_root) / feature_set])
