"""Synthetic feature videos for the heads tests: class-dependent feature means inside segments.

`make_videos` builds `FeatureVideo`s in memory; `write_dataset` writes the same data in the official
dataset layout (empty MP4 files, label CSVs, video_ids.csv) plus feature files in the extractor's
format, so the real loader can be tested end to end. `CentroidHead` (registered as "centroid_test") is a small real head (nearest
class mean per window) that lets the runner be tested in well under a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ndar.heads.base import HEADS, FeatureVideo, HeadOutput, register_head
from ndar.heads.synthetic import make_feature_videos
from ndar.postprocess import one_segment_per_class
from ndar.postprocess.curves import windows_to_curve
from ndar.taxonomy import NUM_CLASSES, VIEW_FILE_PREFIX
from ndar.utils.io import sha256_file

FPS = 30.0


def make_videos(**kwargs) -> list[FeatureVideo]:
    """The default synthetic videos of the tests: 1 s windows every 0.5 s, 5 classes in 120 s."""
    return make_feature_videos(**kwargs)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"


def video_stem(view: str, key: str) -> str:
    driver, session = key.rsplit("_", 1)
    return f"{VIEW_FILE_PREFIX[view]}_user_id_{driver}_NoAudio_{session}"


def write_dataset(
    root: Path, features: Path, a1: list[FeatureVideo], a2: list[FeatureVideo], track: str = "trk"
) -> None:
    """Official layout under `root` (A1 labels, A2 video_ids.csv) + feature files under `features`."""
    id_rows = []
    for split, videos in (("A1", a1), ("A2", a2)):
        by_driver: dict[str, list[FeatureVideo]] = {}
        for video in videos:
            by_driver.setdefault(video.driver, []).append(video)
        for driver, vids in by_driver.items():
            folder = root / split / f"user_id_{driver}"
            folder.mkdir(parents=True, exist_ok=True)
            rows = ["Filename,Camera View,Activity Type,Start Time,End Time,Label (Primary),Appearance Block"]
            for video in vids:
                for view in ("dashboard", "rear", "right"):
                    stem = video_stem(view, video.key)
                    (folder / f"{stem}.MP4").write_bytes(b"")
                    if split == "A1":
                        name = stem.replace("_NoAudio", "")
                        for i, seg in enumerate(video.segments):
                            rows.append(
                                f"{name if i == 0 else ''},{VIEW_FILE_PREFIX[view]},Distracted,"
                                f"{_hms(seg.start)},{_hms(seg.end)},Class {seg.label},None"
                            )
                    if view in video.streams:
                        write_feature_file(features / track / view / f"{stem}.npz", video, view)
                if split == "A2":
                    files = [f"{video_stem(v, video.key)}.MP4" for v in ("dashboard", "rear", "right")]
                    id_rows.append(f"{len(id_rows) + 1},{','.join(files)}")
            if split == "A1":
                (folder / f"user_id_{driver}.csv").write_text("\n".join(rows) + "\n")
    if a2:
        (root / "A2" / "video_ids.csv").write_text(
            "video_id,video_files1,video_files2,video_files3\n" + "\n".join(id_rows) + "\n"
        )


def write_feature_file(path: Path, video: FeatureVideo, stream: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    feats = video.streams[stream]
    np.savez(
        path,
        features=feats.astype(np.float16),
        probs=np.full((len(feats), NUM_CLASSES), 1 / NUM_CLASSES, dtype=np.float32),
        t_start=video.t_start,
        t_end=video.t_end,
    )
    meta = {"backbone": "test", "fps": FPS, "frame_count": int(round(video.duration * FPS))}
    meta["npz_sha256"] = sha256_file(path)  # as the extractor's sidecar names its npz (docs/interfaces.md)
    path.with_suffix(".json").write_text(json.dumps(meta))


@dataclass
class CentroidConfig:
    temperature: float = 1.0  # softmax temperature on negative squared distances


class CentroidHead:
    """Nearest class mean per window (fit = class means of the concatenated streams)."""

    def __init__(self, cfg: CentroidConfig, stream_dims: dict[str, int], seed: int) -> None:
        self.cfg, self.streams = cfg, sorted(stream_dims)
        self.means = np.zeros((NUM_CLASSES, sum(stream_dims.values())))

    def _x(self, video: FeatureVideo) -> np.ndarray:
        return np.concatenate([video.streams[s] for s in self.streams], axis=1)

    def fit(self, train, val, out_dir):
        xs, ys = [], []
        for v in train:
            centres = (v.t_start + v.t_end) / 2
            y = np.zeros(len(centres), dtype=int)
            for seg in v.segments:
                y[(centres >= seg.start) & (centres < seg.end)] = seg.label
            xs.append(self._x(v))
            ys.append(y)
        x, y = np.concatenate(xs), np.concatenate(ys)
        for c in range(NUM_CLASSES):
            if (y == c).any():
                self.means[c] = x[y == c].mean(0)
            else:
                self.means[c] = 1e6
        return {"n_windows": int(len(y))}

    def predict(self, videos):
        out = {}
        for v in videos:
            d = ((self._x(v)[:, None, :] - self.means[None]) ** 2).sum(-1)  # (N, C)
            logits = -d / self.cfg.temperature
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            curve = windows_to_curve(v.t_start, v.t_end, p, v.duration)
            out[v.key] = HeadOutput(curve, one_segment_per_class(curve, threshold=0.5))
        return out

    def save(self, path):
        with open(path, "wb") as fh:
            np.save(fh, self.means)

    def load(self, path):
        with open(path, "rb") as fh:
            self.means = np.load(fh)


if "centroid_test" not in HEADS:
    register_head("centroid_test", CentroidConfig)(CentroidHead)
