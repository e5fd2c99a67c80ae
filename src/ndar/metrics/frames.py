"""Turn segment tables into one clean form before scoring, with clear errors for bad rows."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

SEGMENT_COLUMNS = ("video", "label", "start", "end")


def video_name(value: object) -> str:
    """A video id or session key as the text both sides are compared by: 3, "3", " 3" and 3.0 give "3".

    Why 3.0: a pandas column of ids that ever held a missing value is float, and str(3.0) is "3.0",
    which would silently never match the ground truth's "3" and score every prediction 0.
    """
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def as_segment_frame(rows: pd.DataFrame | Iterable, name: str, with_score: bool = False) -> pd.DataFrame:
    """Copy `rows` into a DataFrame with `video` (str), `label` (int), `start`, `end` (float)[, `score`].

    Videos are compared as text (`video_name`) so that an id read as int from one file, as float
    from another and as text from a third still match. Raises ValueError naming the table
    (`name`), the row and the field on bad input.
    """
    columns = list(SEGMENT_COLUMNS) + (["score"] if with_score else [])
    if isinstance(rows, pd.DataFrame):
        missing = [c for c in columns if c not in rows.columns]
        if missing:
            raise ValueError(f"{name}: missing column(s) {missing}; expected columns {columns}")
        frame = rows[columns].copy()
    else:
        frame = pd.DataFrame([tuple(r)[: len(columns)] for r in rows], columns=columns)
    frame = frame.reset_index(drop=True)
    frame["video"] = frame["video"].map(video_name)
    for column in columns[1:]:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{name}: row {row}: {column}={frame[column].iloc[row]!r} is not a finite number"
            )
        frame[column] = values.astype(float)
    labels = frame["label"].to_numpy()
    if (labels != np.round(labels)).any():
        row = int(np.flatnonzero(labels != np.round(labels))[0])
        raise ValueError(f"{name}: row {row}: label {labels[row]!r} is not an integer")
    frame["label"] = frame["label"].astype(int)
    backwards = frame["end"] < frame["start"]
    if backwards.any():
        row = int(np.flatnonzero(backwards.to_numpy())[0])
        raise ValueError(
            f"{name}: row {row}: end {frame['end'].iloc[row]} < start {frame['start'].iloc[row]} "
            f"(video {frame['video'].iloc[row]}, label {frame['label'].iloc[row]})"
        )
    return frame
