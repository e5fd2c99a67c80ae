"""The baseline end to end on a tiny synthetic dataset, and its feature and label helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ndar.baseline import BaselineConfig, run
from ndar.baseline.features import add_context, per_second_features
from ndar.baseline.run import labels_per_second
from ndar.data.records import Segment, SessionRecord
from ndar.synth import SynthConfig, generate


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("bl") / "data"
    tiny = dict(
        drivers=1,
        test_drivers=1,
        fps=4.0,
        width=64,
        height=48,
        time_scale=0.05,
        min_activity_s=1,
        min_gap_s=1,
    )
    return generate(SynthConfig(out=out, seed=5, workers=1, views=["dashboard", "rear"], **tiny))


def test_baseline_end_to_end(tiny_dataset, tmp_path):
    from ndar.submission import validate_submission

    cfg = BaselineConfig(
        data_root=tiny_dataset, out=tmp_path / "bl", thumb_width=8, thumb_height=6, pca=16, workers=1
    )
    metrics = run(cfg)
    out = tmp_path / "bl"
    for name in ("submission.txt", "metrics.json", "config.yaml", "curves.npz"):
        assert (out / name).is_file(), name
    assert validate_submission(out / "submission.txt", tiny_dataset / "A2" / "video_ids.csv") == []
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["mOS"] == pytest.approx(metrics["mOS"]) and 0.0 <= metrics["mOS"] <= 1.0
    assert metrics["n_gt"] == 30 and metrics["n_pred"] >= 1
    # the submission is what was scored: at most one segment per class and video
    rows = [tuple(map(int, line.split())) for line in (out / "submission.txt").read_text().splitlines()]
    assert len({(v, c) for v, c, _, _ in rows}) == len(rows)
    curves = np.load(out / "curves.npz")
    assert all(curves[k].shape[1] == 16 and np.allclose(curves[k].sum(1), 1, atol=1e-4) for k in curves.files)
    # resume: the same config is not run again
    stamp = (out / "metrics.json").stat().st_mtime_ns
    run(cfg)
    assert (out / "metrics.json").stat().st_mtime_ns == stamp


def test_baseline_rejects_a_missing_view(tiny_dataset, tmp_path):
    cfg = BaselineConfig(data_root=tiny_dataset, out=tmp_path / "bl", views=["right"], workers=1)
    with pytest.raises(ValueError, match="has no 'right' video"):
        run(cfg)


def test_per_second_features_average_each_second():
    fps = 4.0
    frames = np.zeros((10, 2, 3), dtype=np.float32)  # 2.5 s
    frames[4:8] = 1.0  # second 1 bright
    feats = per_second_features(frames, fps, normalise=False)
    assert feats.shape == (3, 12)
    assert np.allclose(feats[:, :6].mean(1), [0.0, 1.0, 0.0])
    # motion: one jump into second 1 (1 of 4 frames) and one out of it into second 2 (1 of 2 frames)
    assert np.allclose(feats[:, 6:].mean(1), [0.0, 0.25, 0.5])
    assert add_context(feats, 1).shape == (3, 24)


def test_labels_per_second_use_segment_centres():
    session = SessionRecord("12345", 1, "A1", segments=[Segment(0, 0, 2), Segment(4, 2, 5), Segment(0, 5, 7)])
    assert labels_per_second(session, 7).tolist() == [0, 0, 4, 4, 4, 0, 0]


def test_view_groups_for_late_and_early_fusion():
    from ndar.baseline.run import group_features, view_groups

    assert view_groups(BaselineConfig(views=["rear", "dashboard"])) == [["rear"], ["dashboard"]]
    assert view_groups(BaselineConfig(views=["rear", "dashboard"], fusion="early")) == [["rear", "dashboard"]]
    with pytest.raises(ValueError, match="fusion"):
        view_groups(BaselineConfig(fusion="middle"))
    per_view = {"rear": np.ones((5, 3)), "dashboard": np.zeros((5, 2))}
    assert group_features(per_view, ["rear", "dashboard"], 1).shape == (5, 10)
