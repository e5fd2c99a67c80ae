"""Feature files, read side: `<features>/<track>/<view>/<video_stem>.npz` + `.json` (docs/interfaces.md).

The extractor writes them (`ndar.extract.outputs.write_features`); the heads and the ensemble read
them through this module, which imports neither torch nor the extractor, so reading features stays
cheap. Feature sets are named `<track>/<view>`; a file of a session is found from its video stem.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ndar.data.records import SessionRecord
from ndar.taxonomy import canonical_view

# Keys the extractor's sidecar JSON may use for the frame count and the frame rate.
FRAME_COUNT_KEYS = ("frame_count", "num_frames", "n_frames", "frames")
FPS_KEYS = ("fps", "frame_rate")


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


# What np.load raises on a truncated or foreign file (its own message names no file, and for a
# non-zip file it misleadingly speaks of pickled data).
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def load_npz(
    path: Path, keys: tuple[str, ...] | None = None, what: str = "feature file"
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays `keys` (all when None) that an .npz file holds, and the names of all it holds.

    Only the asked arrays are read (a probs reader skips the large embeddings). A corrupt or
    truncated file raises ValueError naming it."""
    try:
        with np.load(path) as data:
            wanted = data.files if keys is None else [k for k in keys if k in data.files]
            return {key: data[key] for key in wanted}, list(data.files)
    except UNREADABLE as err:
        raise ValueError(f"{path}: unreadable {what} (not a complete .npz: {err}); remake it") from None


def read_sidecar(meta_path: Path) -> dict:
    """The sidecar JSON of a feature file; a broken one raises ValueError naming it."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta_path}: unreadable feature sidecar JSON ({err}); remake it") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: feature sidecar JSON is a {type(meta).__name__}, expected an object")
    return meta


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
    aug_key = f"{key}_aug"  # augmented copies (K, N, D), written when extraction was asked for them
    data, files = load_npz(path, (key, "t_start", "t_end", aug_key))
    missing = [k for k in (key, "t_start", "t_end") if k not in data]
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}; found {files}")
    values = data[key].astype(np.float32)
    if inputs == "log_probs":
        values = np.log(np.maximum(values, LOG_FLOOR))
    out = {
        "features": values,
        "t_start": data["t_start"].astype(np.float64),
        "t_end": data["t_end"].astype(np.float64),
    }
    if aug_key in data:
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
        meta = read_sidecar(meta_path)
        frames = next((meta[k] for k in FRAME_COUNT_KEYS if isinstance(meta.get(k), (int, float))), None)
        fps = next((meta[k] for k in FPS_KEYS if isinstance(meta.get(k), (int, float))), None)
        if frames and fps:
            return float(frames) / float(fps)
    return float(t_end.max()) if len(t_end) else 0.0


def feature_files_digest(folders: list[Path]) -> str:
    """One hash naming every feature file under `folders` (feature-set folders) and its content.

    Why: a stage that skips when its settings are unchanged (heads, ensemble) must notice features
    remade with the same settings (a new merge rule, a re-extraction). A file's content is named by
    the npz sha256 its sidecar JSON records (the extractor and merge write it), so no large file is
    read; a file without one is named by its size and modification time."""
    digest = hashlib.sha256()
    for folder in map(Path, folders):
        digest.update(f"[{folder.parent.name}/{folder.name}]".encode())
        for npz in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
            if npz.name.startswith("."):
                continue
            meta = npz.with_suffix(".json")
            named = read_sidecar(meta).get("npz_sha256") if meta.is_file() else None
            if named is None:
                stat = npz.stat()
                named = f"{stat.st_size}:{stat.st_mtime_ns}"
            digest.update(f"{npz.name}={named};".encode())
    return digest.hexdigest()
