"""Augmented feature copies (`extract.augment_copies`): N distinct RandAugment copies, deterministic."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from ndar.extract import ExtractConfig, ModelEntry, run
from ndar.extract.augment import augment_clips
from ndar.extract.outputs import read_features
from ndar.finetune.transforms import ConsistentRandAugment

STEM = "Rear_view_user_id_1002_NoAudio_2"


def config(data: Path, models: Path, out: Path, **kw) -> ExtractConfig:
    return ExtractConfig(
        data_root=data,
        splits=["A2"],
        views=["rear"],
        models=[ModelEntry("tiny_a", str(models / "tiny_a_{view}"), stride=4)],
        out=out,
        device="cpu",
        **kw,
    )


def test_augment_clips_is_seeded_per_window_and_leaves_global_random_state_alone() -> None:
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (3, 4, 32, 32, 3), dtype=np.uint8)  # (B, T, H, W, 3)
    aug = ConsistentRandAugment("rand-m9-n2-mstd0.5", 32, (0.5, 0.5, 0.5))
    random.seed(7)
    np.random.seed(7)
    before = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    a = augment_clips(clips, aug, 0, "v", 0, copy=0)
    assert (random.random(), np.random.rand()) == before
    # window 1 alone (first_window=1) gives the same bytes as inside the batch
    np.testing.assert_array_equal(augment_clips(clips[1:2], aug, 0, "v", 1, copy=0)[0], a[1])
    # the seed names the window, the video and the run seed: the same clip at window 0 and 1, in
    # another video or under another seed gets other ops (else every window of a copy would share them)
    twice = augment_clips(np.repeat(clips[:1], 2, axis=0), aug, 0, "v", 0, copy=0)
    assert not np.array_equal(twice[0], twice[1])
    assert not np.array_equal(augment_clips(clips[:1], aug, 0, "w", 0, copy=0)[0], a[0])
    assert not np.array_equal(augment_clips(clips[:1], aug, 1, "v", 0, copy=0)[0], a[0])
    b = augment_clips(clips, aug, 0, "v", 0, copy=1)
    assert a.shape == clips.shape and a.dtype == np.uint8
    assert not np.array_equal(a, b) and not np.array_equal(a, clips)
    with pytest.raises(ValueError, match="uint8"):
        augment_clips(clips.astype(np.int16), aug, 0, "v", 0, copy=0)


@pytest.mark.slow
def test_copies_are_written_distinct_and_deterministic(
    dataset: Path, models_dir: Path, tmp_path: Path
) -> None:
    first = config(dataset, models_dir, tmp_path / "a", augment_copies=2, batch_size=3)
    assert run(first)["done"] == 2
    got = read_features(tmp_path / "a" / "tiny_a" / "rear" / f"{STEM}.npz")
    n, d = got["features"].shape
    assert got["features_aug"].shape == (2, n, d) and got["features_aug"].dtype == np.float16
    assert got["probs_aug"].shape == (2, *got["probs"].shape)
    f = got["features_aug"].astype(np.float32)
    clean = got["features"].astype(np.float32)
    assert np.abs(f[0] - f[1]).max() > 1e-2 and np.abs(f[0] - clean).max() > 1e-2
    meta = json.loads((tmp_path / "a" / "tiny_a" / "rear" / f"{STEM}.json").read_text())
    assert meta["augment"] == {"copies": 2, "spec": "rand-m9-n2-mstd0.5", "seed": 0}
    # same seed, another batch size -> the same copies; the clean features are those of a run without copies
    again = run(config(dataset, models_dir, tmp_path / "b", augment_copies=2, batch_size=5))
    assert again["done"] == 2
    other = read_features(tmp_path / "b" / "tiny_a" / "rear" / f"{STEM}.npz")
    np.testing.assert_allclose(other["features_aug"].astype(np.float32), f, atol=2e-3)
    plain_cfg = config(dataset, models_dir, tmp_path / "a", batch_size=3)
    assert run(plain_cfg)["done"] == 2  # other augment settings: recomputed, not skipped
    plain = read_features(tmp_path / "a" / "tiny_a" / "rear" / f"{STEM}.npz")
    assert "features_aug" not in plain and "augment" not in json.loads(
        (tmp_path / "a" / "tiny_a" / "rear" / f"{STEM}.json").read_text()
    )
    np.testing.assert_array_equal(plain["features"], got["features"])
    assert run(plain_cfg)["skipped"] == 2
