"""Feature files -> `FeatureVideo`s: the views of each session aligned on time, with A1 targets.

Reads `<features>/<track>/<view>/<video_stem>.npz` (`ndar.formats.features`) for every
session that `ndar.data.discover.load_dataset` finds. All views of a session were cut into the same
windows by the extractor, so alignment is a check, not a resampling: a session whose views have
different window counts is an error naming the files and the counts (or, with `trim=True`, trimmed to
the common length with a warning). A missing feature file is an error naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ndar.data.discover import load_dataset
from ndar.data.records import SessionRecord
from ndar.formats.features import (
    feature_path,
    read_feature_file,
    stream_names,
    video_duration,
)
from ndar.heads.base import FeatureVideo

log = logging.getLogger(__name__)


class FeatureAlignmentError(ValueError):
    """The views of one session do not cover the same windows."""


def align_streams(key: str, files: dict[str, Path], arrays: dict[str, dict], trim: bool) -> int:
    """Check the streams of one session share the window count; return it (trimmed if allowed)."""
    lengths = {name: len(a["t_start"]) for name, a in arrays.items()}
    common = min(lengths.values())
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{files[n]} has {c} windows" for n, c in lengths.items())
        if not trim:
            raise FeatureAlignmentError(
                f"session {key}: views have different lengths ({detail}); re-extract them or pass "
                "trim=True (config `trim_mismatch: true`) to cut them to the common length"
            )
        log.warning(
            "session %s: views have different lengths (%s); trimmed to %d windows", key, detail, common
        )
    first = next(iter(arrays.values()))
    for name, a in arrays.items():
        drift = float(np.abs(a["t_start"][:common] - first["t_start"][:common]).max()) if common else 0.0
        if drift > 0.5:
            log.warning(
                "session %s: window times of %s differ by up to %.2f s from the first view",
                key,
                files[name],
                drift,
            )
    return common


def load_session(
    session: SessionRecord,
    features_root: Path,
    feature_sets: list[str],
    names: dict[str, str],
    trim: bool,
    inputs: str = "features",
) -> FeatureVideo:
    files = {names[s]: feature_path(features_root, s, session) for s in feature_sets}
    arrays = {name: read_feature_file(path, inputs) for name, path in files.items()}
    n = align_streams(session.key, files, arrays, trim)
    first_name = names[feature_sets[0]]
    first = arrays[first_name]
    video = FeatureVideo(
        key=session.key,
        streams={name: a["features"][:n] for name, a in arrays.items()},
        t_start=first["t_start"][:n],
        t_end=first["t_end"][:n],
        duration=video_duration(files[first_name], first["t_end"]),
        segments=list(session.segments),
        split=session.split,
        aug_streams={name: a["aug"][:, :n] for name, a in arrays.items() if "aug" in a},
    )
    video.check()
    return video


def load_feature_videos(
    data_root: str | Path,
    features_root: str | Path,
    feature_sets: list[str],
    split: str,
    labels_dir: str | Path | None = None,
    trim: bool = False,
    inputs: str = "features",
) -> list[FeatureVideo]:
    """Every session of `split` ("A1" | "A2") as a `FeatureVideo`, sorted by key (`inputs`: see
    `ndar.formats.features.read_feature_file`).

    A1 sessions without any label are left out with a warning (they would train as pure background).
    """
    if not feature_sets:
        raise ValueError(
            "no feature sets given; expected names such as ['k400_vith/rear', 'k400_vith/dashboard']"
        )
    names = stream_names(list(feature_sets))
    index = load_dataset(data_root, split=split, labels_dir=labels_dir)
    for issue in index.errors:
        log.warning("dataset issue: %s", issue)
    videos = []
    for session in index.sessions:
        if split.upper() == "A1" and not session.segments:
            log.warning("session %s has no labels; left out of the heads' A1 data", session.key)
            continue
        videos.append(load_session(session, Path(features_root), list(feature_sets), names, trim, inputs))
    videos.sort(key=lambda v: v.key)
    log.info("%s: %d sessions with feature sets %s", split, len(videos), list(feature_sets))
    return videos
