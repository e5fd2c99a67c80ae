"""The temporal-heads plug-in contract (docs/interfaces.md, "Temporal heads plug-in contract").

A head sees whole videos as `FeatureVideo`s (one or more time-aligned feature streams plus the
ground truth) and returns, per video, a `HeadOutput`: a per-second class-probability curve and
scored segments. The k-fold loop, prediction files and metrics live in `ndar.heads.runner`, so a
head only implements `fit`, `predict`, `save` and `load`.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ndar.config import ConfigError
from ndar.data.records import Segment
from ndar.registry import Registry
from ndar.taxonomy import NUM_CLASSES

# name -> HeadEntry(head_cls, config_cls). A head's package registers itself on import; `get_head`
# imports `ndar.heads.<name>` on demand so the registry is filled only with what a run needs.
HEADS = Registry("temporal head")


@dataclass
class FeatureVideo:
    """One session as the heads see it: time-aligned feature streams and its ground truth."""

    key: str  # session key "<driver>_<session>"
    streams: dict[str, np.ndarray]  # stream name (e.g. "rear") -> (N, D) float32, same N for all
    t_start: np.ndarray  # (N,) seconds, first frame of each window
    t_end: np.ndarray  # (N,) seconds, last frame of each window
    duration: float  # seconds; the curves have ceil(duration) rows
    segments: list[Segment] = field(default_factory=list)  # ground truth (empty in A2)
    split: str = "A1"  # "A1" | "A2"
    # stream name -> (K, N, D) augmented copies from `extract.augment_copies` (empty: none); only
    # TIM's training reads them (`tim.augment_copies`), every prediction uses `streams`
    aug_streams: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def driver(self) -> str:
        """The driver id: the part of the key before the last underscore (folds are by driver)."""
        return self.key.rsplit("_", 1)[0]

    @property
    def num_windows(self) -> int:
        return len(self.t_start)

    @property
    def num_seconds(self) -> int:
        return num_seconds(self.duration)

    def check(self) -> None:
        """Raise a clear error if the streams or times disagree in length."""
        n = len(self.t_start)
        if len(self.t_end) != n:
            raise ValueError(f"video {self.key}: t_start has {n} windows but t_end has {len(self.t_end)}")
        for name, arr in self.streams.items():
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(
                    f"video {self.key}: stream {name!r} has shape {tuple(arr.shape)}, expected ({n}, D)"
                )
        for name, arr in self.aug_streams.items():
            clean = self.streams.get(name)
            if clean is None or arr.ndim != 3 or arr.shape[1:] != clean.shape:
                raise ValueError(
                    f"video {self.key}: augmented copies of {name!r} have shape {tuple(arr.shape)}, "
                    f"expected (K, {n}, D) beside a stream {name!r}"
                )


@dataclass
class HeadOutput:
    """What a head predicts for one video."""

    curve: np.ndarray  # (S, 16) float32, row s = class probabilities of second [s, s+1)
    segments: list[tuple[int, float, float, float]] = field(
        default_factory=list
    )  # (label 1..15, start, end, score)


class TemporalHead(Protocol):
    """What the runner calls on a head (built as `HeadCls(cfg, stream_dims, seed)`)."""

    def fit(self, train: list[FeatureVideo], val: list[FeatureVideo], out_dir: Path) -> dict: ...

    def predict(self, videos: list[FeatureVideo]) -> dict[str, HeadOutput]: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...


@dataclass(frozen=True)
class HeadEntry:
    """A registered head: its class and the dataclass of its config section."""

    head_cls: type
    config_cls: type


def register_head(name: str, config_cls: type):
    """Class decorator: `@register_head("actionformer", ActionFormerConfig)`."""

    def decorator(head_cls: type) -> type:
        HEADS.register(name)(HeadEntry(head_cls, config_cls))
        return head_cls

    return decorator


def get_head(name: str) -> HeadEntry:
    """The registry entry of `name`, importing its package `ndar.heads.<name>` first if needed."""
    if name not in HEADS:
        try:
            importlib.import_module(f"ndar.heads.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"ndar.heads.{name}":
                raise
    if name not in HEADS:  # a user's `head:` / --head: one line naming the heads there are
        known = sorted(
            m.name for m in pkgutil.iter_modules(importlib.import_module("ndar.heads").__path__) if m.ispkg
        )
        raise ConfigError(f"unknown temporal head {name!r}; expected one of {known}")
    return HEADS.get(name)


def build_head(name: str, cfg: Any, stream_dims: dict[str, int], seed: int) -> TemporalHead:
    return get_head(name).head_cls(cfg, stream_dims, seed)


def num_seconds(duration: float) -> int:
    """Rows of a per-second curve: ceil(duration), at least 1."""
    return max(1, int(math.ceil(duration - 1e-9)))


def check_output(key: str, out: HeadOutput, duration: float) -> None:
    """Raise if a head's output breaks the contract (shape of the curve, labels of the segments)."""
    expected = (num_seconds(duration), NUM_CLASSES)
    if out.curve.shape != expected:
        raise ValueError(f"video {key}: curve has shape {tuple(out.curve.shape)}, expected {expected}")
    for label, start, end, _score in out.segments:
        if not 1 <= int(label) < NUM_CLASSES or end < start:
            raise ValueError(f"video {key}: bad segment label={label} start={start} end={end}")
