"""Clip datasets for fine-tuning: frames sampled inside [start, end] of each clip row, decoded by decord.

Temporal sampling (VideoMAE style): a sample's *grid* is every `sampling_rate`-th source frame of its
segment. Training takes `num_frames` consecutive grid frames from a random offset; validation takes
`num_segments` evenly spaced windows. A segment shorter than the window is stretched: its grid
positions are spread evenly over the window (frames repeat) instead of reading outside the label.
Spatially every frame goes through the backbone's geometry (`ndar.video.geometry`): decoded at the
size that makes the view's crop box exactly img_size x img_size (decord scales straight from YUV),
then the box is sliced out, the same pixels feature extraction feeds the model.

Training items are keyed `(index, seed, epoch)` by `SeededSampler`: each clip's random draws (offset,
crop, RandAugment, erasing) come from that key alone, not from the loader worker that happens to
build it, so the augmentation is the same for any number of workers and the workers can persist
across epochs (a resumed epoch still augments exactly as the uninterrupted one).

`cache=True` decodes each sample's grid once (at most `cache_max_frames` frames, the stride widened
for long segments) and keeps it in memory; spatial augmentation stays random every epoch. It is meant
for the small CPU runs, where decoding costs more than the tiny model's step.
"""

from __future__ import annotations

import logging
import math
import random
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ndar import taxonomy
from ndar.clipcache.store import ClipStore
from ndar.finetune.transforms import EvalClipTransform, TrainClipTransform
from ndar.utils.progress import progress as tqdm
from ndar.video.decord_io import read_batch
from ndar.video.geometry import Geometry, GeometryPlan
from ndar.video.mean import subtract_mean, video_mean_frame
from ndar.video.probe import VideoError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "label", "start", "end", "fold")


@dataclass(frozen=True)
class VideoMeta:
    fps: float
    num_frames: int
    height: int
    width: int


class FrameReader:
    """decord readers kept open per path, a few at a time (each worker process has its own).

    Frames come back at the geometry `plan` (the crop box of the view at img_size x img_size); a
    `Geometry` that needs the frame's size ("pad") is planned per video from its header. With
    `subtract_mean` every frame comes back minus its video's mean frame (`ndar.video.mean`), the
    preprocessing a backbone with `subtract_video_mean` expects. Readers are stopped after every read
    (`ndar.video.decord_io`), so an open reader never decodes in the background.
    """

    def __init__(self, plan: GeometryPlan | Geometry, max_open: int = 4, subtract_mean: bool = False) -> None:
        self.plan = plan
        self.max_open = max_open
        self.subtract_mean = subtract_mean
        self._readers: OrderedDict[str, object] = OrderedDict()
        self._meta: dict[str, VideoMeta] = {}
        self._means: dict[str, np.ndarray] = {}
        self._native: dict[str, bool] = {}
        self._plans: dict[str, GeometryPlan] = {}

    def plan_of(self, path: str) -> GeometryPlan:
        """The geometry plan of `path` (probed once per path when it depends on the frame size)."""
        if isinstance(self.plan, GeometryPlan):
            return self.plan
        if path not in self._plans:
            frame_hw = None
            if self.plan.needs_frame_size:
                from ndar.video.probe import probe

                info = probe(path)
                frame_hw = (info.height, info.width)
            self._plans[path] = self.plan.plan(frame_hw)
        return self._plans[path]

    def _open(self, path: str):
        if path in self._readers:
            self._readers.move_to_end(path)
            return self._readers[path]
        import decord

        if not Path(path).is_file():
            raise FileNotFoundError(f"clip video not found: {path}")
        height, width = self.plan_of(path).scaled
        try:  # decord's errors do not name the file (a broken video must be findable)
            reader = decord.VideoReader(path, width=width, height=height, num_threads=1)
            self._native[path] = not scales_correctly(reader, (height, width))
            if self._native[path]:
                # decord 0.6 returns wrongly sized frames for some small output sizes: such videos are
                # decoded at their native size and resized in `read`
                reader = decord.VideoReader(path, num_threads=1)
            fps, count = float(reader.get_avg_fps()), len(reader)
        except (decord.DECORDError, RuntimeError) as err:  # decord raises both
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise VideoError(f"{path}: cannot open the clip video: {reason}") from err
        self._meta[path] = VideoMeta(fps=fps, num_frames=count, height=height, width=width)
        self._readers[path] = reader
        while len(self._readers) > self.max_open:
            self._readers.popitem(last=False)
        return reader

    def meta(self, path: str) -> VideoMeta:
        self._open(path)
        return self._meta[path]

    def read(self, path: str, indices: np.ndarray) -> torch.Tensor:
        """Frames `indices` of `path` as (T, S, S, 3) uint8 (repeated indices decode once)."""
        reader = self._open(path)
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            batch = read_batch(reader, unique.tolist())  # (U, H, W, 3); the reader is stopped after
        except Exception as err:  # decord raises its own error types
            raise RuntimeError(f"cannot decode frames {unique[:4].tolist()}... of {path}: {err}") from err
        plan = self.plan_of(path)
        if self._native.get(path):
            batch = resize_frames(batch, plan.scaled)
        batch = plan.crop(batch)  # (U, S, S, 3)
        if self.subtract_mean:
            batch = subtract_mean(batch, self.mean_frame(path))
        return torch.from_numpy(np.ascontiguousarray(batch[inverse]))

    def mean_frame(self, path: str) -> np.ndarray:
        """The video's mean frame at the model's geometry (computed once per path and worker)."""
        if path not in self._means:
            plan = self.plan_of(path)
            self._means[path] = plan.crop(video_mean_frame(path, plan.scaled))
        return self._means[path]


def scales_correctly(reader, size: tuple[int, int]) -> bool:
    """Whether a resizing decord reader really gives frames of `size` (one test decode)."""
    try:
        shape = read_batch(reader, [0]).shape[1:3]
    except Exception:  # noqa: BLE001 - decord's own error types; the native-size path is taken
        return False
    return tuple(shape) == tuple(size)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 resized to `size` (bilinear, antialiased), for decoders that cannot."""
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


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
        plan: GeometryPlan | Geometry,
        train_transform: TrainClipTransform | None = None,
        eval_transform: EvalClipTransform | None = None,
        num_segments: int = 1,
        cache_max_frames: int = 0,
        subtract_mean: bool = False,
        store: ClipStore | None = None,
    ) -> None:
        if (train_transform is None) == (eval_transform is None):
            raise ValueError("ClipDataset needs exactly one of train_transform / eval_transform")
        self.samples = samples.reset_index(drop=True)
        self.num_frames, self.rate = num_frames, sampling_rate
        self.train_transform, self.eval_transform = train_transform, eval_transform
        self.num_segments = num_segments
        self.cache_max_frames = cache_max_frames
        self.reader = FrameReader(plan, subtract_mean=subtract_mean)
        self.cache: list[torch.Tensor] | None = None
        self.store = store  # clip cache on disk (`ndar.clipcache`): rows in the same order

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["reader"] = FrameReader(  # decord readers are not picklable
            self.reader.plan, subtract_mean=self.reader.subtract_mean
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
        if self.store is not None:
            n = self.store.grid_len(index)
            return [
                torch.from_numpy(self.store.read(index, window_positions(n, self.num_frames, o)))
                for o in offset_fn(n)
            ]
        if self.cache is not None:
            grid_frames = self.cache[index]
            offsets = offset_fn(len(grid_frames))
            return [grid_frames[window_positions(len(grid_frames), self.num_frames, o)] for o in offsets]
        path, grid = self._grid(index)
        offsets = offset_fn(len(grid))
        return [
            self.reader.read(path, grid[window_positions(len(grid), self.num_frames, o)]) for o in offsets
        ]

    def __getitem__(self, key: int | tuple[int, int, int]):
        """`index`, or `(index, seed, epoch)` from `SeededSampler`: a training clip drawn from
        random streams seeded by that key (and put back afterwards, for the main process's sake)."""
        if isinstance(key, tuple):
            index, seed, epoch = key
            with seeded_random_streams(seed, epoch, index):
                return self._item(index)
        return self._item(key)

    def _item(self, index: int):
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


@contextmanager
def seeded_random_streams(*key: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global (CPU) random streams from `key` for the block, then
    restore them: what a clip's augmentation draws depends on its key, not on the process or the
    draws before it."""
    words = np.random.SeedSequence([int(k) for k in key]).generate_state(2, dtype=np.uint32)
    value = int(words[0]) << 32 | int(words[1])
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(value)
    np.random.seed(int(words[0]))
    torch.default_generator.manual_seed(value)  # CPU only: torch.manual_seed would reseed the GPU's too
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class SeededSampler(Sampler):
    """Wraps a training sampler: yields `(index, seed, epoch)` so that `ClipDataset` seeds each clip's
    augmentation by its own key. The wrapped sampler keeps the order (and its generator, which the
    checkpoint saves); `set_epoch` moves both to the next epoch."""

    def __init__(self, sampler: Sampler, seed: int) -> None:
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    @property
    def generator(self) -> torch.Generator | None:
        return getattr(self.sampler, "generator", None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        epoch = self.epoch  # fixed when the epoch's iteration starts
        return ((int(index), self.seed, epoch) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


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
    samples = samples.copy()
    for column in ("label", "start", "end", "fold"):
        samples[column] = numeric_column(samples[column], source, column, integer=column in ("label", "fold"))
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


def numeric_column(values: pd.Series, source: str, column: str, integer: bool) -> pd.Series:
    """`values` as numbers; a blank or non-numeric cell (a NaN time would only fail later, in a loader
    worker, naming neither file nor row) is a ValueError naming the row and the column."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers % 1 != 0 if integer else False)
    if bad.any():
        row = bad[bad].index[0]
        kind = "an integer" if integer else "a number (seconds)"
        shown = "(blank)" if pd.isna(values[row]) else repr(str(values[row]))
        raise ValueError(f"{source}: row {row}: {column} {shown} is not {kind}")
    return numbers.astype(np.int64) if integer else numbers.astype(np.float64)


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


def model_overrides(cfg) -> dict:
    """The backbone overrides of a `FinetuneConfig` (architecture and preprocessing keys)."""
    m = cfg.model
    return {
        **m.overrides,
        "drop_path_rate": m.drop_path_rate,
        "head_drop_rate": m.head_drop_rate,
        "grad_checkpointing": m.grad_checkpointing,
    }


def finetune_spec(cfg):
    """The `BackboneSpec` of a `FinetuneConfig`: registry defaults, then the config's frames, size,
    rate and the view's crop box. The model, the datasets and the clip cache all take it from here."""
    import dataclasses

    from ndar.backbones import get_spec
    from ndar.video.geometry import resolve_crop_box

    m = cfg.model
    spec = get_spec(m.backbone, **model_overrides(cfg))
    return dataclasses.replace(
        spec,
        num_frames=m.num_frames or spec.num_frames,
        img_size=m.img_size or spec.img_size,
        sampling_rate=m.sampling_rate or spec.sampling_rate,
        crop_box=resolve_crop_box(cfg.data.crop, cfg.data.view),
        resize=cfg.data.resize,
    )


def build_datasets(cfg, spec) -> tuple[ClipDataset, ClipDataset | None, pd.DataFrame]:
    """(train, val or None, the whole clip table) of a `FinetuneConfig` for the model's `spec`.

    Both datasets use the spec's geometry (crop box, squash to img_size), the one extraction uses, so
    validation top-1 measures the input the heads will get.
    """
    d, a = cfg.data, cfg.aug
    samples = load_clip_samples(d.root, d.clips, d.view, d.split, d.k, d.fold_seed, d.background_per_video)
    train_rows, val_rows = split_by_fold(samples, d.fold)
    if len(train_rows) < cfg.train.batch_size:
        raise ValueError(f"only {len(train_rows)} training clips for view {d.view!r}, fewer than one batch")
    plan = Geometry(spec.img_size, tuple(spec.crop_box), spec.resize)
    cache_frames = d.cache_max_frames if d.cache else 0
    train_store = val_store = None
    if d.cache_dir is not None:
        train_store, val_store = open_cache(d, spec, samples, train_rows, val_rows)
    train_tf = TrainClipTransform(
        spec.img_size,
        spec.mean,
        spec.std,
        spec.normalize,
        a.scale,
        a.ratio,
        a.rand_augment,
        a.reprob,
        a.hflip,
    )
    train = ClipDataset(
        train_rows, spec.num_frames, spec.sampling_rate, plan, train_tf,
        cache_max_frames=cache_frames, subtract_mean=spec.subtract_video_mean, store=train_store,
    )  # fmt: skip
    val = None
    if len(val_rows):
        eval_tf = EvalClipTransform(spec.img_size, spec.mean, spec.std, spec.normalize, cfg.eval.num_crops)
        val = ClipDataset(
            val_rows, spec.num_frames, spec.sampling_rate, plan, eval_transform=eval_tf,
            num_segments=cfg.eval.num_segments, cache_max_frames=cache_frames,
            subtract_mean=spec.subtract_video_mean, store=val_store,
        )  # fmt: skip
    if d.cache and d.cache_dir is None:
        train.build_cache(d.num_workers, "cache train clips")
        if val is not None:
            val.build_cache(d.num_workers, "cache val clips")
    return train, val, samples


def open_cache(d, spec, samples: pd.DataFrame, train_rows: pd.DataFrame, val_rows: pd.DataFrame):
    """(train store, val store) of the clip cache `d.cache_dir`, after checking it matches the run."""
    from ndar.clipcache.store import cache_settings, check_matches

    folder = Path(d.cache_dir) / taxonomy.canonical_view(d.view)
    expected = cache_settings(
        spec.num_frames, spec.sampling_rate, spec.img_size, spec.crop_box, spec.resize,
        spec.subtract_video_mean, d.cache_max_frames,
    )  # fmt: skip
    check_matches(folder, expected, samples)
    train = ClipStore(folder, train_rows, spec.subtract_video_mean)
    val = ClipStore(folder, val_rows, spec.subtract_video_mean) if len(val_rows) else None
    log.info("clip cache %s: %d train and %d val clips", folder, len(train_rows), len(val_rows))
    return train, val
