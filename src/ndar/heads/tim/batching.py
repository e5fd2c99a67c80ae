"""TIM's data side: feature videos as tensors, the windows and queries asked of them, padded batches.

Kept apart from the head so the training loop and inference read as steps over batches; everything
here is deterministic given the config, the window length and (for random queries) the numpy rng.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ndar.heads.base import FeatureVideo
from ndar.heads.tim.augment import augmented_streams, slot_features
from ndar.heads.tim.config import TimConfig
from ndar.heads.tim.windows import (
    Window,
    assign_queries,
    clipped_queries,
    coverage_labels,
    detection_targets,
    feature_intervals,
    normalise,
    plan_windows,
    pyramid_intervals,
    random_intervals,
    with_background,
)
from ndar.taxonomy import NUM_CLASSES


@dataclass
class Item:
    """One window of one video with the queries it is asked (normalised) and their targets."""

    video: int
    window: Window
    queries: np.ndarray  # (Q, 2) normalised to the window
    query_ids: np.ndarray | None = None  # (Q,) ids into the video's global query list (prediction)
    labels: np.ndarray | None = None  # (Q,) recognition class ids
    cls: np.ndarray | None = None  # (Q, C) detection targets
    offsets: np.ndarray | None = None  # (Q, 2) detection offset targets
    positive: np.ndarray | None = None  # (Q,) detection positives


@dataclass
class PreparedVideo:
    """A FeatureVideo as tensors, with what training needs precomputed."""

    source: FeatureVideo
    streams: dict[str, torch.Tensor]  # (N, D) float32 on CPU
    t_start: np.ndarray
    t_end: np.ndarray
    seg_times: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    seg_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    aug: dict[str, torch.Tensor] = field(default_factory=dict)  # (K, N, D) copies, training only


def prepare_video(
    video: FeatureVideo,
    stream_dims: dict[str, int],
    background_chunk: float,
    with_targets: bool,
    augment_copies: bool = False,
) -> PreparedVideo:
    """Check the video's streams against the model's and convert them; add class-0 gaps for training
    (and, with `augment_copies`, the video's augmented feature copies)."""
    video.check()
    missing = [name for name in stream_dims if name not in video.streams]
    if missing:
        raise ValueError(
            f"video {video.key}: missing feature stream(s) {missing}; the model was built for {list(stream_dims)}"
        )
    streams = {}
    for name, dim in stream_dims.items():
        arr = np.asarray(video.streams[name], dtype=np.float32)
        if arr.shape[1] != dim:
            raise ValueError(f"video {video.key}: stream {name!r} has {arr.shape[1]} dims, expected {dim}")
        streams[name] = torch.from_numpy(arr)
    prepared = PreparedVideo(
        video, streams, np.asarray(video.t_start, np.float64), np.asarray(video.t_end, np.float64)
    )
    if with_targets:
        prepared.seg_times, prepared.seg_labels = with_background(
            video.segments, video.duration, background_chunk
        )
        if augment_copies:
            prepared.aug = augmented_streams(video, stream_dims)
    return prepared


@dataclass
class Batcher:
    """Windows, query items and padded batches for one head at one feature gap."""

    cfg: TimConfig
    stream_dims: dict[str, int]
    device: torch.device
    window_length: float  # seconds covered by one window
    feat_gap: float

    def windows(self, video: PreparedVideo, stride: float) -> list[Window]:
        cfg = self.cfg
        return plan_windows(
            video.t_start, video.t_end, cfg.num_feats, cfg.feat_stride, self.window_length, stride
        )

    def pyramid(self, duration: float) -> np.ndarray:
        cfg = self.cfg
        return pyramid_intervals(
            duration, self.window_length, cfg.pyramid_base, cfg.pyramid_levels, cfg.pyramid_overlap
        )

    def chunks(self, video: int, window: Window, ids: np.ndarray, norm: np.ndarray, **targets) -> list[Item]:
        """Split a window's queries into items of at most max_queries (queries are independent)."""
        size = self.cfg.max_queries
        out = []
        for lo in range(0, max(len(ids), 1), size):
            part = slice(lo, lo + size)
            picked = {k: (v[part] if v is not None else None) for k, v in targets.items()}
            out.append(Item(video, window, norm[part], query_ids=ids[part], **picked))
        return out

    def detection_items(self, videos: list[PreparedVideo], stride: float) -> list[Item]:
        """Pyramid queries of each window with their best-IoU targets."""
        items = []
        for v, video in enumerate(videos):
            intervals = self.pyramid(video.source.duration)
            cls, offsets, positive = detection_targets(
                intervals, video.source.segments, NUM_CLASSES, self.cfg.iou_threshold
            )
            windows = self.windows(video, stride)
            for window, (ids, norm) in zip(windows, assign_queries(windows, intervals)):
                if len(ids):
                    items += self.chunks(
                        v, window, ids, norm, cls=cls[ids], offsets=offsets[ids], positive=positive[ids]
                    )
        return items

    def recognition_items(
        self, videos: list[PreparedVideo], stride: float, rng: np.random.Generator | None
    ) -> list[Item]:
        """Clipped ground-truth queries per window, plus random ones when `rng` is given (training)."""
        cfg, items = self.cfg, []
        for v, video in enumerate(videos):
            for window in self.windows(video, stride):
                times, labels = clipped_queries(video.seg_times, video.seg_labels, window, cfg.min_query)
                if rng is not None and cfg.random_queries > 0:
                    extra = random_intervals(rng, window, cfg.random_queries, self.feat_gap)
                    times = np.concatenate([times, extra])
                    labels = np.concatenate(
                        [labels, coverage_labels(extra, video.seg_times, video.seg_labels)]
                    )
                if len(times):
                    ids = np.arange(len(times))
                    items += self.chunks(v, window, ids, normalise(times, window), labels=labels)
        return items

    def training_items(self, videos: list[PreparedVideo], rng: np.random.Generator | None) -> list[Item]:
        """The items of one epoch (random queries drawn from `rng`; none when it is None)."""
        if self.cfg.mode == "detection":
            return self.detection_items(videos, self.cfg.train_window_stride)
        return self.recognition_items(videos, self.cfg.train_window_stride, rng)

    def query_items(self, video: PreparedVideo, intervals: np.ndarray) -> list[Item]:
        """Every window of `video` (at test stride) with the global queries it contains."""
        windows = self.windows(video, self.cfg.window_stride)
        items: list[Item] = []
        for window, (ids, norm) in zip(windows, assign_queries(windows, intervals)):
            if len(ids):
                items += self.chunks(0, window, ids, norm)
        return items

    def collate(
        self, items: list[Item], videos: list[PreparedVideo], rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Stack items into padded tensors (on the model's device); with `rng`, each feature slot
        takes a random one of the video's copies (`ndar.heads.tim.augment`)."""
        batch, num_feats = len(items), self.cfg.num_feats
        num_queries = max(1, max(len(it.queries) for it in items))
        feats = {name: torch.zeros(batch, num_feats, dim) for name, dim in self.stream_dims.items()}
        arrays = {
            "feat_iv": np.zeros((batch, num_feats, 2), np.float32),
            "feat_pad": np.stack([it.window.index < 0 for it in items]),  # (B, T)
            "query_iv": np.zeros((batch, num_queries, 2), np.float32),
            "query_pad": np.ones((batch, num_queries), bool),
            "labels": np.full((batch, num_queries), -1, np.int64),
            "cls": np.zeros((batch, num_queries, NUM_CLASSES), np.float32),
            "offsets": np.zeros((batch, num_queries, 2), np.float32),
            "positive": np.zeros((batch, num_queries), bool),
        }
        for b, it in enumerate(items):
            self._fill_row(arrays, feats, b, it, videos[it.video], rng)
        out = {"feats": {k: v.to(self.device) for k, v in feats.items()}}
        out.update({k: torch.from_numpy(a).to(self.device) for k, a in arrays.items()})
        return out

    def _fill_row(self, arrays: dict, feats: dict, b: int, it: Item, video: PreparedVideo, rng=None) -> None:
        """Write one item's features, intervals and targets into row `b` of the batch arrays."""
        valid = it.window.index >= 0
        rows = torch.from_numpy(it.window.index[valid])
        for name in self.stream_dims:
            feats[name][b, torch.from_numpy(valid)] = slot_features(
                video.streams[name], video.aug.get(name), rows, rng
            )
        arrays["feat_iv"][b] = feature_intervals(video.t_start, video.t_end, it.window)
        q = len(it.queries)
        arrays["query_iv"][b, :q] = it.queries
        arrays["query_pad"][b, :q] = False
        if it.labels is not None:
            arrays["labels"][b, :q] = it.labels
        if it.cls is not None:
            arrays["cls"][b, :q], arrays["offsets"][b, :q], arrays["positive"][b, :q] = (
                it.cls,
                it.offsets,
                it.positive,
            )
