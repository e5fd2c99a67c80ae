"""A tiny synthetic dataset (real H.264 videos, official layout) shared by the fine-tuning tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    from ndar.synth.config import SynthConfig
    from ndar.synth.generate import generate

    out = tmp_path_factory.mktemp("finetune_synth") / "data"
    cfg = SynthConfig(
        out=out, drivers=3, test_drivers=1, fps=5.0, width=64, height=48, time_scale=0.1, views=["rear"], gop=10,
        workers=1,
    )  # fmt: skip
    return generate(cfg)


def tiny_overrides(root: Path, output: Path) -> list[str]:
    """Shrink the shipped tiny config further for tests: 2 blocks, 4 frames of 32 px, 3 folds."""
    return [
        f"data.root={root}",
        f"output={output}",
        "model.overrides={depth: 2, embed_dim: 32, num_heads: 2}",
        "model.num_frames=4",
        "model.img_size=32",
        "model.sampling_rate=1",
        "data.k=3",
        "data.num_workers=0",
        "data.cache_max_frames=8",
        "train.batch_size=4",
        "train.log_every=1",
        "eval.num_segments=2",
        "eval.num_crops=2",
    ]
