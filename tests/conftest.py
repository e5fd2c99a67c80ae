"""Fixtures shared across test folders."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A tiny synthetic dataset (real H.264 videos, official layout, rear view): the fine-tuning,
    VideoMamba and fault tests all train on it, so it is generated once per session."""
    from ndar.synth.config import SynthConfig
    from ndar.synth.generate import generate

    out = tmp_path_factory.mktemp("tiny_synth") / "data"
    cfg = SynthConfig(
        out=out, drivers=3, test_drivers=1, fps=5.0, width=64, height=48, time_scale=0.1, views=["rear"], gop=10,
        workers=1,
    )  # fmt: skip
    return generate(cfg)
