"""Decode one video in a producer thread and hand batches of windows to the models.

The producer decodes each frame once (in order), pushes it into one `WindowCutter` per backbone and
queues full batches of clips; the consumer (the models) takes them from a bounded queue, so decoding
of the next batch overlaps the forward pass of the current one and memory stays bounded by
`prefetch` batches plus one window per backbone.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ndar.video import WindowCutter, WindowSpec, iter_frames, subtract_mean
from ndar.video.geometry import GeometryPlan
from ndar.video.reader import Size


@dataclass
class ClipBatch:
    model: int  # index of the backbone these windows are for
    clips: np.ndarray  # (B, T, H, W, 3) uint8
    t_start: list[float]
    t_end: list[float]
    starts: list[int]  # first frame of each window


@dataclass
class StreamStats:
    frames: int = 0  # frames decoded
    last_time: float = 0.0  # timestamp of the last decoded frame
    windows: list[int] = field(default_factory=list)  # windows cut per backbone


_DONE = object()


class WindowStream:
    """Iterate over `ClipBatch`es of one video; `stats` is filled once the iteration ends.

    `specs[i]` and `sizes[i]` are backbone i's window rule and decode size ((H, W) or None = native);
    `means[i]`, when given and not None, is the video's mean frame at that size, subtracted from every
    frame backbone i sees (`ndar.video.mean`). `crops[i]`, when given and not None, is backbone i's
    `GeometryPlan`: its crop box is sliced out of every frame decoded at `sizes[i]` (the mean frame
    must then be at the cropped size already).
    """

    def __init__(
        self,
        path: str | Path,
        specs: Sequence[WindowSpec],
        sizes: Sequence[Size],
        batch_size: int,
        prefetch: int = 4,
        threads: int = 0,
        means: Sequence[np.ndarray | None] | None = None,
        convert_threads: int = 0,
        crops: Sequence[GeometryPlan | None] | None = None,
    ) -> None:
        if len(specs) != len(sizes):
            raise ValueError(f"one decode size per window spec expected, got {len(sizes)} for {len(specs)}")
        self.means = list(means) if means is not None else [None] * len(specs)
        if len(self.means) != len(specs):
            raise ValueError(f"one mean frame (or None) per window spec expected, got {len(self.means)}")
        self.crops = list(crops) if crops is not None else [None] * len(specs)
        if len(self.crops) != len(specs):
            raise ValueError(f"one crop plan (or None) per window spec expected, got {len(self.crops)}")
        self.path = Path(path)
        self.specs = list(specs)
        self.sizes = list(sizes)
        self.batch_size = batch_size
        self.threads = threads
        self.convert_threads = convert_threads
        self.stats = StreamStats(windows=[0] * len(specs))
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()

    def _put(self, item: object) -> bool:
        """Block until the consumer takes `item`; False when the consumer has gone away."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        distinct = list(dict.fromkeys(self.sizes))  # decode each distinct size once per frame
        slot = [distinct.index(s) for s in self.sizes]
        cutters = [WindowCutter(spec) for spec in self.specs]
        pending: list[list] = [[] for _ in self.specs]
        try:
            for frame in iter_frames(
                self.path, distinct, threads=self.threads, convert_threads=self.convert_threads
            ):
                self.stats.frames = frame.index + 1
                self.stats.last_time = frame.time
                for m, cutter in enumerate(cutters):
                    image = frame.images[slot[m]]
                    if self.crops[m] is not None:
                        image = self.crops[m].crop(image)
                    if self.means[m] is not None:
                        image = subtract_mean(image, self.means[m])
                    window = cutter.push(frame.index, frame.time, image)
                    if window is None:
                        continue
                    pending[m].append(window)
                    self.stats.windows[m] += 1
                    if len(pending[m]) == self.batch_size and not self._flush(m, pending):
                        return
                if self._stop.is_set():
                    return
            for m in range(len(cutters)):
                if pending[m] and not self._flush(m, pending):
                    return
            self._put(_DONE)
        except BaseException as err:  # handed to the consumer, which re-raises it
            self._put(err)

    def _flush(self, m: int, pending: list[list]) -> bool:
        windows = pending[m]
        pending[m] = []
        batch = ClipBatch(
            model=m,
            clips=np.stack([w.clip for w in windows]),  # (B, T, H, W, 3)
            t_start=[w.t_start for w in windows],
            t_end=[w.t_end for w in windows],
            starts=[w.start for w in windows],
        )
        return self._put(batch)

    def __iter__(self) -> Iterator[ClipBatch]:
        thread = threading.Thread(target=self._produce, name=f"decode:{self.path.name}", daemon=True)
        thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
            thread.join()
