"""Bench of the data stage: load_dataset and prepare on a full-size (2024 A1: 69 drivers, 414 videos)
layout of empty placeholder videos with 16 labelled rows per video. Prints seconds per step.

    python -m bench.bench_data [--drivers 69]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ndar.data.config import PrepareConfig
from ndar.data.discover import load_dataset
from ndar.data.prepare import run

VIEWS = ("Dashboard", "Rear_view", "Right_side_window")
HEADER = "Filename,Camera View,Activity Type,Start Time,End Time,Label (Primary),Appearance Block"


def write_layout(root: Path, drivers: int) -> None:
    for d in range(drivers):
        driver = str(10000 + d)
        folder = root / "A1" / f"user_id_{driver}"
        folder.mkdir(parents=True)
        lines = [HEADER]
        for session in (1, 2):
            for view in VIEWS:
                (folder / f"{view}_user_id_{driver}_NoAudio_{session}.MP4").write_bytes(b"")
                for c in range(1, 16):
                    start = 20 + 30 * c
                    name = f"{view}_user_id_{driver}_{session}" if c == 1 else ""
                    lines.append(
                        f"{name},{view},Distracted,0:{start // 60:02d}:{start % 60:02d},0:{(start + 12) // 60:02d}:{(start + 12) % 60:02d},Class {c},None"
                    )
        (folder / f"user_id_{driver}.csv").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drivers", type=int, default=69)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_layout(root, args.drivers)
        t0 = time.perf_counter()
        index = load_dataset(root, "A1")
        t1 = time.perf_counter()
        run(PrepareConfig(root=root, split="A1", out=root / "out", k=5, probe=False))
        t2 = time.perf_counter()
        rows = sum(len(v.segments) for v in index.videos)
        print(
            f"drivers {args.drivers}, videos {len(index.videos)}, label rows {rows}, issues {len(index.issues)}"
        )
        print(f"load_dataset {t1 - t0:.3f} s, prepare (probe=false, 3 views) {t2 - t1:.3f} s")


if __name__ == "__main__":
    main()
