"""Parse the official per-driver label CSVs (2022 and 2023/2024 formats).

Why so tolerant: the official files were typed by hand. `Filename` is written once per video block
and left blank (or a single space) below it, labels read `Class 7`, `7` or `NA`, times are
`H:MM:SS` or `M:SS` with single-digit fields, headers carry stray spaces and a BOM. Every row that
cannot be used becomes an `Issue` naming file, row and reason: nothing is dropped silently.

Rows are numbered as an editor shows them: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ndar import taxonomy
from ndar.data.csvtext import read_csv_rows
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
# The same without 'user_': the 2024 release's user_id_14786.csv writes 'Right_side_window_id_14786_7'.
# View, driver and session are still unambiguous, so label Filenames accept it (with a warning).
VIDEO_NAME_NO_USER_RE = re.compile(
    r"^(?P<view>.+?)_id_(?P<driver>\d+)(?:_noaudio)?_(?P<session>\d+)(?:\.mp4)?$", re.IGNORECASE
)
TIME_FIELD_RE = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class VideoName:
    """What a label `Filename` or a video file name says: view, driver, session."""

    view: str
    driver: str
    session: int


class NoClassError(ValueError):
    """A label of a class the 2023/2024 taxonomy lacks (2022 'Hair / makeup'): the row is not used."""


@dataclass(frozen=True)
class LabelRow:
    """One usable label row: the segment and the video it belongs to."""

    video: VideoName
    segment: Segment
    appearance: str | None
    row: int
    filename: str  # the Filename text as written (after forward fill)
    class_text: str = ""  # the class as the file numbers it ("class 8 (2022 id)" in a 2022 file)


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


def parse_label_filename(name: str) -> tuple[VideoName, bool]:
    """`parse_video_name` for a label Filename, also accepting '<View>_id_<driver>_<session>'.

    Returns (video, lenient): `lenient` is True when the 'user_' was missing, so the caller can warn.
    """
    try:
        return parse_video_name(name), False
    except ValueError:
        stem = Path(name.strip().strip("'\"").strip()).name
        match = VIDEO_NAME_NO_USER_RE.match(stem)
        if not match:
            raise
        try:
            view = taxonomy.canonical_view(match.group("view"))
        except ValueError:
            raise ValueError(
                f"file name {name!r} is not of the form '<View>_user_id_<driver>[_NoAudio]_<session>[.MP4]'"
            ) from None
        video = VideoName(
            view=view, driver=str(int(match.group("driver"))), session=int(match.group("session"))
        )
        return video, True


def parse_time(text: str) -> float:
    """Seconds from 'H:MM:SS', 'M:SS', 'SS' (fields may be single digits, seconds may be fractional).

    Each field must be plain digits: Python's float() would also take 'nan', 'inf', '1e9' and
    '0_2', which are typos in a label file, never times.
    """
    value = text.strip()
    parts = value.split(":")
    if not value or len(parts) > 3 or not all(TIME_FIELD_RE.fullmatch(p.strip()) for p in parts):
        raise ValueError(f"time {text!r} is not H:MM:SS, M:SS or seconds")
    numbers = [float(p) for p in parts]
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
            raise NoClassError(
                f"2022 class {number} ({taxonomy.CLASSES_2022[number]}) has no 2023/2024 class"
            )
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


def format_rows(rows: list[int]) -> str:
    """'rows 34-49' or 'rows 5, 9, 12-14' (consecutive numbers as ranges) or 'row 7'."""
    rows = sorted(set(rows))
    parts: list[str] = []
    start = prev = rows[0]
    for number in rows[1:] + [None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if number is not None:
            start = prev = number
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(parts)


@dataclass
class _Notes:
    """Per-file observations reported once each (per block or per file), not once per row."""

    moved: dict[tuple[str, str, str], list[int]]  # (Filename, Camera View text, used view) -> rows
    kept: dict[tuple[str, str], list[int]]  # (Filename, Camera View text) -> rows, Filename's view kept
    unknown_view: dict[tuple[str, str], list[int]]  # (Filename, Camera View text) -> rows
    lenient: dict[str, list[int]]  # Filename lacking 'user_' -> rows
    no_class: list[int]  # rows of a class without a 2023/2024 class (2022 'Hair / makeup')


def read_label_file(path: str | Path, fmt: str = "auto") -> LabelFile:
    """Parse one label CSV. `fmt` is 'auto', '2022' or '2023' (the 2023/2024 format).

    Unusable rows are reported and left out; checks that need all rows of a video (time order,
    overlaps) are done here too, per video block.
    """
    path = Path(path)
    name = str(path)
    records, issues = read_csv_rows(path, "label file")
    if any(i.level == "error" for i in issues):
        return LabelFile(path, [], issues, "2023")
    if not records or not any(cell.strip() for cell in records[0]):
        return LabelFile(
            path, [], issues + [Issue("error", name, 1, "empty label file (no header row)")], "2023"
        )
    header = records[0]
    columns = _map_header(header)
    missing = [f for f in REQUIRED_FIELDS if f not in columns]
    if missing:
        reason = f"header lacks column(s) {missing}; header read: {[h.strip() for h in header]}"
        return LabelFile(path, [], issues + [Issue("error", name, 1, reason)], "2023")
    if fmt == "auto":
        fmt = _detect_format(header, columns)
    elif fmt not in ("2022", "2023"):
        raise ValueError(f"fmt must be 'auto', '2022' or '2023', got {fmt!r}")

    notes = _Notes({}, {}, {}, {}, [])
    rows: list[LabelRow] = []
    agreed: set[VideoName] = set()  # videos already read with a Camera View that agrees with the Filename
    current_filename = ""
    named: VideoName | None = None
    for row_number, values in enumerate(records[1:], start=2):
        if not any(v.strip() for v in values):
            continue  # an empty line carries no label
        filename = _cell(values, columns, "filename")
        if filename and filename != current_filename:
            current_filename = filename
            try:
                named, lenient = parse_label_filename(filename)
            except ValueError as err:
                named = None
                issues.append(Issue("error", name, row_number, f"unreadable Filename: {err}"))
                continue
            if lenient:
                notes.lenient[filename] = []
        elif not current_filename:
            issues.append(
                Issue("error", name, row_number, "blank Filename with no earlier row to fill it from")
            )
            continue
        if named is None:
            reason = f"belongs to unreadable Filename {current_filename!r}"
            issues.append(Issue("error", name, row_number, reason))
            continue
        if current_filename in notes.lenient:
            notes.lenient[current_filename].append(row_number)
        video = _video_of_row(values, columns, named, current_filename, agreed, notes, row_number)
        row = _parse_row(values, columns, fmt, video, current_filename, name, row_number, issues, notes)
        if row is not None:
            rows.append(row)
    issues += _notes_to_issues(notes, name, fmt)
    _check_blocks(rows, name, issues)
    return LabelFile(path, rows, issues, fmt)


def _video_of_row(
    values: list[str],
    columns: dict[str, int],
    named: VideoName,
    filename: str,
    agreed: set[VideoName],
    notes: _Notes,
    row: int,
) -> VideoName:
    """The video a row labels: the Filename's, unless the Camera View names another view of the same
    session while the Filename's own block was already read (the 2024 release's user_id_47158.csv
    repeats the Dashboard Filename on its Rearview and Rightside Window rows: copy-pasted Filenames,
    the Camera View typed per block). A first disagreement keeps the Filename's view (warned)."""
    text = _cell(values, columns, "view")
    if not text:
        return named
    try:
        view = taxonomy.canonical_view(text)
    except ValueError:
        notes.unknown_view.setdefault((filename, text), []).append(row)
        return named
    if view == named.view:
        agreed.add(named)
        return named
    if named in agreed:
        notes.moved.setdefault((filename, text, view), []).append(row)
        return VideoName(view=view, driver=named.driver, session=named.session)
    notes.kept.setdefault((filename, text), []).append(row)
    return named


def _notes_to_issues(notes: _Notes, name: str, fmt: str) -> list[Issue]:
    issues: list[Issue] = []
    for (filename, text, view), rows in notes.moved.items():
        reason = (
            f"{format_rows(rows)}: Filename {filename!r} repeats a block already read while Camera View says "
            f"{text!r}: the Camera View is taken, rows used for the {view} view"
        )
        issues.append(Issue("warning", name, rows[0], reason))
    for (filename, text), rows in notes.kept.items():
        reason = (
            f"{format_rows(rows)}: Camera View {text!r} disagrees with the view of Filename {filename!r}; "
            "using the Filename's"
        )
        issues.append(Issue("warning", name, rows[0], reason))
    for (filename, text), rows in notes.unknown_view.items():
        reason = f"{format_rows(rows)}: unknown Camera View {text!r}; using the view of Filename {filename!r}"
        issues.append(Issue("warning", name, rows[0], reason))
    for filename, rows in notes.lenient.items():
        video, _ = parse_label_filename(filename)
        reason = (
            f"{format_rows(rows)}: Filename {filename!r} lacks 'user_' ('<View>_user_id_<driver>_<session>'); "
            f"read as the {video.view} view of driver {video.driver}, session {video.session}"
        )
        issues.append(Issue("warning", name, rows[0], reason))
    if notes.no_class:
        reason = (
            f"{len(notes.no_class)} row(s) of 2022 class 7 ({taxonomy.CLASSES_2022[7]}) not used: no 2023/2024 "
            f"class ({format_rows(notes.no_class)})"
        )
        issues.append(Issue("warning", name, notes.no_class[0], reason))
    return issues


def _class_text(label_text: str, label: int, fmt: str) -> str:
    """The class as the file numbers it, for messages: a 2022 file is quoted with its own ids."""
    if fmt != "2022":
        return f"class {label}"
    match = re.search(r"\d+", label_text)
    return f"class {int(match.group())} (2022 id)" if match else f"class {label}"


def _parse_row(
    values: list[str],
    columns: dict[str, int],
    fmt: str,
    video: VideoName,
    filename: str,
    name: str,
    row: int,
    issues: list[Issue],
    notes: _Notes,
) -> LabelRow | None:
    label_text = _cell(values, columns, "label")
    try:
        label = parse_label(label_text, fmt)
    except NoClassError:
        notes.no_class.append(row)
        return None
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
    class_text = _class_text(label_text, label, fmt)
    return LabelRow(video, segment, appearance, row, filename, class_text)


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
        _report_overlaps(block, name, issues)


def _describe(row: LabelRow) -> str:
    return f"{row.segment.start:g}-{row.segment.end:g}s, {row.class_text or f'class {row.segment.label}'}"


def _overlap(a: Segment, b: Segment) -> bool:
    """Segments sharing some time; a repeated zero-length row (5-5s twice) shares its instant too."""
    same = (a.start, a.end) == (b.start, b.end)
    return same or (a.start < b.end and b.start < a.end)


def _report_overlaps(block: list[LabelRow], name: str, issues: list[Issue]) -> None:
    """One error per culprit row, not one per victim.

    A typo'd time (25432 row 3: 00:00:44-00:04:49 for 00:00:44-00:00:49) makes one row span the
    next seven; blaming each of those rows would bury the one to fix. So the row overlapping the
    most others (then the longer, then the later) is reported with all it overlaps and set aside,
    until no overlap is left.
    """
    by_row = {r.row: r for r in block}
    overlaps: dict[int, set[int]] = {r.row: set() for r in block}
    for i, a in enumerate(block):
        for b in block[i + 1 :]:
            if _overlap(a.segment, b.segment):
                overlaps[a.row].add(b.row)
                overlaps[b.row].add(a.row)
    while any(overlaps.values()):
        culprit = max(
            (r for r, o in overlaps.items() if o),
            key=lambda r: (len(overlaps[r]), by_row[r].segment.duration, r),
        )
        others = sorted(overlaps[culprit])
        cur = by_row[culprit]
        if len(others) == 1:
            what = f"row {others[0]} ({_describe(by_row[others[0]])})"
        else:
            what = f"{len(others)} rows ({format_rows(others)}; a typo'd time?)"
        reason = f"segment {_describe(cur)} overlaps {what} of the same video {cur.filename!r}"
        issues.append(Issue("error", name, culprit, reason))
        for other in others:
            overlaps[other].discard(culprit)
        overlaps[culprit] = set()
