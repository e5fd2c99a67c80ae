"""Helpers of the real-data tests: where the real AI City files are, an independent reading of a label
CSV, and the official folder layout rebuilt around them with empty placeholder videos.

The real files live in `../shared/real-data/` (other teams' files: never copied into this
repository; the tests copy them only into pytest's temporary folders).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real-data"
ABSENT = "../shared/real-data (the real AI City label files and submissions, kept outside the repository) is absent"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=ABSENT)


def real_files(pattern: str) -> list:
    """`REAL.glob(pattern)` as test parameters (one skipped parameter when the folder is absent)."""
    if not REAL.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=ABSENT))]
    return [pytest.param(p, id=str(p.relative_to(REAL))) for p in sorted(REAL.glob(pattern))]


# 2022 ids -> 2023/2024 ids, written out from docs/domain.md (not taken from ndar.taxonomy): 7 is
# Hair/makeup (no 2023 class), 8..15 are 7..14, 16 and 17 (singing / dancing) are 15.
MAP_2022 = {**{i: i for i in range(7)}, 7: None, **{i: i - 1 for i in range(8, 16)}, 16: 15, 17: 15}
VIEW_WORDS = {"dash": "dashboard", "rear": "rear", "right": "right"}


def _view(text: str) -> str:
    low = text.strip().lower()
    for word, view in VIEW_WORDS.items():
        if low.startswith(word):
            return view
    raise ValueError(f"no view in {text!r}")


def _seconds(text: str) -> float:
    total = 0.0
    for part in text.strip().split(":"):
        total = total * 60 + float(part)
    return total


def independent_reading(path: Path) -> dict[tuple[str, int], list[tuple[int, float, float]]]:
    """{(view, session): sorted [(class, start, end)]} read the simplest way the release allows.

    The Filename is forward-filled and gives the session (its trailing number); the Camera View
    column, typed on every row, gives the view; NA labels, 2022 Hair/makeup and end-before-start
    rows are not segments.
    """
    text = path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip().lower() for h in rows[0]]
    is_2022 = "label/class id" in header
    col = {
        "file": header.index("filename"),
        "view": header.index("camera view"),
        "start": header.index("start time"),
        "end": header.index("end time"),
        "label": header.index("label/class id" if is_2022 else "label (primary)"),
    }
    out: dict[tuple[str, int], list[tuple[int, float, float]]] = defaultdict(list)
    filename = ""
    for row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        filename = row[col["file"]].strip() or filename
        session = int(re.search(r"(\d+)$", filename).group(1))
        view_text = row[col["view"]].strip() or filename
        label_text = row[col["label"]].strip().lower().replace("class", "").strip()
        if label_text in ("na", "n/a", ""):
            continue
        label = MAP_2022[int(label_text)] if is_2022 else int(label_text)
        start, end = _seconds(row[col["start"]]), _seconds(row[col["end"]])
        if label is None or end < start:
            continue
        out[(_view(view_text), session)].append((label, start, end))
    return {key: sorted(value, key=lambda s: (s[1], s[2], s[0])) for key, value in out.items()}


def video_names(kind: str) -> list[str]:
    """Real video stems (no .MP4) of a release: '2022_A1', '2022_A2', '2024_A1', '2024_A2'."""
    if kind.startswith("2022"):
        path = REAL / "video_names" / f"2022_cybercore_file_list_{kind[-2:]}.txt"
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    name = "wolfworld6_label_A1-train_A1-val.json" if kind == "2024_A1" else "wolfworld6_label_submit.json"
    return sorted(json.loads((REAL / "json" / "2024" / name).read_text())["database"])


def driver_of(name: str) -> str:
    return str(int(re.search(r"(?i)id_(\d+)", name).group(1)))


def lay_out(split_dir: Path, names: list[str], labels: dict[str, Path]) -> None:
    """`split_dir/user_id_<d>/` with an empty placeholder video per name and each label file
    (driver -> real file) copied under its own name into that driver's folder."""
    for name in names:
        folder = split_dir / f"user_id_{driver_of(name)}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.MP4").write_bytes(b"")
    for driver, path in labels.items():
        folder = split_dir / f"user_id_{driver}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / path.name)


def labels_by_driver(folder: Path, videos: list[str]) -> dict[str, Path]:
    """driver -> label file of a release folder. A file named for a driver without videos (the 2024
    release's user_id_79775.csv) goes to the folder of the driver its Filenames name, as released."""
    drivers = {driver_of(n) for n in videos}
    out: dict[str, Path] = {}
    for path in sorted(folder.glob("*.csv")):
        driver = driver_of(path.name)
        if driver not in drivers:
            first_row = next(csv.reader(io.StringIO(path.read_text().splitlines()[1])))
            driver = driver_of(next(cell for cell in first_row if "id_" in cell.lower()))
        out[driver] = path
    return out
