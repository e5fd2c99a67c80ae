"""Progress that reads well both on a terminal and in a log file.

On a terminal a tqdm bar redraws in place. In a file those redraws pile up (a fine-tune log grew to
50 KB of `\\r` frames), so when stderr is not a terminal the same call logs one plain line every
`every` seconds instead, with the count, the rate and the ETA, plus one line at the end.

`progress` takes the subset of tqdm's arguments the stages use, so swapping `tqdm` for it is a
one-line change: `from ndar.utils.progress import progress as tqdm`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("ndar.progress")

EVERY_S = 30.0  # seconds between two progress lines in a file


def on_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def format_seconds(seconds: float) -> str:
    """75 -> '1m15s', 3700 -> '1h01m', 8 -> '8s'."""
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class LineProgress:
    """tqdm's interface, writing a log line every `every` seconds (and one when it closes)."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        disable: bool | None = False,
        every: float = EVERY_S,
        **_: Any,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.disable = bool(disable)
        self.n = 0
        self.postfix = ""
        self.start = self.last = time.perf_counter()
        self.closed = False

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        text = f"{self.desc}: {done} {self.unit}, {rate:.3g} {self.unit}/s, elapsed {format_seconds(elapsed)}"
        if self.total and rate > 0 and self.n < self.total:
            text += f", ETA {format_seconds((self.total - self.n) / rate)}"
        return text + (f" ({self.postfix})" if self.postfix else "")

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if not self.disable and now - self.last >= self.every:
            self.last = now
            log.info("%s", self.line())

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        values = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed and not self.disable and self.n:
            log.info("%s (done)", self.line())
        self.closed = True

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update()
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable | None = None, *args: Any, **kwargs: Any):
    """A tqdm bar on a terminal, periodic log lines otherwise (same arguments as tqdm)."""
    if on_terminal():
        from tqdm import tqdm

        return tqdm(iterable, *args, **kwargs)
    if args:  # tqdm's second positional argument is desc
        kwargs.setdefault("desc", args[0])
    return LineProgress(iterable, **kwargs)
