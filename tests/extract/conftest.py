"""Session fixtures of the extract tests (helpers in extract_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from extract_fixtures import make_model_folder, make_video, video_path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tracks x two views of tiny fine-tuned model folders: <dir>/<track>_<view>/."""
    root = tmp_path_factory.mktemp("models")
    for t, track in enumerate(("tiny_a", "tiny_b")):
        for v, view in enumerate(("rear", "dashboard")):
            make_model_folder(root / f"{track}_{view}", seed=10 * t + v, img_size=32 if t == 0 else 48)
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An A2 split: two sessions with rear + dashboard (+ right) videos of 40-52 frames."""
    root = tmp_path_factory.mktemp("data")
    for k, (driver, session, frames) in enumerate((("1001", 1, 40), ("1002", 2, 52))):
        for j, prefix in enumerate(("Dashboard", "Rear_view", "Right_side_window")):
            make_video(video_path(root, driver, session, prefix), frames, seed=10 * k + j)
    return root
