"""Submission files: `video_id activity_id start end` per line (see docs/metrics.md)."""

from ndar.submission.io import (
    SubmissionCheck,
    check_submission,
    read_submission,
    to_submission_rows,
    validate_submission,
    write_submission,
)

__all__ = [
    "SubmissionCheck",
    "check_submission",
    "read_submission",
    "to_submission_rows",
    "validate_submission",
    "write_submission",
]
