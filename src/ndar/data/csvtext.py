"""Read a CSV file the way spreadsheets really save them, or say in one line why it cannot be read.

Label and video id files come from Excel and friends: UTF-8 with or without a BOM, Windows-1252,
UTF-16 ("Unicode text"), CRLF, and the CR-only line endings of old Mac Excel, which Python's csv
module reads as one endless line and rejects with a bare `_csv.Error` naming no file. Here every
one of those is read as meant; a binary file (an .xlsx renamed .csv, a video) or line endings that
mix CR-only with LF (no single reading) give one `Issue` naming the file instead of a traceback.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ndar.data.records import Issue


def _decode(data: bytes, name: str, what: str) -> tuple[str | None, list[Issue]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError as err:
            return None, [
                Issue("error", name, None, f"{what} starts with a UTF-16 mark but is not UTF-16: {err}")
            ]
    nul = data.find(b"\x00")
    if nul >= 0:
        reason = f"{what} is binary, not a text CSV (NUL byte at offset {nul}); save it as CSV (UTF-8)"
        return None, [Issue("error", name, None, reason)]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as err:
        reason = (
            f"{what} is not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}); read as Windows-1252"
        )
        return data.decode("cp1252", errors="replace"), [Issue("warning", name, None, reason)]


def _fix_line_endings(text: str, name: str, what: str) -> tuple[str | None, list[Issue]]:
    """CR-only files become LF files; a file mixing lone CRs with LFs is refused (no single reading)."""
    lone_cr = text.replace("\r\n", "").count("\r")
    if not lone_cr:
        return text, []
    if "\n" in text:
        reason = (
            f"{what} mixes CR-only line endings ({lone_cr} lone CR) with LF/CRLF ones, so its rows are "
            "ambiguous; re-save it as CSV (UTF-8)"
        )
        return None, [Issue("error", name, None, reason)]
    return text.replace("\r", "\n"), []


def sniff_delimiter(text: str) -> str:
    """',' unless the first line has tabs or semicolons and no comma."""
    first = text.splitlines()[0] if text.strip() else ""
    for candidate in ("\t", ";"):
        if candidate in first and "," not in first:
            return candidate
    return ","


def read_csv_rows(
    path: str | Path, what: str = "CSV file", sniff: bool = False
) -> tuple[list[list[str]], list[Issue]]:
    """The rows of a CSV file (row 1 is the first line) and the problems found.

    On an error the rows are empty and the one issue says why, naming the file (and the line for a
    CSV syntax error). `sniff` accepts tab or semicolon separated files too.
    """
    path = Path(path)
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        return [], [Issue("error", name, None, f"cannot read {what}: {err}")]
    text, issues = _decode(data, name, what)
    if text is None:
        return [], issues
    text, newline_issues = _fix_line_endings(text, name, what)
    issues += newline_issues
    if text is None:
        return [], issues
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text) if sniff else ",")
    try:
        rows = list(reader)
    except csv.Error as err:
        return [], issues + [Issue("error", name, reader.line_num, f"{what} is not readable as CSV: {err}")]
    return rows, issues
