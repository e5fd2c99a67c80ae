"""Fixtures of the heads tests (helpers in `heads_fixtures`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from heads_fixtures import make_videos, write_dataset


@pytest.fixture
def synthetic_dataset(tmp_path: Path) -> dict:
    """6 A1 drivers x 2 sessions and 2 A2 drivers on disk; returns paths and the in-memory videos."""
    a1 = make_videos(n_drivers=6, sessions=2, seed=0)
    a2 = make_videos(n_drivers=2, sessions=1, seed=1, split="A2", first_driver=201)
    root, features = tmp_path / "data", tmp_path / "features"
    write_dataset(root, features, a1, a2)
    return {"root": root, "features": features, "a1": a1, "a2": a2, "sets": ["trk/rear", "trk/dashboard"]}


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models run fastest on one thread; two threads on a busy 2-core machine were 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
