"""`python -m ndar validate-submission FILE [--video-ids CSV]`: exit 1 and list problems, if any."""

from __future__ import annotations

import argparse

from ndar.submission.io import EDITION_CLASSES, check_submission


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the submission file")
    parser.add_argument(
        "--video-ids", default=None, help="video_ids.csv of the test split (ids must be listed)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse class-0 lines too (default: a warning; they are not scored)",
    )
    parser.add_argument(
        "--edition",
        default="2024",
        choices=sorted(EDITION_CLASSES),
        help="challenge edition whose class ids apply (2022: 1..17, 2023/2024: 1..15)",
    )


def main(args: argparse.Namespace) -> int:
    check = check_submission(args.file, video_ids=args.video_ids, strict=args.strict, edition=args.edition)
    for warning in check.warnings:
        print(f"warning: {warning}")
    problems = check.errors
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.file}")
        return 1
    print(f"{args.file}: valid")
    return 0
