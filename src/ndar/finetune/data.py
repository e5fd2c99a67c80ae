"""Clip datasets for fine-tuning: frames sampled inside [start, end] of each clip row, decoded by decord.

Temporal sampling (VideoMAE style): a sample's *grid* is every `sampling_rate`-th source frame of its
segment. Training takes `num_frames` consecutive grid frames from a random offset; validation takes
`num_segments` evenly spaced windows. A segment shorter than the window is stretched: its grid
positions are spread evenly over the window (frames repeat) instead of reading outside the label.
Frames are resized on decode so the short side is `short_side` (decord scales straight from YUV).

`cache=True` decodes each sample's grid once (at most `cache_max_frames` frames, the stride widened
for long segments) and keeps it in memory; spatial augmentation stays random every epoch. It is meant
for the small CPU runs, where decoding costs more than the tiny model's step.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from ndar import taxonomy
from ndar.finetune.transforms import EvalClipTransform, TrainClipTransform
from ndar.utils.progress import progress as tqdm
from ndar.video.mean import subtract_mean, video_mean_frame

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "label", "start", "end", "fold")


@dataclass(frozen=True)
class VideoMeta:
    fps: float
    num_frames: int
    height: int
    width: int


def decoded_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the short side scaled to `short_side`, aspect kept, even sizes."""
    scale = short_side / min(height, width)
    return max(short_side, 2 * round(height * scale / 2)), max(short_side, 2 * round(width * scale / 2))


class FrameReader:
    """decord readers kept open per (path, size), a few at a time (each worker process has its own).

    With `subtract_mean` every frame comes back minus its video's mean frame (`ndar.video.mean`), the
    preprocessing a backbone with `subtract_video_mean` expects.
    """

    def __init__(self, short_side: int, max_open: int = 4, subtract_mean: bool = False) -> None:
        self.short_side = short_side
        self.max_open = max_open
        self.subtract_mean = subtract_mean
        self._readers: OrderedDict[str, object] = OrderedDict()
        self._meta: dict[str, VideoMeta] = {}
        self._means: dict[str, np.ndarray] = {}

    def _open(self, path: str):
        if path in self._readers:
            self._readers.move_to_end(path)
            return self._readers[path]
        import decord

        if not Path(path).is_file():
            raise FileNotFoundError(f"clip video not found: {path}")
        probe = decord.VideoReader(path, num_threads=1)
        h, w, _ = probe[0].shape
        fps, count = float(probe.get_avg_fps()), len(probe)
        del probe
        height, width = decoded_size(h, w, self.short_side)
        reader = decord.VideoReader(path, width=width, height=height, num_threads=1)
        self._meta[path] = VideoMeta(fps=fps, num_frames=min(count, len(reader)), height=height, width=width)
        self._readers[path] = reader
        while len(self._readers) > self.max_open:
            self._readers.popitem(last=False)
        return reader

    def meta(self, path: str) -> VideoMeta:
        self._open(path)
        return self._meta[path]

    def read(self, path: str, indices: np.ndarray) -> torch.Tensor:
        """Frames `indices` of `path` as (T, H, W, 3) uint8 (repeated indices decode once)."""
        reader = self._open(path)
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            batch = reader.get_batch(unique.tolist()).asnumpy()  # (U, H, W, 3)
        except Exception as err:  # decord raises its own error types
            raise RuntimeError(f"cannot decode frames {unique[:4].tolist()}... of {path}: {err}") from err
        if self.subtract_mean:
            batch = subtract_mean(batch, self.mean_frame(path))
        return torch.from_numpy(batch[inverse])

    def mean_frame(self, path: str) -> np.ndarray:
        """The video's mean frame at the decoded size (computed once per path and worker)."""
        if path not in self._means:
            meta = self.meta(path)
            self._means[path] = video_mean_frame(path, (meta.height, meta.width))
        return self._means[path]


def frame_grid(start: float, end: float, meta: VideoMeta, rate: int, max_frames: int = 0) -> np.ndarray:
    """Source frame indices every `rate` frames inside [start, end] seconds (at least one frame).

    With `max_frames` > 0 a longer grid is thinned evenly to that many frames.
    """
    last = meta.num_frames - 1
    first = min(max(int(math.floor(start * meta.fps)), 0), last)
    stop = min(max(int(math.ceil(end * meta.fps)), first), last)
    grid = np.arange(first, stop + 1, max(rate, 1), dtype=np.int64)
    if max_frames and len(grid) > max_frames:
        grid = grid[np.linspace(0, len(grid) - 1, max_frames).round().astype(np.int64)]
    return grid


def window_positions(grid_len: int, num_frames: int, offset: int) -> np.ndarray:
    """`num_frames` grid positions from `offset`; a short grid is stretched (positions repeat)."""
    if grid_len >= num_frames:
        return np.arange(offset, offset + num_frames, dtype=np.int64)
    return np.linspace(0, grid_len - 1, num_frames).round().astype(np.int64)


def eval_offsets(grid_len: int, num_frames: int, num_segments: int) -> list[int]:
    """Start offsets of `num_segments` windows spread evenly over the grid."""
    span = max(grid_len - num_frames, 0)
    return [int(round(x)) for x in np.linspace(0, span, num_segments)] if num_segments > 1 else [span // 2]


class ClipDataset(Dataset):
    """Rows of a clip table -> (clip (3, T, S, S), label) for training, or
    (views (V, 3, T, S, S), label, row index) for evaluation, V = num_segments x num_crops."""

    def __init__(
        self,
        samples: pd.DataFrame,
        num_frames: int,
        sampling_rate: int,
        short_side: int,
        train_transform: TrainClipTransform | None = None,
        eval_transform: EvalClipTransform | None = None,
        num_segments: int = 1,
        cache_max_frames: int = 0,
        subtract_mean: bool = False,
    ) -> None:
        if (train_transform is None) == (eval_transform is None):
            raise ValueError("ClipDataset needs exactly one of train_transform / eval_transform")
        self.samples = samples.reset_index(drop=True)
        self.num_frames, self.rate = num_frames, sampling_rate
        self.train_transform, self.eval_transform = train_transform, eval_transform
        self.num_segments = num_segments
        self.cache_max_frames = cache_max_frames
        self.reader = FrameReader(short_side, subtract_mean=subtract_mean)
        self.cache: list[torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["reader"] = FrameReader(  # decord readers are not picklable
            self.reader.short_side, subtract_mean=self.reader.subtract_mean
        )
        return state

    def _grid(self, index: int) -> tuple[str, np.ndarray]:
        row = self.samples.iloc[index]
        path = str(row["path"])
        meta = self.reader.meta(path)
        return path, frame_grid(
            float(row["start"]), float(row["end"]), meta, self.rate, self.cache_max_frames
        )

    def decode_grid(self, index: int) -> torch.Tensor:
        """Every grid frame of sample `index`, (G, H, W, 3) uint8 (what the cache holds)."""
        path, grid = self._grid(index)
        return self.reader.read(path, grid)

    def _frames(self, index: int, offset_fn) -> list[torch.Tensor]:
        """Decode (or take from the cache) the windows chosen by `offset_fn(grid_len) -> [offsets]`."""
        if self.cache is not None:
            grid_frames = self.cache[index]
            offsets = offset_fn(len(grid_frames))
            return [grid_frames[window_positions(len(grid_frames), self.num_frames, o)] for o in offsets]
        path, grid = self._grid(index)
        offsets = offset_fn(len(grid))
        return [
            self.reader.read(path, grid[window_positions(len(grid), self.num_frames, o)]) for o in offsets
        ]

    def __getitem__(self, index: int):
        label = int(self.samples.at[index, "label"])
        if self.train_transform is not None:
            (frames,) = self._frames(
                index, lambda n: [int(np.random.randint(0, max(n - self.num_frames, 0) + 1))]
            )
            return self.train_transform(frames, label)
        windows = self._frames(index, lambda n: eval_offsets(n, self.num_frames, self.num_segments))
        views = torch.cat([self.eval_transform(w) for w in windows])  # (V, 3, T, S, S)
        return views, label, index

    def build_cache(self, num_workers: int = 0, desc: str = "cache clips") -> None:
        """Decode every sample's grid once (in `num_workers` worker processes) and keep it in memory."""
        loader = DataLoader(
            _GridView(self), batch_size=None, shuffle=False, num_workers=num_workers, collate_fn=_identity
        )
        self.cache = [frames for frames in tqdm(loader, desc=desc, total=len(self), leave=False)]
        size = sum(f.numel() for f in self.cache) / 2**20
        log.info("cached %d clips (%.0f MiB of uint8 frames)", len(self.cache), size)


def _identity(x):
    return x


class _GridView(Dataset):
    """The grid frames of each sample (used to fill the cache in worker processes)."""

    def __init__(self, dataset: ClipDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.dataset.decode_grid(index)


def check_samples(samples: pd.DataFrame, source: str) -> pd.DataFrame:
    """Raise a clear error when the clip table lacks columns or holds impossible rows."""
    missing = [c for c in REQUIRED_COLUMNS if c not in samples.columns]
    if missing:
        raise ValueError(f"{source}: clip table lacks column(s) {missing}; expected {list(REQUIRED_COLUMNS)}")
    bad_label = samples[(samples["label"] < 0) | (samples["label"] >= taxonomy.NUM_CLASSES)]
    if len(bad_label):
        row = bad_label.index[0]
        raise ValueError(
            f"{source}: row {row}: label {bad_label.iloc[0]['label']} outside 0..{taxonomy.NUM_CLASSES - 1}"
        )
    bad_time = samples[samples["end"] < samples["start"]]
    if len(bad_time):
        row = bad_time.index[0]
        raise ValueError(
            f"{source}: row {row}: end {bad_time.iloc[0]['end']} < start {bad_time.iloc[0]['start']}"
        )
    return samples


def load_clip_samples(
    root: Path | None,
    clips: Path | None,
    view: str,
    split: str = "A1",
    k: int = 5,
    fold_seed: int = 0,
    background_per_video: int = 2,
) -> pd.DataFrame:
    """The clip table of `view`: read from a `prepare` CSV, or built from the dataset root."""
    if clips is not None:
        if not Path(clips).is_file():
            raise FileNotFoundError(f"data.clips: {clips} not found (write it with `python -m ndar prepare`)")
        samples = pd.read_csv(clips)
        if "view" in samples.columns:
            samples = samples[samples["view"].map(taxonomy.canonical_view) == taxonomy.canonical_view(view)]
        return check_samples(samples.reset_index(drop=True), str(clips))
    from ndar.data.clips import build_clip_samples
    from ndar.data.discover import load_dataset
    from ndar.data.folds import assign_folds

    index = load_dataset(root, split)
    errors = [issue for issue in index.issues if issue.level == "error"]
    for issue in errors[:5]:
        log.warning("data: %s", issue)
    drivers = sorted({v.driver for v in index.videos if v.segments})
    if not drivers:
        raise ValueError(f"data.root: no labelled {split} videos found under {root}")
    folds = assign_folds(drivers, k, fold_seed)
    samples = build_clip_samples(
        index.videos, view, folds, background_per_video=background_per_video, seed=fold_seed
    )
    if samples.empty:
        raise ValueError(f"data.root: no labelled clips of view {view!r} under {root}/{split}")
    return check_samples(samples, f"{root}/{split}")


def split_by_fold(samples: pd.DataFrame, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, val) rows: val = the held-out `fold`; fold -1 trains on everything (empty val)."""
    if fold < 0:
        return samples.reset_index(drop=True), samples.iloc[0:0].reset_index(drop=True)
    folds = sorted(samples["fold"].unique().tolist())
    if fold not in folds:
        raise ValueError(f"data.fold: fold {fold} not in the clip table's folds {folds}")
    val = samples[samples["fold"] == fold].reset_index(drop=True)
    train = samples[samples["fold"] != fold].reset_index(drop=True)
    return train, val
