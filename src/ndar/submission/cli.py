"""`python -m ndar validate-submission FILE [--video-ids CSV]`: exit 1 and list problems, if any."""

from __future__ import annotations

import argparse

from ndar.submission.io import validate_submission


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the submission file")
    parser.add_argument(
        "--video-ids", default=None, help="video_ids.csv of the test split (ids must be listed)"
    )


def main(args: argparse.Namespace) -> int:
    problems = validate_submission(args.file, video_ids=args.video_ids)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.file}")
        return 1
    print(f"{args.file}: valid")
    return 0
