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


def is_complete(
    npz_path: Path,
    json_path: Path,
    checkpoint_sha256: str,
    window: dict,
    augment: dict | None = None,
    resize: str | None = None,
) -> bool:
    """True when a finished pair exists that was made by the same checkpoint, window and augmented-copy
    settings (`augment` None: no copies, and a pair made without copies has no "augment" key) and,
    when `resize` is given, the same resize rule (its sidecar's "resize": swscale on decode and torch
    after decoding give other pixels, so a resume must not keep the other rule's features)."""
    if not (npz_path.is_file() and json_path.is_file()):
        return False
    try:
        meta = read_json(json_path)
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable (%s); it will be recomputed", json_path, err)
        return False
    if (
        meta.get("checkpoint_sha256") != checkpoint_sha256
        or meta.get("window") != window
        or meta.get("augment") != augment
        or (resize is not None and meta.get("resize") != resize)
    ):
        log.info(
            "%s: made with another checkpoint, window, augment or resize setting; recomputing", json_path
        )
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
    features_aug: np.ndarray | None = None,
    probs_aug: np.ndarray | None = None,
) -> None:
    """Write one feature set of one video: features (N, D) float16, probs (N, C) float32, times float64,
    and optionally K augmented copies features_aug (K, N, D) float16 and probs_aug (K, N, C) float32."""
    n = len(t_start)
    if features.shape[0] != n or probs.shape[0] != n or len(t_end) != n:
        raise ValueError(
            f"{npz_path}: row counts differ: features {features.shape}, probs {probs.shape}, "
            f"t_start {len(t_start)}, t_end {len(t_end)}"
        )
    extra = {}
    if features_aug is not None or probs_aug is not None:
        if features_aug is None or probs_aug is None:
            raise ValueError(f"{npz_path}: features_aug and probs_aug go together")
        if features_aug.shape[1:] != features.shape or probs_aug.shape[1:] != probs.shape:
            raise ValueError(
                f"{npz_path}: features_aug {features_aug.shape} / probs_aug {probs_aug.shape}: expected "
                f"(K, {features.shape[0]}, {features.shape[1]}) / (K, {probs.shape[0]}, {probs.shape[1]})"
            )
        extra = {
            "features_aug": np.asarray(features_aug, dtype=np.float16),
            "probs_aug": np.asarray(probs_aug, dtype=np.float32),
        }
    json_path.unlink(missing_ok=True)  # from here until the new json exists, the pair is incomplete
    with atomic_path(npz_path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            features=np.asarray(features, dtype=np.float16),
            probs=np.asarray(probs, dtype=np.float32),
            t_start=np.asarray(t_start, dtype=np.float64),
            t_end=np.asarray(t_end, dtype=np.float64),
            **extra,
        )
    write_json(json_path, {**meta, "npz_sha256": sha256_file(npz_path)})


def read_features(npz_path: Path) -> dict[str, np.ndarray]:
    with np.load(npz_path) as data:
        return {k: data[k] for k in data.files}
