"""`ClipCacheConfig`: what `python -m ndar cache-clips` decodes and at which geometry.

The clip table comes from the same place and rule as fine-tuning's (`data.clips` CSV or the dataset
root), so a fine-tuning run whose `data.cache_dir` names this cache finds every one of its clips;
`ndar.clipcache.store.check_matches` refuses a cache made with other settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ndar.config import ConfigError
from ndar.layout import STANDALONE


@dataclass
class ClipCacheConfig:
    out: Path = STANDALONE.clipcache()
    """Cache folder; each view gets `<out>/<view>/` (one shard per video + `cache.json`)."""
    root: Path | None = Path("data/synthetic")
    """Dataset root holding A1/ (used when `clips` is not given)."""
    clips: Path | None = None
    """A `clips_<view>.csv` of `python -m ndar prepare`; '{view}' is replaced by the view."""
    split: str = "A1"
    views: list[str] = field(default_factory=lambda: ["rear", "dashboard"])
    k: int = 5
    fold_seed: int = 0
    background_per_video: int = 2
    """As fine-tuning's `data.*`: they decide the clip table (and its folds)."""
    num_frames: int = 16
    """Frames per training clip of the models that will read this cache (recorded, and checked)."""
    sampling_rate: int = 2
    """Every n-th source frame of a clip is stored (the models' sampling rate)."""
    img_size: int = 224
    crop: Any = "full"
    """The view's crop box: a preset name (`ndar.video.geometry.CROP_PRESETS`) or [l, t, r, b]."""
    resize: str = "squash"
    subtract_video_mean: bool = False
    """Also store each video's mean frame at the geometry (for backbones with subtract_video_mean)."""
    max_frames: int = 0
    """At most this many frames per clip (a longer grid is thinned evenly); 0 = every grid frame.
    Must equal fine-tuning's `data.cache_max_frames` when that run thins its clips."""
    workers: int = 1
    """Processes, one video at a time each; the files are the same for any number."""
    threads: int = 1
    """Decoder threads per process."""
    overwrite: bool = False
    """Rebuild shards that are already complete (otherwise they are skipped: resume)."""

    def validate(self) -> None:
        from ndar.video.geometry import RESIZE_RULES, resolve_crop_box

        if self.root is None and self.clips is None:
            raise ConfigError("root or clips must be set")
        if self.sampling_rate < 1 or self.num_frames < 1 or self.img_size < 8:
            raise ConfigError("sampling_rate and num_frames must be >= 1 and img_size >= 8")
        if self.resize not in RESIZE_RULES:
            raise ConfigError(f"resize: expected one of {list(RESIZE_RULES)}, got {self.resize!r}")
        for view in self.views:
            try:
                resolve_crop_box(self.crop, view)
            except (ValueError, KeyError) as err:
                raise ConfigError(f"crop for view {view!r}: {err}") from err
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")


def from_finetune(ft_cfg, **changes: Any) -> ClipCacheConfig:
    """The cache a fine-tuning config reads (`data.cache_dir`): its clip table, frames and geometry."""
    from ndar.finetune.data import finetune_spec

    d = ft_cfg.data
    if d.cache_dir is None:
        raise ConfigError("data.cache_dir: the fine-tuning config names no clip cache")
    spec = finetune_spec(ft_cfg)
    values = dict(
        out=d.cache_dir, root=d.root, clips=d.clips, split=d.split, views=[d.view], k=d.k,
        fold_seed=d.fold_seed, background_per_video=d.background_per_video, num_frames=spec.num_frames,
        sampling_rate=spec.sampling_rate, img_size=spec.img_size, crop=list(spec.crop_box),
        resize=spec.resize, subtract_video_mean=spec.subtract_video_mean, max_frames=d.cache_max_frames,
    )  # fmt: skip
    return ClipCacheConfig(**{**values, **changes})
