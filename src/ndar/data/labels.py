"""Parse the official per-driver label CSVs (2022 and 2023/2024 formats).

Why so tolerant: the official files were typed by hand. `Filename` is written once per video block
and left blank (or a single space) below it, labels read `Class 7`, `7` or `NA`, times are
`H:MM:SS` or `M:SS` with single-digit fields, headers carry stray spaces and a BOM. Every row that
cannot be used becomes an `Issue` naming file, row and reason: nothing is dropped silently.

Rows are numbered as an editor shows them: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from ndar import taxonomy
from ndar.data.records import Issue, Segment

# Normalised header name -> field. Headers are lower-cased with spaces collapsed before lookup.
HEADER_ALIASES: dict[str, str] = {
    "filename": "filename",
    "file name": "filename",
    "file": "filename",
    "video": "filename",
    "camera view": "view",
    "camera": "view",
    "view": "view",
    "activity type": "activity",
    "start time": "start",
    "start": "start",
    "end time": "end",
    "end": "end",
    "label (primary)": "label",
    "label/class id": "label",
    "label / class id": "label",
    "label": "label",
    "class id": "label",
    "class": "label",
    "appearance block": "appearance",
    "appearance": "appearance",
    "user id": "user_id",
    "userid": "user_id",
}
REQUIRED_FIELDS = ("filename", "start", "end", "label")
NA_LABELS = {"na", "n/a", "nan", "none", ""}

# '<View>_user_id_<driver>[_NoAudio]_<session>[.mp4]', any case, any view spelling.
VIDEO_NAME_RE = re.compile(
    r"^(?P<view>.+?)_user_id_(?P<driver>\d+)(?:_noaudio)?_(?P<session>\d+)(?:\.mp4)?$", re.IGNORECASE
)


@dataclass(frozen=True)
class VideoName:
    """What a label `Filename` or a video file name says: view, driver, session."""

    view: str
    driver: str
    session: int


@dataclass(frozen=True)
class LabelRow:
    """One usable label row: the segment and the video it belongs to."""

    video: VideoName
    segment: Segment
    appearance: str | None
    row: int
    filename: str  # the Filename text as written (after forward fill)


@dataclass
class LabelFile:
    """A parsed label CSV: usable rows, the problems found, and which format it was."""

    path: Path
    rows: list[LabelRow]
    issues: list[Issue]
    fmt: str  # "2023" (2023/2024 header) or "2022"

    def block_rows(self) -> dict[VideoName, list[LabelRow]]:
        """Rows grouped by the video they name, in file order."""
        blocks: dict[VideoName, list[LabelRow]] = {}
        for row in self.rows:
            blocks.setdefault(row.video, []).append(row)
        return blocks


def parse_video_name(name: str) -> VideoName:
    """Read view, driver and session from 'Rear_view_User_id_42271_NoAudio_3.MP4' or 'Dashboard_user_id_42271_3'."""
    stem = name.strip().strip("'\"").strip()
    stem = Path(stem).name
    match = VIDEO_NAME_RE.match(stem)
    if not match:
        raise ValueError(
            f"file name {name!r} is not of the form '<View>_user_id_<driver>[_NoAudio]_<session>[.MP4]'"
        )
    view = taxonomy.canonical_view(match.group("view"))
    driver = str(int(match.group("driver")))
    return VideoName(view=view, driver=driver, session=int(match.group("session")))


def parse_time(text: str) -> float:
    """Seconds from 'H:MM:SS', 'M:SS', 'SS' (fields may be single digits, seconds may be fractional)."""
    value = text.strip()
    parts = value.split(":")
    if not value or len(parts) > 3 or any(p.strip() == "" for p in parts):
        raise ValueError(f"time {text!r} is not H:MM:SS, M:SS or seconds")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"time {text!r} is not H:MM:SS, M:SS or seconds") from None
    if any(n < 0 for n in numbers) or any(n >= 60 for n in numbers[1:]):
        raise ValueError(f"time {text!r} has a negative field or minutes/seconds of 60 or more")
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


def parse_label(text: str, fmt: str) -> int | None:
    """Class id (2023 numbering) from 'Class 7', '7' or '7.0'; None for NA. Raises on anything else.

    In the 2022 format the number is a 2022 id and is mapped with `taxonomy.MAP_2022_TO_2023`;
    2022's 'Hair / makeup' has no 2023 class and raises.
    """
    value = text.strip()
    if value.lower() in NA_LABELS:
        return None
    match = re.fullmatch(r"(?i)(?:class\s*)?(\d+)(?:\.0+)?", value)
    if not match:
        raise ValueError(f"label {text!r} is not 'Class N', an integer or NA")
    number = int(match.group(1))
    if fmt == "2022":
        if number not in taxonomy.MAP_2022_TO_2023:
            raise ValueError(f"unknown class {number} (2022 ids are 0..{len(taxonomy.CLASSES_2022) - 1})")
        mapped = taxonomy.MAP_2022_TO_2023[number]
        if mapped is None:
            raise ValueError(f"2022 class {number} ({taxonomy.CLASSES_2022[number]}) has no 2023/2024 class")
        return mapped
    if not 0 <= number < taxonomy.NUM_CLASSES:
        raise ValueError(f"unknown class {number} (classes are 0..{taxonomy.NUM_CLASSES - 1})")
    return number


def normalise_header(name: str) -> str:
    return re.sub(r"\s+", " ", name.replace("\ufeff", "").strip().lower())


def _map_header(header: list[str]) -> dict[str, int]:
    """Field -> column index (first column wins when two headers map to one field)."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        fieldname = HEADER_ALIASES.get(normalise_header(name))
        if fieldname and fieldname not in columns:
            columns[fieldname] = index
    return columns


def _detect_format(header: list[str], columns: dict[str, int]) -> str:
    """'2022' when the header has a 'User ID' column or the label column is 'Label/Class ID'."""
    label_header = normalise_header(header[columns["label"]]).replace(" ", "")
    return "2022" if "user_id" in columns or label_header == "label/classid" else "2023"


def _cell(values: list[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    if index is None or index >= len(values):
        return ""
    return values[index].strip()


def read_label_file(path: str | Path, fmt: str = "auto") -> LabelFile:
    """Parse one label CSV. `fmt` is 'auto', '2022' or '2023' (the 2023/2024 format).

    Unusable rows are reported and left out; checks that need all rows of a video (time order,
    overlaps) are done here too, per video block.
    """
    path = Path(path)
    name = str(path)
    issues: list[Issue] = []
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as err:
        return LabelFile(path, [], [Issue("error", name, None, f"cannot read label file: {err}")], "2023")
    records = list(csv.reader(io.StringIO(text)))
    if not records or not any(cell.strip() for cell in records[0]):
        return LabelFile(path, [], [Issue("error", name, 1, "empty label file (no header row)")], "2023")
    header = records[0]
    columns = _map_header(header)
    missing = [f for f in REQUIRED_FIELDS if f not in columns]
    if missing:
        reason = f"header lacks column(s) {missing}; header read: {[h.strip() for h in header]}"
        return LabelFile(path, [], [Issue("error", name, 1, reason)], "2023")
    if fmt == "auto":
        fmt = _detect_format(header, columns)
    elif fmt not in ("2022", "2023"):
        raise ValueError(f"fmt must be 'auto', '2022' or '2023', got {fmt!r}")

    rows: list[LabelRow] = []
    current_filename = ""
    current_video: VideoName | None = None
    for row_number, values in enumerate(records[1:], start=2):
        if not any(v.strip() for v in values):
            continue  # an empty line carries no label
        filename = _cell(values, columns, "filename")
        if filename:
            current_filename = filename
            try:
                current_video = parse_video_name(filename)
            except ValueError as err:
                current_video = None
                issues.append(Issue("error", name, row_number, f"unreadable Filename: {err}"))
                continue
            _check_view_column(values, columns, current_video, name, row_number, issues)
        elif not current_filename:
            issues.append(
                Issue("error", name, row_number, "blank Filename with no earlier row to fill it from")
            )
            continue
        if current_video is None:
            issues.append(
                Issue("error", name, row_number, f"belongs to unreadable Filename {current_filename!r}")
            )
            continue
        row = _parse_row(values, columns, fmt, current_video, current_filename, name, row_number, issues)
        if row is not None:
            rows.append(row)
    _check_blocks(rows, name, issues)
    return LabelFile(path, rows, issues, fmt)


def _check_view_column(
    values: list[str], columns: dict[str, int], video: VideoName, name: str, row: int, issues: list[Issue]
) -> None:
    """Warn when the 'Camera View' column names another view than the Filename (the Filename wins)."""
    text = _cell(values, columns, "view")
    if not text:
        return
    try:
        view = taxonomy.canonical_view(text)
    except ValueError:
        issues.append(Issue("warning", name, row, f"unknown Camera View {text!r}; using the Filename's view"))
        return
    if view != video.view:
        reason = (
            f"Camera View {text!r} disagrees with the Filename's view {video.view!r}; using the Filename's"
        )
        issues.append(Issue("warning", name, row, reason))


def _parse_row(
    values: list[str],
    columns: dict[str, int],
    fmt: str,
    video: VideoName,
    filename: str,
    name: str,
    row: int,
    issues: list[Issue],
) -> LabelRow | None:
    label_text = _cell(values, columns, "label")
    try:
        label = parse_label(label_text, fmt)
    except ValueError as err:
        issues.append(Issue("error", name, row, str(err)))
        return None
    if label is None:
        issues.append(Issue("warning", name, row, f"label {label_text!r} is NA; row not used"))
        return None
    try:
        start = parse_time(_cell(values, columns, "start"))
        end = parse_time(_cell(values, columns, "end"))
    except ValueError as err:
        issues.append(Issue("error", name, row, f"unreadable time: {err}"))
        return None
    if end < start:
        issues.append(Issue("error", name, row, f"end {end:g}s is before start {start:g}s"))
        return None
    appearance = _cell(values, columns, "appearance") or None
    segment = Segment(label=label, start=start, end=end, source=f"{name}:{row}")
    return LabelRow(video=video, segment=segment, appearance=appearance, row=row, filename=filename)


def _check_blocks(rows: list[LabelRow], name: str, issues: list[Issue]) -> None:
    """Per video: rows out of time order (warning, they are sorted) and overlapping segments (error)."""
    blocks: dict[VideoName, list[LabelRow]] = {}
    for row in rows:
        blocks.setdefault(row.video, []).append(row)
    for block in blocks.values():
        for prev, cur in zip(block, block[1:]):
            if cur.segment.start < prev.segment.start:
                reason = (
                    f"starts before the previous row {prev.row} of the same video (rows out of time order)"
                )
                issues.append(Issue("warning", name, cur.row, reason))
        ordered = sorted(block, key=lambda r: (r.segment.start, r.segment.end))
        for index, cur in enumerate(ordered[1:], start=1):
            prev = max(ordered[:index], key=lambda r: r.segment.end)  # the earlier row reaching furthest
            if cur.segment.start < prev.segment.end:
                reason = (
                    f"segment {cur.segment.start:g}-{cur.segment.end:g}s (class {cur.segment.label}) overlaps "
                    f"row {prev.row} ({prev.segment.start:g}-{prev.segment.end:g}s, class {prev.segment.label}) "
                    f"of the same video {cur.filename!r}"
                )
                issues.append(Issue("error", name, cur.row, reason))
