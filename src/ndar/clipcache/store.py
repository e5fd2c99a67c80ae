"""The cache on disk and how fine-tuning reads it.

Layout of one view, `<cache>/<view>/`:
- `<video stem>.npy`: (N, S, S, 3) uint8, every frame any clip of the video uses, at the model's
  geometry (crop box squashed to S), in source order; read with a memory map, so a clip costs a copy
  of its T frames and nothing else (no decoder, no seek);
- `<video stem>.mean.npy`: (S, S, 3) float32 mean frame (only with `subtract_video_mean`);
- `<video stem>.json`: the settings, the video's frame rate and frame count, and per clip its label,
  [start, end] and the positions of its grid frames in the `.npy` (written last: the shard's marker);
- `cache.json`: the settings, the clip table's hash and the failures of the last build.

Why uint8 frames and not short-keyframe H.264: measured in bench/results/clipcache.md. A cache clip
then costs only a memory copy and is bit-identical to what extraction feeds the model; the price is
disk (150 KB a 224 x 224 frame).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ndar.utils.io import read_json
from ndar.video.mean import subtract_mean

FORMAT = "uint8-npy-1"
MANIFEST = "cache.json"


def clip_key(path: str, start: float, end: float, label: int) -> str:
    """A clip's identity in the cache: video file name, label and times (ms)."""
    return f"{Path(str(path)).name}|{int(label)}|{round(float(start) * 1000)}|{round(float(end) * 1000)}"


def clips_sha256(samples: pd.DataFrame) -> str:
    """Hash of a clip table's content (video names, labels, times): what the label files decided."""
    keys = sorted(clip_key(r.path, r.start, r.end, r.label) for r in samples.itertuples())
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def cache_settings(
    num_frames: int,
    sampling_rate: int,
    img_size: int,
    crop_box,
    resize: str,
    subtract_video_mean: bool,
    max_frames: int,
) -> dict:
    """The settings a cache is made with and a reader must share (all compared by `check_matches`)."""
    return {
        "format": FORMAT,
        "num_frames": int(num_frames),
        "sampling_rate": int(sampling_rate),
        "img_size": int(img_size),
        "crop_box": [round(float(v), 6) for v in crop_box],
        "resize": str(resize),
        "subtract_video_mean": bool(subtract_video_mean),
        "max_frames": int(max_frames),
    }


def check_matches(folder: Path, expected: dict, samples: pd.DataFrame) -> dict:
    """The manifest of the cache in `folder`; ValueError listing every setting that differs."""
    manifest_path = Path(folder) / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"data.cache_dir: {manifest_path} not found (build it with `python -m ndar cache-clips`)"
        )
    manifest = read_json(manifest_path)
    saved = manifest.get("settings", {})
    diffs = [
        f"{k}: cache {saved.get(k)!r}, fine-tuning {v!r}" for k, v in expected.items() if saved.get(k) != v
    ]
    if manifest.get("clips_sha256") != clips_sha256(samples):
        diffs.append("clip table (label files, background clips or clip rule) differs")
    if diffs:
        raise ValueError(f"{folder}: the clip cache does not match this run: " + "; ".join(diffs))
    if manifest.get("failures"):
        first = manifest["failures"][0]
        raise ValueError(
            f"{folder}: {len(manifest['failures'])} video(s) failed when the cache was built, e.g. "
            f"{first.get('path')}: {first.get('reason')} (fix or remove them, then run cache-clips again)"
        )
    return manifest


@dataclass
class CachedClip:
    shard: Path
    positions: np.ndarray  # (G,) rows of the shard holding the clip's grid frames


class ClipStore:
    """Clip rows of a table -> their grid frames from the cache (memory-mapped, opened per process)."""

    def __init__(self, folder: Path, samples: pd.DataFrame, subtract_video_mean: bool) -> None:
        self.folder = Path(folder)
        self.subtract_video_mean = subtract_video_mean
        index: dict[str, CachedClip] = {}
        for meta_path in sorted(self.folder.glob("*.json")):
            if meta_path.name == MANIFEST:
                continue
            meta = read_json(meta_path)
            shard = meta_path.with_suffix(".npy")
            for clip in meta["clips"]:
                key = clip_key(meta["video"], clip["start"], clip["end"], clip["label"])
                index[key] = CachedClip(shard, np.asarray(clip["positions"], dtype=np.int64))
        keys = [clip_key(r.path, r.start, r.end, r.label) for r in samples.itertuples()]
        missing = [k for k in keys if k not in index]
        if missing:
            raise ValueError(
                f"{self.folder}: {len(missing)} clip(s) of the table are not in the cache, e.g. {missing[:3]} "
                "(rebuild it with `python -m ndar cache-clips` and the same data settings)"
            )
        self.clips = [index[k] for k in keys]
        self._maps: dict[Path, np.ndarray] = {}
        self._means: dict[Path, np.ndarray] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"], state["_means"] = {}, {}  # memory maps are reopened in each worker
        return state

    def grid_len(self, index: int) -> int:
        return len(self.clips[index].positions)

    def read(self, index: int, grid_positions: np.ndarray) -> np.ndarray:
        """Grid frames `grid_positions` of clip `index`, (T, S, S, 3) uint8 (mean subtracted if asked)."""
        clip = self.clips[index]
        frames = np.asarray(self._map(clip.shard)[clip.positions[grid_positions]])  # copies T frames
        if self.subtract_video_mean:
            frames = subtract_mean(frames, self._mean(clip.shard))
        return frames

    def _map(self, shard: Path) -> np.ndarray:
        if shard not in self._maps:
            self._maps[shard] = np.load(shard, mmap_mode="r")
        return self._maps[shard]

    def _mean(self, shard: Path) -> np.ndarray:
        if shard not in self._means:
            path = shard.with_suffix(".mean.npy")
            if not path.is_file():
                raise FileNotFoundError(f"{path}: the cache has no mean frames (subtract_video_mean: false)")
            self._means[shard] = np.load(path)
        return self._means[shard]
