"""K-fold split by driver.

Why by driver: each driver records two sessions with nearly the same timeline, so a session of a
driver in training and the other in validation would leak the answer. Folds are balanced by driver
count (sizes differ by at most one) and depend only on the set of drivers, k and the seed, not on
the order the drivers are given in.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from ndar.config import ConfigError
from ndar.utils.io import read_json, write_json


def _driver_order(driver: str) -> tuple[int, str]:
    return (int(driver), driver) if driver.isdigit() else (1 << 62, driver)


def assign_folds(drivers: Iterable[str], k: int, seed: int = 0) -> dict[str, int]:
    """driver -> fold in 0..k-1, deterministic for (set of drivers, k, seed). A k the drivers cannot
    fill is a ConfigError (a setting that does not fit the data: one line on the command line)."""
    unique = sorted({str(d) for d in drivers}, key=_driver_order)
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ConfigError(f"k must be an integer >= 2 (k-fold cross-validation), got {k!r}")
    if k > len(unique):
        raise ConfigError(
            f"k={k} folds need at least {k} drivers, but only {len(unique)} were given ({unique}); "
            "lower k or add drivers (splits are by driver so both sessions of a driver stay together)"
        )
    shuffled = list(unique)
    random.Random(seed).shuffle(shuffled)
    return {driver: index % k for index, driver in enumerate(shuffled)}


def write_folds(path: str | Path, folds: dict[str, int], k: int, seed: int) -> Path:
    """folds.json: {"k": k, "seed": seed, "drivers": {driver: fold}}."""
    ordered = dict(sorted(folds.items(), key=lambda kv: _driver_order(kv[0])))
    return write_json(path, {"k": k, "seed": seed, "drivers": ordered})


def read_folds(path: str | Path) -> dict[str, int]:
    """driver -> fold from a folds.json written by `write_folds` (`prepare`)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("drivers"), dict):
        raise ValueError(f"{path}: expected a JSON object with a 'drivers' mapping (driver -> fold)")
    return {str(d): int(f) for d, f in data["drivers"].items()}
