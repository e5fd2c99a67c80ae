"""Config of `python -m ndar prepare` (index the dataset, split drivers into folds, sample clips)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ndar import taxonomy


@dataclass
class PrepareConfig:
    """Settings of `prepare`. Relative paths are taken from the current directory."""

    root: Path = Path("data/synthetic")  # folder holding A1/ and A2/ (or one split folder)
    split: str = "all"  # "A1", "A2" or "all" (every split present); folds and clips come from A1
    labels_dir: Path | None = None  # separate folder of user_id_<d>.csv files (default: beside the videos)
    out: Path = Path("runs/prepare")  # output folder
    k: int = 5  # number of folds (by driver)
    seed: int = 0  # fold assignment and background clip placement
    views: list[str] = field(
        default_factory=lambda: list(taxonomy.VIEWS)
    )  # views to write clips_<view>.csv for
    background_per_video: int = 2  # class-0 clips cut from the gaps between activities, per video
    background_seconds: float = 8.0  # length of a class-0 clip (shorter when the gap is shorter)
    min_seconds: float = 2.0  # shortest class-0 clip (gaps shorter than this are not used)
    margin: float = 1.0  # seconds kept between a class-0 clip and any activity
    min_activity_seconds: float = 1.0  # shorter activities (e.g. 0 s sips) are widened to this
    probe: bool = True  # open each video: duration, fps, frame count, size (PyAV)
    check_videos: bool = True  # with probe: also parse every packet and decode the last second
    strict: bool = False  # fail when the data has errors (default: report them in issues.json and go on)
