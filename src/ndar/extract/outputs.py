"""Feature files: `<out>/<track>/<view>/<video_stem>.npz` + `.json` (docs/interfaces.md).

A pair is one unit: writing removes the old json first, then writes the npz and last the json,
each atomically (temporary file + rename), and the json records the npz's sha256. A pair is complete
only when the json exists, names the same checkpoint hash and window settings, and the npz beside it
has the recorded hash. A run killed at any point (even between the npz and the json, after the
checkpoint changed) therefore leaves a pair that is either complete and right, or redone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ndar.utils.io import atomic_path, read_json, sha256_file, write_json

log = logging.getLogger(__name__)


def feature_paths(out: Path, track: str, view: str, stem: str) -> tuple[Path, Path]:
    folder = Path(out) / track / view
    return folder / f"{stem}.npz", folder / f"{stem}.json"


def is_complete(npz_path: Path, json_path: Path, checkpoint_sha256: str, window: dict) -> bool:
    """True when a finished pair exists that was made by the same checkpoint and window settings."""
    if not (npz_path.is_file() and json_path.is_file()):
        return False
    try:
        meta = read_json(json_path)
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable (%s); it will be recomputed", json_path, err)
        return False
    if meta.get("checkpoint_sha256") != checkpoint_sha256 or meta.get("window") != window:
        log.info("%s: made with another checkpoint or window settings; recomputing", json_path)
        return False
    if meta.get("npz_sha256") != sha256_file(npz_path):
        log.warning("%s: the npz beside it is not the one it describes; recomputing", json_path)
        return False
    return True


def write_features(
    npz_path: Path,
    json_path: Path,
    features: np.ndarray,
    probs: np.ndarray,
    t_start: np.ndarray,
    t_end: np.ndarray,
    meta: dict,
) -> None:
    """Write one feature set of one video: features (N, D) float16, probs (N, C) float32, times float64."""
    n = len(t_start)
    if features.shape[0] != n or probs.shape[0] != n or len(t_end) != n:
        raise ValueError(
            f"{npz_path}: row counts differ: features {features.shape}, probs {probs.shape}, "
            f"t_start {len(t_start)}, t_end {len(t_end)}"
        )
    json_path.unlink(missing_ok=True)  # from here until the new json exists, the pair is incomplete
    with atomic_path(npz_path, suffix=".npz") as tmp:
        np.savez(
            tmp,
            features=np.asarray(features, dtype=np.float16),
            probs=np.asarray(probs, dtype=np.float32),
            t_start=np.asarray(t_start, dtype=np.float64),
            t_end=np.asarray(t_end, dtype=np.float64),
        )
    write_json(json_path, {**meta, "npz_sha256": sha256_file(npz_path)})


def read_features(npz_path: Path) -> dict[str, np.ndarray]:
    with np.load(npz_path) as data:
        return {k: data[k] for k in data.files}
