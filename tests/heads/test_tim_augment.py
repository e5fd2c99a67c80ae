"""TIM on augmented feature copies: training draws one copy per slot, inference reads the clean one."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from heads_fixtures import make_videos
from test_tim_train import tiny

from ndar.heads.data import read_feature_file
from ndar.heads.tim import TimHead
from ndar.heads.tim.augment import slot_features

DIMS = {"rear": 8, "dashboard": 8}
K = 2


def with_copies(videos, seed: int = 1):
    """Copies far from the clean features (clean + 10 * (k + 1) + noise), so each is recognisable."""
    rng = np.random.default_rng(seed)
    out = []
    for v in videos:
        v = copy.copy(v)
        v.aug_streams = {
            name: np.stack([a + 10.0 * (k + 1) + rng.normal(0, 0.1, a.shape) for k in range(K)]).astype(
                np.float32
            )
            for name, a in v.streams.items()
        }
        out.append(v)
    return out


@pytest.fixture(scope="module")
def videos():
    return with_copies(make_videos(n_drivers=2, sessions=1, duration=60.0, classes=(1, 2, 4), seed=0))


def test_slot_features_draws_every_copy_and_is_clean_without_rng() -> None:
    clean = torch.arange(20, dtype=torch.float32).view(10, 2)  # (N, D)
    copies = torch.stack([clean + 100, clean + 200])  # (K, N, D)
    rows = torch.tensor([0, 3, 3, 9] * 50)
    assert torch.equal(slot_features(clean, copies, rows, None), clean[rows])
    got = slot_features(clean, copies, rows, np.random.default_rng(0))
    offset = (got - clean[rows])[:, 0]  # which copy each slot took
    assert set(offset.tolist()) == {0.0, 100.0, 200.0}
    assert torch.equal(got - clean[rows], offset[:, None].expand_as(got))  # whole feature from one copy


def test_training_batches_use_copies_and_inference_ignores_them(videos, tmp_path: Path) -> None:
    head = TimHead(tiny("recognition", augment_copies=True, epochs=1), DIMS, seed=0)
    head.feat_gap = 0.5
    prepared = [head._prepare(v, with_targets=True) for v in videos]
    items = head.batcher.training_items(prepared, np.random.default_rng(0))[:4]
    plain = head.batcher.collate(items, prepared)
    drawn = head.batcher.collate(items, prepared, np.random.default_rng(0))
    valid = ~plain["feat_pad"]
    diff = (drawn["feats"]["rear"] - plain["feats"]["rear"])[valid].mean(-1)  # (slots,)
    assert 0.2 < float((diff.abs() > 5).float().mean()) < 0.95  # some slots clean, most copies
    # prediction reads the clean stream only: other copies give the same output
    head.fit(videos, [], tmp_path / "fit")
    scrambled = [copy.copy(v) for v in videos]
    for v in scrambled:
        v.aug_streams = {n: a * 0 - 50 for n, a in v.aug_streams.items()}
    a, b = head.predict(videos), head.predict(scrambled)
    for key in a:
        np.testing.assert_array_equal(a[key].curve, b[key].curve)


def test_training_differs_with_copies_and_is_unchanged_when_off(videos, tmp_path: Path) -> None:
    def weights(cfg, vids, name):
        head = TimHead(cfg, DIMS, seed=0)
        head.fit(vids, [], tmp_path / name)
        return torch.cat([p.detach().flatten() for p in head.model.parameters()])

    clean_videos = [copy.copy(v) for v in videos]
    for v in clean_videos:
        v.aug_streams = {}
    off = weights(tiny("recognition", epochs=1), videos, "off")
    no_copies = weights(tiny("recognition", epochs=1), clean_videos, "none")
    on = weights(tiny("recognition", epochs=1, augment_copies=True), videos, "on")
    assert torch.equal(off, no_copies)
    assert not torch.allclose(on, off)
    with pytest.raises(ValueError, match="augment_copies"):
        TimHead(tiny("recognition", epochs=1, augment_copies=True), DIMS).fit(
            clean_videos, [], tmp_path / "x"
        )


def test_feature_files_carry_copies_to_the_heads(tmp_path: Path) -> None:
    path = tmp_path / "v.npz"
    feats = np.ones((5, 3), np.float16)
    probs = np.full((5, 4), 0.25, np.float32)
    aug = np.stack([feats + 1, feats + 2])
    times = np.arange(5.0)
    np.savez(
        path,
        features=feats,
        probs=probs,
        t_start=times,
        t_end=times + 1,
        features_aug=aug,
        probs_aug=np.stack([probs] * 2),
    )
    got = read_feature_file(path)
    assert got["aug"].shape == (2, 5, 3) and got["aug"].dtype == np.float32
    np.testing.assert_array_equal(got["aug"][1], 3.0)
    np.testing.assert_allclose(read_feature_file(path, "log_probs")["aug"], np.log(0.25), rtol=1e-6)
    np.savez(
        path,
        features=feats,
        probs=probs,
        t_start=times,
        t_end=times + 1,
        features_aug=aug[:, :4],
        probs_aug=np.stack([probs] * 2),
    )
    with pytest.raises(ValueError, match="features_aug"):
        read_feature_file(path)
