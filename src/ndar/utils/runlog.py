"""Training logs of the trainers: one CSV row per epoch plus TensorBoard scalars (when installed).

The CSV is what the notebooks and the report plot; TensorBoard is for watching long GPU runs. Earlier
rows are kept, so a resumed run keeps its earlier epochs.

One vocabulary for every trainer (fine-tuning, TIM, ActionFormer), so their curves can be compared in
one TensorBoard and read by one plotting function: scalars are named `train/<name>` and
`val/<name>` (`time/<name>` for durations), and epochs count from 1. `tag` maps the names the
trainers compute (`loss`, `train_cls`, `val_loss`, `lr`, `epoch_seconds`) onto it.

`TrainLog` logs once per epoch (the heads); `RunLog` once per N optimizer steps with a `split`
column (fine-tuning, where an epoch is hours long), both atomically and with TensorBoard.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ndar.utils.io import atomic_path

log = logging.getLogger(__name__)


def tag(name: str) -> str:
    """'loss' -> 'train/loss', 'train_cls' -> 'train/cls', 'val_loss' -> 'val/loss', 'lr' -> 'train/lr',
    'epoch_seconds' -> 'time/epoch_seconds'; a name that already has a '/' is kept."""
    if "/" in name:
        return name
    for split in ("train", "val"):
        if name.startswith(split + "_"):
            return f"{split}/{name[len(split) + 1 :]}"
    if name.endswith("_seconds") or name.endswith("_s"):
        return f"time/{name}"
    return f"train/{name}"


class TrainLog:
    """`with TrainLog(out_dir) as tl: tl.log(epoch, loss=..., lr=...)` -> metrics.csv + tb/ events.

    `epoch` counts from 1 (the epoch just finished); scalar names go through `tag`."""

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
        if epoch < 1:
            raise ValueError(f"epoch {epoch}: training logs count epochs from 1 (the epoch just finished)")
        scalars = {tag(k): float(v) for k, v in scalars.items()}
        row = {"epoch": epoch, **scalars}
        rows = self._read_rows() + [row]
        columns = list(dict.fromkeys(key for r in rows for key in r))
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        if self._writer is not None:
            for key, value in scalars.items():
                self._writer.add_scalar(key, value, epoch)

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


class RunLog:
    """Fine-tuning's per-step log: metrics.csv rows (`step`, `split`, ...) and TensorBoard
    `<split>/<name>` scalars against the optimizer step, main rank only.

    On resume from epoch k only the rows of epochs 1..k are kept: a killed attempt may have logged
    part of epoch k+1, which the resumed run logs again. TensorBoard purges those steps likewise.
    """

    def __init__(self, output: Path, enabled: bool, start_epoch: int = 0, start_step: int = 0) -> None:
        self.path = output / "metrics.csv"
        self.enabled = enabled
        self.rows: list[dict] = []
        self.writer = None
        if not enabled:
            return
        if self.path.is_file() and start_epoch > 0:
            import pandas

            rows = pandas.read_csv(self.path).to_dict("records")
            self.rows = [r for r in rows if int(r["epoch"]) <= start_epoch]
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(output / "tensorboard"), purge_step=start_step + 1)
        except ImportError:
            log.warning("tensorboard is not installed: logging to metrics.csv only")

    def add(self, step: int, row: dict) -> None:
        if not self.enabled:
            return
        import pandas

        self.rows.append({"step": step, **row})
        with atomic_path(self.path) as tmp:
            pandas.DataFrame(self.rows).to_csv(tmp, index=False)
        if self.writer is not None:
            prefix = row.get("split", "train")
            for key, value in row.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
