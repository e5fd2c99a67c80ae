"""Training logs of a head: one CSV row per epoch plus TensorBoard scalars (when installed).

The CSV is what notebooks plot; TensorBoard is for watching long GPU runs. Earlier rows are kept, so a
resumed run keeps its earlier epochs.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ndar.utils.io import atomic_path

log = logging.getLogger(__name__)


class TrainLog:
    """`with TrainLog(out_dir) as tl: tl.log(epoch, loss=..., lr=...)` -> metrics.csv + tb/ events."""

    def __init__(self, out_dir: str | Path, tensorboard: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / "metrics.csv"
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.out_dir / "tb"))
            except ImportError:  # tensorboard is optional
                log.info("tensorboard not installed; logging to %s only", self.csv_path)

    def log(self, epoch: int, **scalars: float) -> None:
        """Add one row; the CSV is rewritten (atomically) so that columns first seen later (e.g. a
        validation loss computed every few epochs) get a header and empty cells in earlier rows."""
        row = {"epoch": epoch, **{k: float(v) for k, v in scalars.items()}}
        rows = self._read_rows() + [row]
        columns = list(dict.fromkeys(key for r in rows for key in r))
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        if self._writer is not None:
            for key, value in scalars.items():
                self._writer.add_scalar(key, float(value), epoch)

    def _read_rows(self) -> list[dict]:
        if not self.csv_path.exists():
            return []
        with open(self.csv_path, newline="") as fh:
            return [{k: v for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(fh)]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TrainLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
