"""Read `video_ids.csv`: the integer id of each test session and the file names of its views.

Releases differ: the 2024 copy reads `video_id,video_files1,video_files2,video_files3` with names
quoted in single quotes (`'Dashboard_user_id_12670_NoAudio_5.MP4'`); others use other column names
and orders. So the id is read from the first column and each other cell is matched to its view by
the file name itself, never by column position.
"""

from __future__ import annotations

import re
from pathlib import Path

from ndar.data.csvtext import read_csv_rows
from ndar.data.labels import parse_video_name
from ndar.data.records import Issue


def _clean(cell: str) -> str:
    return cell.replace("\ufeff", "").strip().strip("'\"").strip()


def _parse_id(text: str) -> int:
    match = re.fullmatch(r"(\d+)(?:\.0+)?", _clean(text))
    if not match:
        raise ValueError(f"video id {text!r} is not an integer")
    return int(match.group(1))


def _is_video_name(cell: str) -> bool:
    try:
        parse_video_name(cell)
    except ValueError:
        return False
    return True


def read_video_ids_with_issues(path: str | Path) -> tuple[dict[int, dict[str, str]], list[Issue]]:
    """`{video_id: {view: filename}}` plus the problems found (rows with problems are reported, not guessed)."""
    path = Path(path)
    name = str(path)
    rows, issues = read_csv_rows(path, "video id file", sniff=True)
    if any(i.level == "error" for i in issues):
        return {}, issues
    result: dict[int, dict[str, str]] = {}
    for row_number, values in enumerate(rows, start=1):
        cells = [_clean(v) for v in values]
        if not any(cells):
            continue
        try:
            video_id = _parse_id(cells[0])
        except ValueError as err:
            if row_number == 1 and not any(_is_video_name(c) for c in cells[1:]):
                continue  # the header row (a first row naming videos is data with a bad id)
            issues.append(Issue("error", name, row_number, str(err)))
            continue
        if video_id in result:
            issues.append(Issue("error", name, row_number, f"video id {video_id} appears twice"))
            continue
        views: dict[str, str] = {}
        for cell in cells[1:]:
            if not cell:
                continue
            try:
                view = parse_video_name(cell).view
            except ValueError as err:
                issues.append(Issue("error", name, row_number, f"unreadable file name: {err}"))
                continue
            if view in views:
                issues.append(
                    Issue(
                        "error", name, row_number, f"two files for view {view!r}: {views[view]!r}, {cell!r}"
                    )
                )
                continue
            views[view] = cell
        if not views:
            issues.append(Issue("error", name, row_number, f"video id {video_id} names no video file"))
        result[video_id] = views
    if not result and not issues:
        issues.append(Issue("error", name, None, "no video ids found"))
    return result, issues


def read_video_ids(path: str | Path) -> dict[int, dict[str, str]]:
    """`{video_id: {view: filename}}` from any `video_ids.csv` layout; raises naming file and row on errors."""
    result, issues = read_video_ids_with_issues(path)
    errors = [str(i) for i in issues if i.level == "error"]
    if errors:
        raise ValueError("invalid video id file:\n" + "\n".join(errors))
    return result
