"""Fixtures of the data tests (helpers live in data_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_fixtures import make_split


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A clean dataset: A1 with 4 labelled drivers x 2 sessions x 3 views, A2 with 1 driver + video_ids.csv."""
    root = tmp_path / "data"
    make_split(root, "A1", ["101", "102", "103", "104"])
    a2 = make_split(root, "A2", ["201"], sessions=(5, 6), labels=False)
    (a2 / "video_ids.csv").write_text(
        "video_id,video_files1,video_files2,video_files3\n"
        "1,'Dashboard_user_id_201_NoAudio_5.MP4','Rear_view_user_id_201_NoAudio_5.MP4',"
        "'Right_side_window_user_id_201_NoAudio_5.MP4'\n"
        "2,'Dashboard_user_id_201_NoAudio_6.MP4','Rear_view_user_id_201_NoAudio_6.MP4',"
        "'Right_side_window_user_id_201_NoAudio_6.MP4'\n"
    )
    return root
