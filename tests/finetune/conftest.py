"""Helpers of the fine-tuning tests (the tiny dataset, `synth_root`, is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def tiny_overrides(root: Path, output: Path) -> list[str]:
    """Shrink the shipped tiny config further for tests: 2 blocks, 4 frames of 32 px, 3 folds."""
    return [
        "train.torch_threads=1",
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


@pytest.fixture(scope="session")
def shrink():
    """`shrink(root, output) -> overrides` for the shipped tiny config (see `tiny_overrides`)."""
    return tiny_overrides


@pytest.fixture(scope="session")
def driver_clips(synth_root, tmp_path_factory) -> Path:
    """The synthetic clips relabelled by driver (label = driver rank + 1), folds by row.

    Drivers differ in clothing colour, so this labelling is learnable within a few steps: the
    engine tests use it to check that training lowers the loss, independent of how hard the
    synthetic activities are to tell apart.
    """
    from ndar.finetune.data import load_clip_samples

    clips = load_clip_samples(synth_root, None, "rear", k=3)
    drivers = sorted(clips["driver"].unique())
    clips["label"] = clips["driver"].map({d: i + 1 for i, d in enumerate(drivers)})
    clips["fold"] = [i % 3 for i in range(len(clips))]
    path = tmp_path_factory.mktemp("clips") / "clips_rear.csv"
    clips.to_csv(path, index=False)
    return path
