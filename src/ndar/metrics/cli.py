"""`python -m ndar score --gt GT.txt --pred PRED.txt [--json]`: the official mOS of a submission."""

from __future__ import annotations

import argparse
import json
import sys

from ndar.metrics.mos import mos
from ndar.submission.io import read_submission


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="ground truth in submission format")
    parser.add_argument("--pred", required=True, help="the submission to score")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def format_table(result) -> str:
    """The per-class table and the totals, as plain text."""
    table = result.per_class.copy()
    table["mos"] = table["mos"].map(lambda v: "-" if v != v else f"{v:.4f}")
    table["sum_os"] = table["sum_os"].map(lambda v: f"{v:.3f}")
    lines = [table.to_string(index=False), ""]
    lines.append(
        f"mOS {result.mos:.4f}  (predictions {result.n_pred}, ground truths {result.n_gt}, "
        f"matched {result.n_matched})"
    )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        gt = read_submission(args.gt)
        pred = read_submission(args.pred)
    except ValueError as err:
        print(f"ndar score: {err}", file=sys.stderr)
        return 1
    result = mos(gt, pred)
    if args.json:
        print(json.dumps(result.to_dict(), default=float))
    else:
        print(format_table(result))
    return 0
