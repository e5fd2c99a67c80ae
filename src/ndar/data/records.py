"""Typed records shared by every stage.

A *video* is one camera view of one recording session. A *session* is what the challenge scores: the
three synchronised views of one driver's recording, named in submissions by an integer video id
(from `video_ids.csv` for A2). Inside ndar a session is named by its `session_key`,
`"<driver>_<session>"` (e.g. `"42271_3"`), which is stable for A1 and A2 alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Segment:
    """One labelled activity: class id (0..15) and [start, end] in seconds."""

    label: int
    start: float
    end: float
    source: str = ""  # "file:row" it came from, for error messages

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class VideoRecord:
    """One video file: one view of one session."""

    driver: str  # numeric driver id as a string, e.g. "42271"
    session: int  # the trailing number of the file name (..._NoAudio_<session>.MP4)
    view: str  # canonical view: "dashboard" | "rear" | "right"
    path: Path  # the video file on disk
    split: str  # "A1" (labelled) or "A2" (test)
    segments: list[Segment] = field(default_factory=list)  # sorted by start; empty in A2
    appearance: str | None = None  # "None", "Sunglasses", "Hat", ... when the labels say

    @property
    def session_key(self) -> str:
        return session_key(self.driver, self.session)

    @property
    def stem(self) -> str:
        """File name without extension; features are saved under this name."""
        return self.path.stem


@dataclass
class SessionRecord:
    """The views of one recording session, plus its ground truth (A1) or video id (A2)."""

    driver: str
    session: int
    split: str
    views: dict[str, VideoRecord] = field(default_factory=dict)  # canonical view -> video
    segments: list[Segment] = field(default_factory=list)  # the session's ground truth (A1)
    video_id: int | None = None  # the id used in submissions (A2 from video_ids.csv)

    @property
    def key(self) -> str:
        return session_key(self.driver, self.session)


def session_key(driver: str, session: int) -> str:
    return f"{driver}_{session}"


@dataclass(frozen=True)
class Issue:
    """One problem found in the data: where it is (file, CSV row) and what is wrong.

    `level` is "error" (the data is wrong: `check-data` exits non-zero) or "warning" (suspicious or
    unused, e.g. an `NA` label). `row` is the line number in the file as an editor shows it (the
    header is row 1), or None when the problem concerns the whole file or folder.
    """

    level: str  # "error" | "warning"
    file: str
    row: int | None
    reason: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        return f"{self.level.upper()} {where}: {self.reason}"

    def to_dict(self) -> dict:
        return {"level": self.level, "file": self.file, "row": self.row, "reason": self.reason}
