"""`python -m ndar check-data ROOT`: index a dataset and report every problem with file, row and reason.

Exit status: 0 when there are no errors (warnings alone do not fail), 1 when any error was found,
2 when the root or an asked-for split folder does not exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from ndar import taxonomy
from ndar.data.discover import DatasetIndex, find_split_dir, load_dataset
from ndar.data.labels import format_rows
from ndar.data.records import Issue
from ndar.data.video_check import check_index_videos

SPLITS = ("A1", "A2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="folder holding A1/ and A2/, or one split folder itself")
    parser.add_argument(
        "--split",
        default="all",
        choices=["A1", "A2", "all"],
        help="split to check (all: every split present)",
    )
    parser.add_argument(
        "--labels", default=None, help="separate folder holding the user_id_<d>.csv label files"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the text report"
    )
    parser.add_argument(
        "--videos",
        action="store_true",
        help="open every video: header, every packet parsed, the last second decoded (see docs/data.md)",
    )


def splits_to_load(root: str, split: str) -> list[str]:
    """The splits `check-data`/`prepare` read: the one asked for, or for 'all' every split present."""
    if split != "all":
        return [split]
    present: dict = {}
    for name in SPLITS:
        try:
            folder = find_split_dir(root, name).resolve()
        except FileNotFoundError:
            continue
        present.setdefault(folder, name)  # a root without A1/A2 sub-folders is read once, as A1
    return list(present.values())


def summarise(index: DatasetIndex) -> dict:
    """Counts for the report: drivers, sessions, videos per view, labelled videos, segments."""
    per_view = Counter(v.view for v in index.videos)
    return {
        "split": index.split,
        "folder": str(index.root),
        "drivers": len(index.drivers),
        "sessions": len(index.sessions),
        "videos": len(index.videos),
        "videos_per_view": {view: per_view.get(view, 0) for view in taxonomy.VIEWS},
        "labelled_videos": sum(1 for v in index.videos if v.segments),
        "segments": sum(len(s.segments) for s in index.sessions),
        "sessions_with_video_id": sum(1 for s in index.sessions if s.video_id is not None),
        "errors": len(index.errors),
        "warnings": len(index.warnings),
    }


def format_report(indexes: list[DatasetIndex]) -> str:
    lines: list[str] = []
    for index in indexes:
        info = summarise(index)
        views = ", ".join(f"{view} {n}" for view, n in info["videos_per_view"].items())
        lines.append(f"{info['split']} ({info['folder']})")
        lines.append(
            f"  drivers {info['drivers']}, sessions {info['sessions']}, videos {info['videos']} ({views})"
        )
        lines.append(
            f"  labelled videos {info['labelled_videos']}, ground-truth segments {info['segments']}, "
            f"sessions with a video id {info['sessions_with_video_id']}"
        )
        lines.append(f"  {info['errors']} error(s), {info['warnings']} warning(s)")
        lines += [f"  {line}" for line in group_issues(index.issues)]
    return "\n".join(lines)


def group_issues(issues: list[Issue]) -> list[str]:
    """One line per distinct (level, file, reason), its rows listed and counted ("x64"), errors first.

    A 2022 file has dozens of `NA` rows; one line per row would bury the few errors to fix.
    """
    groups: dict[tuple[str, str, str], list[int | None]] = {}
    for issue in sorted(issues, key=lambda i: (i.level != "error", i.file, i.row or 0)):
        groups.setdefault((issue.level, issue.file, issue.reason), []).append(issue.row)
    lines = []
    for (level, file, reason), rows in groups.items():
        numbered = [r for r in rows if r is not None]
        where = file if not numbered else f"{file}:{format_rows(numbered).split(' ', 1)[1]}"
        count = f" (x{len(rows)})" if len(rows) > 1 else ""
        lines.append(f"{level.upper()} {where}: {reason}{count}")
    return lines


def main(args: argparse.Namespace) -> int:
    splits = splits_to_load(args.root, args.split)
    if not splits:
        print(f"check-data: no A1/ or A2/ folder found under {args.root}", file=sys.stderr)
        return 2
    indexes = []
    for split in splits:
        try:
            indexes.append(load_dataset(args.root, split, labels_dir=args.labels))
        except FileNotFoundError as err:
            print(f"check-data: {err}", file=sys.stderr)
            return 2
        if getattr(args, "videos", False):
            check_index_videos(indexes[-1])
    n_errors = sum(len(i.errors) for i in indexes)
    if args.json:
        report = {
            "ok": n_errors == 0,
            "splits": [summarise(i) for i in indexes],
            "issues": [{"split": i.split, **issue.to_dict()} for i in indexes for issue in i.issues],
        }
        print(json.dumps(report, indent=2))
    else:
        print(format_report(indexes))
        print("OK (no errors)" if n_errors == 0 else f"FAILED: {n_errors} error(s)")
    return 1 if n_errors else 0
