"""Read, write and validate submission files.

Format: one activity per line, `video_id activity_id start end`, no header. The reader accepts
spaces, tabs or commas between fields (ground-truth files in the wild use all three). The writer
writes what every top team wrote: space separated integers, classes 1..15, sorted by video id then
start (then class, end).

Rounding decision: start and end are each rounded to the nearest second, halves up
(`floor(x + 0.5)`). Nearest rounding moves each boundary by at most 0.5 s, which costs the least
overlap on average; flooring the start and ceiling the end would bias every segment longer.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ndar.data.labels import format_rows
from ndar.taxonomy import BACKGROUND, SCORED_CLASSES
from ndar.utils.io import atomic_write_text

log = logging.getLogger(__name__)

COLUMNS = ["video", "label", "start", "end"]
_SPLIT = re.compile(r"[,\s]+")
# What a submission line may hold, ASCII only: Python's int()/float() would also take '+1', '1_0',
# '1e1', 'nan' and non-ASCII digits, none of which is the official 'video_id activity_id start end'.
_ID = re.compile(r"\d+", re.ASCII)
_LABEL = re.compile(r"-?\d+", re.ASCII)  # a sign is read so that '-1' is reported as out of range
_TIME = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)


def _parse_line(text: str) -> tuple[tuple[int, int, float, float] | None, str | None]:
    """(row, None) or (None, reason) for one non-blank line."""
    fields = [f for f in _SPLIT.split(text.strip()) if f]
    if len(fields) != 4:
        return (
            None,
            f"expected 4 fields 'video_id activity_id start end', got {len(fields)}: {text.strip()!r}",
        )
    video, label = fields[0], fields[1]
    if not _ID.fullmatch(video):
        return None, f"video id {video!r} is not an integer"
    if not _LABEL.fullmatch(label):
        return None, f"activity id {label!r} is not an integer"
    if not (_TIME.fullmatch(fields[2]) and _TIME.fullmatch(fields[3])):
        return None, f"start/end {fields[2]!r} {fields[3]!r} are not numbers (seconds, e.g. 12 or 12.5)"
    return (int(video), int(label), float(fields[2]), float(fields[3])), None


def _lines(path: Path) -> list[str]:
    """The file's lines; a missing, binary or non-UTF-8 file raises ValueError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(
            f"{path}: cannot read it: {err.strerror or err}"
        ) from err  # a submission or a ground truth
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not a UTF-8 text file (byte 0x{data[err.start]:02x} at offset {err.start}); "
            "expected lines 'video_id activity_id start end'"
        ) from None


def read_submission(path: str | Path) -> pd.DataFrame:
    """DataFrame with columns video (int), label (int), start, end (float). Blank lines are skipped.

    A malformed line raises ValueError("<file>:<line>: <reason>"); end < start is malformed too.
    """
    path = Path(path)
    rows = []
    for number, text in enumerate(_lines(path), start=1):
        if not text.strip():
            continue
        row, reason = _parse_line(text)
        if reason is None and row[3] < row[2]:
            reason = f"end {row[3]:g} is before start {row[2]:g}"
        if reason is not None:
            raise ValueError(f"{path}:{number}: {reason}")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"video": int, "label": int, "start": float, "end": float})


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def _number(value: object) -> float:
    """float(value) for a real number; NaN for anything else (text, None), so checks fail cleanly."""
    if isinstance(value, (bool, str)) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _checked_row(i: int, row: tuple) -> tuple[int, int, float, float]:
    """(video id, class, start, end) of one row to write; raises ValueError naming the row.

    Why not int()/float() directly: a NaN class or a text time would raise a bare error naming
    neither the row nor the field."""
    video, label, start, end = row
    where = f"submission row {i} ({video}, {label}, {start}, {end})"
    if not _ID.fullmatch(str(video).strip()):
        raise ValueError(f"{where}: video id must be an integer (map session keys to video ids first)")
    number = _number(label)
    if not (math.isfinite(number) and number.is_integer() and 0 <= number <= SCORED_CLASSES[-1]):
        raise ValueError(f"{where}: class must be an integer in 0..{SCORED_CLASSES[-1]}")
    start_s, end_s = _number(start), _number(end)
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0 or end_s < start_s:
        raise ValueError(f"{where}: expected finite times with 0 <= start <= end")
    return int(str(video).strip()), int(number), start_s, end_s


def to_submission_rows(rows: pd.DataFrame | Iterable) -> pd.DataFrame:
    """The exact rows `write_submission` writes: integer seconds, classes 1..15, sorted, deduplicated.

    Class 0 rows are dropped (never scored). A row with a non-integer video id, a class outside
    0..15, a negative or non-finite time, or end < start raises ValueError naming the row.
    """
    if isinstance(rows, pd.DataFrame):
        missing = [c for c in COLUMNS if c not in rows.columns]
        if missing:
            raise ValueError(f"submission rows lack column(s) {missing}; expected columns {COLUMNS}")
        frame = rows[COLUMNS].copy()
    else:
        frame = pd.DataFrame([tuple(r)[:4] for r in rows], columns=COLUMNS)
    out = []
    for i, row in enumerate(frame.itertuples(index=False, name=None)):
        video, label, start, end = _checked_row(i, row)
        if label == BACKGROUND:
            continue
        out.append((video, label, _round_half_up(start), _round_half_up(end)))
    result = pd.DataFrame(out, columns=COLUMNS).astype(int)
    dropped = len(frame) - len(result)
    if dropped:
        log.info("submission: dropped %d class-0 row(s)", dropped)
    result = result.drop_duplicates().sort_values(["video", "start", "label", "end"], kind="stable")
    return result.reset_index(drop=True)


def write_submission(path: str | Path, rows: pd.DataFrame | Iterable) -> Path:
    """Write rows (video id, class, start s, end s) as a submission file, atomically."""
    frame = to_submission_rows(rows)
    lines = [f"{v} {c} {s} {e}\n" for v, c, s, e in frame.itertuples(index=False, name=None)]
    return atomic_write_text(path, "".join(lines))


def _known_ids(video_ids: str | Path | Iterable[int] | None) -> set[int] | None:
    if video_ids is None:
        return None
    if isinstance(video_ids, (str, Path)):
        from ndar.data.video_ids import read_video_ids

        return set(read_video_ids(video_ids))
    return {int(v) for v in video_ids}


@dataclass
class SubmissionCheck:
    """What `check_submission` found: errors (the file is refused) and warnings (accepted as is)."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# Class ids a submission may hold per edition: 2023/2024 use 1..15; 2022 numbered 18 classes, 1..17.
EDITION_CLASSES = {"2023": SCORED_CLASSES, "2024": SCORED_CLASSES, "2022": tuple(range(1, 18))}


def check_submission(
    path: str | Path,
    video_ids: str | Path | Iterable[int] | None = None,
    strict: bool = False,
    edition: str = "2024",
) -> SubmissionCheck:
    """Every problem of a submission file, one message per problem with its line number.

    Errors: field count, integer ids, ids listed in `video_ids` (a video_ids.csv path or a
    collection of ids) when given, class outside the edition's classes, negative or non-whole
    seconds, end < start, duplicate lines, an empty file. Class-0 lines are a warning, grouped in one
    message: the evaluation server scored real files holding them (CarrotPeeler's 0.5178 file has
    75) and the official evaluation drops class 0, as `score` does; `strict` makes them errors.
    """
    path = Path(path)
    if edition not in EDITION_CLASSES:
        raise ValueError(f"edition must be one of {sorted(EDITION_CLASSES)}, got {edition!r}")
    classes = EDITION_CLASSES[edition]
    check = SubmissionCheck()
    try:
        lines = _lines(path)
    except ValueError as err:
        check.errors.append(str(err))
        return check
    problems = check.errors
    try:
        known = _known_ids(video_ids)
    except ValueError as err:  # an unreadable video id file is a problem to report, not a crash
        problems.append(f"video id list {video_ids}: {err}".replace("\n", " | "))
        known = None
    seen: dict[tuple, int] = {}
    class0: list[int] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        row, reason = _parse_line(text)
        if reason is not None:
            problems.append(f"{where}: {reason}")
            continue
        video, label, start, end = row
        if known is not None and video not in known:
            problems.append(f"{where}: video id {video} is not in the video id list")
        if label == BACKGROUND and strict:
            problems.append(f"{where}: activity id 0 (normal driving) is not scored (--strict)")
        elif label == BACKGROUND:
            class0.append(number)
        elif label not in classes:
            problems.append(f"{where}: activity id {label} is outside {classes[0]}..{classes[-1]}")
        if start < 0 or end < 0:
            problems.append(f"{where}: negative time (start {start:g}, end {end:g})")
        if start != int(start) or end != int(end):
            problems.append(f"{where}: times must be whole seconds (start {start:g}, end {end:g})")
        if end < start:
            problems.append(f"{where}: end {end:g} is before start {start:g}")
        if row in seen:
            problems.append(f"{where}: duplicate of line {seen[row]}")
        else:
            seen[row] = number
    if class0:
        lines_text = format_rows(class0).replace("row", "line")
        check.warnings.append(
            f"{path}: {len(class0)} class-0 line(s) ({lines_text}): not scored, the evaluation drops them"
        )
    if not seen and not problems:
        problems.append(f"{path}: the file has no rows")
    return check


def validate_submission(
    path: str | Path, video_ids: str | Path | Iterable[int] | None = None, strict: bool = False
) -> list[str]:
    """The errors of `check_submission` (warnings left out): an empty list means valid."""
    return check_submission(path, video_ids, strict=strict).errors
