"""Prediction sources (docs/interfaces.md, "Prediction sources"): what heads write and the ensemble reads.

Layout: `<folder>/<split>/curves.npz` (one (S, 16) float32 array per session key) and
`<folder>/<split>/segments.csv` (video,label,start,end,score). Both files are written atomically so
a crashed run never leaves a half-written source for the ensemble to read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ndar.formats.features import load_npz
from ndar.taxonomy import NUM_CLASSES
from ndar.utils.io import atomic_path

SPLITS = ("oof", "test")
SEGMENT_COLUMNS = ["video", "label", "start", "end", "score"]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"prediction split {split!r} is not one of {SPLITS}")


def empty_segments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "video": pd.Series(dtype=str),
            "label": pd.Series(dtype=int),
            "start": pd.Series(dtype=float),
            "end": pd.Series(dtype=float),
            "score": pd.Series(dtype=float),
        }
    )


def segments_frame(rows: dict[str, list[tuple[int, float, float, float]]]) -> pd.DataFrame:
    """{key: [(label, start, end, score), ...]} -> DataFrame[video,label,start,end,score]."""
    records = [
        (key, int(lab), float(s), float(e), float(sc)) for key, segs in rows.items() for lab, s, e, sc in segs
    ]
    if not records:
        return empty_segments()
    frame = pd.DataFrame.from_records(records, columns=SEGMENT_COLUMNS)
    return frame.sort_values(
        ["video", "label", "score"], ascending=[True, True, False], kind="stable"
    ).reset_index(drop=True)


def write_predictions(
    folder: str | Path, split: str, curves: dict[str, np.ndarray], segments: pd.DataFrame
) -> Path:
    """Write `curves` and `segments` under `<folder>/<split>/`; returns that folder."""
    _check_split(split)
    missing = [c for c in SEGMENT_COLUMNS if c not in segments.columns]
    if missing:
        raise ValueError(f"segments lack column(s) {missing}; expected {SEGMENT_COLUMNS}")
    arrays: dict[str, np.ndarray] = {}
    for key, curve in curves.items():
        curve = np.asarray(curve, dtype=np.float32)
        if curve.ndim != 2 or curve.shape[1] != NUM_CLASSES:
            raise ValueError(f"curve of {key!r} has shape {curve.shape}, expected (S, {NUM_CLASSES})")
        arrays[str(key)] = curve
    out = Path(folder) / split
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "curves.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    frame = segments[SEGMENT_COLUMNS].copy()
    frame["video"] = frame["video"].astype(str)
    frame["label"] = frame["label"].astype(int)
    with atomic_path(out / "segments.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4f")
    return out


def read_predictions(folder: str | Path, split: str) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Read `<folder>/<split>/`: ({key: (S, 16) float32}, DataFrame[video,label,start,end,score])."""
    _check_split(split)
    base = Path(folder) / split
    curves_path, segments_path = base / "curves.npz", base / "segments.csv"
    for path in (curves_path, segments_path):
        if not path.is_file():
            raise FileNotFoundError(f"prediction source file not found: {path}")
    arrays, _ = load_npz(curves_path, what="prediction curves file")
    curves = {key: curve.astype(np.float32) for key, curve in arrays.items()}
    try:
        # keep_default_na=False: a video key is text, never NaN (pandas reads 'NA' or 'null' as NaN)
        segments = pd.read_csv(segments_path, dtype={"video": str}, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{segments_path}: unreadable segments file ({err}); remake it") from None
    missing = [c for c in SEGMENT_COLUMNS if c not in segments.columns]
    if missing:
        raise ValueError(f"{segments_path}: missing column(s) {missing}; expected {SEGMENT_COLUMNS}")
    if segments.empty:
        return curves, empty_segments()
    _check_numbers(segments, segments_path)
    segments["label"] = segments["label"].astype(int)
    return curves, segments[SEGMENT_COLUMNS]


def _check_numbers(segments: pd.DataFrame, path: Path) -> None:
    """Raise naming file, row and field when label/start/end/score is not a finite number (label: integer).

    Why: pandas would otherwise fail later with a message naming neither file nor row."""
    for column in SEGMENT_COLUMNS[1:]:
        values = pd.to_numeric(segments[column], errors="coerce").astype(float)
        bad = ~np.isfinite(values.to_numpy())
        if column == "label":
            bad |= values.to_numpy() != np.round(values.to_numpy())
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            expected = "an integer class id" if column == "label" else "a finite number"
            raise ValueError(
                f"{path}: row {i + 2}: {column} {str(segments[column].iloc[i])!r} is not {expected}"
            )
        segments[column] = values
