"""Feature files -> `FeatureVideo`s: the views of each session aligned on time, with A1 targets.

Reads `<features>/<track>/<view>/<video_stem>.npz` (docs/interfaces.md, "Feature files") for every
session that `ndar.data.discover.load_dataset` finds. All views of a session were cut into the same
windows by the extractor, so alignment is a check, not a resampling: a session whose views have
different window counts is an error naming the files and the counts (or, with `trim=True`, trimmed to
the common length with a warning). A missing feature file is an error naming the file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ndar.data.discover import load_dataset
from ndar.data.records import SessionRecord
from ndar.heads.base import FeatureVideo
from ndar.taxonomy import canonical_view

log = logging.getLogger(__name__)

# Keys the extractor's sidecar JSON may use for the frame count and the frame rate.
FRAME_COUNT_KEYS = ("frame_count", "num_frames", "n_frames", "frames")
FPS_KEYS = ("fps", "frame_rate")


class FeatureAlignmentError(ValueError):
    """The views of one session do not cover the same windows."""


def parse_feature_set(name: str) -> tuple[str, str]:
    """'k400_vith/rear' -> ('k400_vith', 'rear'); the view may use any official spelling."""
    parts = name.strip().strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"feature set {name!r} is not of the form '<track>/<view>', e.g. 'k400_vith/rear'")
    return parts[0], canonical_view(parts[1])


def stream_names(feature_sets: list[str]) -> dict[str, str]:
    """feature set -> stream name: the view when all sets come from one track, else the set name."""
    parsed = {s: parse_feature_set(s) for s in feature_sets}
    if len(parsed) != len(feature_sets):
        raise ValueError(f"feature sets repeat a name: {feature_sets}")
    tracks = {track for track, _ in parsed.values()}
    if len(tracks) == 1:
        return {s: view for s, (_, view) in parsed.items()}
    return {s: f"{track}/{view}" for s, (track, view) in parsed.items()}


def feature_path(features_root: Path, feature_set: str, session: SessionRecord) -> Path:
    """Where the feature file of `session`'s view of `feature_set` must be."""
    track, view = parse_feature_set(feature_set)
    if view not in session.views:
        raise FileNotFoundError(
            f"session {session.key} has no {view} video, so feature set {feature_set} cannot be read "
            f"(views found: {sorted(session.views)})"
        )
    return Path(features_root) / track / view / f"{session.views[view].stem}.npz"


INPUTS = ("features", "probs", "log_probs")
LOG_FLOOR = 1e-4  # log_probs = log(max(p, floor)): a bounded input range for the heads


def read_feature_file(path: Path, inputs: str = "features") -> dict[str, np.ndarray]:
    """The window inputs as "features" (N, D) float32, t_start, t_end (N,) float64.

    `inputs`: "features" (the backbone's pooled embedding), "probs" (its window class probabilities)
    or "log_probs". Probabilities share one meaning across backbones, so they are what a head must
    read from merged fold-model folders (`ndar.extract.merge`), whose embeddings do not share a space.
    Raises naming the file on bad content.
    """
    if inputs not in INPUTS:
        raise ValueError(f"inputs={inputs!r}; expected one of {INPUTS}")
    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}")
    key = "features" if inputs == "features" else "probs"
    with np.load(path) as data:
        missing = [k for k in (key, "t_start", "t_end") if k not in data.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {missing}; found {data.files}")
        values = data[key].astype(np.float32)
        if inputs == "log_probs":
            values = np.log(np.maximum(values, LOG_FLOOR))
        out = {
            "features": values,
            "t_start": data["t_start"].astype(np.float64),
            "t_end": data["t_end"].astype(np.float64),
        }
        aug_key = f"{key}_aug"  # augmented copies (K, N, D), written when extraction was asked for them
        if aug_key in data.files:
            aug = data[aug_key].astype(np.float32)
            out["aug"] = np.log(np.maximum(aug, LOG_FLOOR)) if inputs == "log_probs" else aug
    n = len(out["t_start"])
    if out["features"].ndim != 2 or out["features"].shape[0] != n or len(out["t_end"]) != n:
        raise ValueError(
            f"{path}: features {out['features'].shape}, t_start ({n},), t_end {out['t_end'].shape}: "
            "expected (N, D), (N,), (N,)"
        )
    if "aug" in out and (out["aug"].ndim != 3 or out["aug"].shape[1:] != out["features"].shape):
        raise ValueError(
            f"{path}: {aug_key} {out['aug'].shape}: expected (K, {n}, {out['features'].shape[1]})"
        )
    return out


def video_duration(npz_path: Path, t_end: np.ndarray) -> float:
    """Seconds of the video: frame count / fps from the sidecar JSON, else the last window's end."""
    meta_path = npz_path.with_suffix(".json")
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        frames = next((meta[k] for k in FRAME_COUNT_KEYS if isinstance(meta.get(k), (int, float))), None)
        fps = next((meta[k] for k in FPS_KEYS if isinstance(meta.get(k), (int, float))), None)
        if frames and fps:
            return float(frames) / float(fps)
    return float(t_end.max()) if len(t_end) else 0.0


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
    `read_feature_file`).

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
