"""The baseline end to end on a tiny synthetic dataset, and its feature and label helpers."""

from __future__ import annotations

import dataclasses
import importlib
import json

import numpy as np
import pytest

from ndar.baseline import BaselineConfig, run
from ndar.baseline.features import add_context, per_second_features
from ndar.baseline.run import labels_per_second
from ndar.data.records import Segment, SessionRecord
from ndar.resume import SettingsChanged
from ndar.synth import SynthConfig, generate


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("bl") / "data"
    tiny = dict(
        drivers=2,
        test_drivers=1,
        fps=4.0,
        width=64,
        height=48,
        time_scale=0.05,
        min_activity_s=1,
        min_gap_s=1,
    )
    return generate(SynthConfig(out=out, seed=5, workers=1, views=["dashboard", "rear"], **tiny))


@pytest.mark.slow
def test_baseline_end_to_end(tiny_dataset, tmp_path):
    from ndar.submission import validate_submission

    cfg = BaselineConfig(
        data_root=tiny_dataset,
        out=tmp_path / "bl",
        thumb_width=8,
        thumb_height=6,
        pca=16,
        workers=1,
        oof_folds=2,
    )
    metrics = run(cfg)
    assert set(metrics["oof"]["per_fold"]) == {"0", "1"} and metrics["oof"]["sessions"] == 4
    assert json.loads((tmp_path / "bl" / "metrics.json").read_text())["oof"] == metrics["oof"]
    assert 0.0 <= metrics["oof"]["mOS"] <= 1.0
    out = tmp_path / "bl"
    for name in ("submission.txt", "metrics.json", "config.yaml", "curves.npz"):
        assert (out / name).is_file(), name
    assert validate_submission(out / "submission.txt", tiny_dataset / "A2" / "video_ids.csv") == []
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["mOS"] == pytest.approx(metrics["mOS"]) and 0.0 <= metrics["mOS"] <= 1.0
    assert metrics["n_gt"] == 30 and metrics["n_pred"] >= 1  # the A2 driver's 2 sessions x 15
    # the submission is what was scored: at most one segment per class and video
    rows = [tuple(map(int, line.split())) for line in (out / "submission.txt").read_text().splitlines()]
    assert len({(v, c) for v, c, _, _ in rows}) == len(rows)
    curves = np.load(out / "curves.npz")
    assert all(curves[k].shape[1] == 16 and np.allclose(curves[k].sum(1), 1, atol=1e-4) for k in curves.files)
    # resume: the same config is not run again
    stamp = (out / "metrics.json").stat().st_mtime_ns
    run(cfg)
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    # other settings over the same folder are refused, naming the change; overwrite redoes the run
    changed = dataclasses.replace(cfg, threshold=0.5)
    with pytest.raises(SettingsChanged, match=r"threshold: 0.25 -> 0.5"):
        run(changed)
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    redone = run(dataclasses.replace(changed, overwrite=True))
    assert redone["config"]["threshold"] == 0.5 and (out / "metrics.json").stat().st_mtime_ns != stamp


def test_baseline_rejects_a_missing_view(tiny_dataset, tmp_path):
    cfg = BaselineConfig(data_root=tiny_dataset, out=tmp_path / "bl", views=["right"], workers=1)
    with pytest.raises(ValueError, match="has no 'right' video"):
        run(cfg)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"fusion": "Late"}, r"baseline\.fusion: expected one of \('late', 'early'\), got 'Late'"),
        ({"classifier": "rf"}, r"baseline\.classifier: expected one of"),
        ({"views": []}, r"baseline\.views: expected distinct views"),
        ({"views": ["rearview"]}, r"baseline\.views: .*got \['rearview'\]"),
        ({"oof_folds": 1}, r"baseline\.oof_folds: expected 0 \(off\) or >= 2"),
    ],
)
def test_a_bad_setting_is_refused_before_anything_is_written(tmp_path, bad, match):
    from ndar.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match=match):
        from_dict(BaselineConfig, {"out": str(tmp_path / "bl"), **bad}, "baseline")
    if "views" not in bad and "oof_folds" not in bad:  # checked on construction: run never sees them
        with pytest.raises(ConfigError, match=match):
            run(BaselineConfig(data_root=tmp_path / "none", out=tmp_path / "bl", **bad))
    assert not (tmp_path / "bl").exists()  # no recorded settings that would refuse the corrected run


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


def make_sessions(drivers: int) -> list[SessionRecord]:
    """Two sessions per driver; classes 1..5 in 6-s segments with 4-s gaps, shifted per session
    (all within the first 56 s)."""
    sessions = []
    for d in range(drivers):
        for n in (1, 2):
            shift = 2 * ((d + n) % 3)
            segs = [Segment(c, shift + 10 * (c - 1) + 2, shift + 10 * (c - 1) + 8) for c in range(1, 6)]
            sessions.append(SessionRecord(driver=str(100 + d), session=n, split="A1", segments=segs))
    return sessions


def test_out_of_fold_scores_every_session_with_a_model_blind_to_its_driver(monkeypatch):
    run_module = importlib.import_module("ndar.baseline.run")

    seconds, rng = 60, np.random.default_rng(0)
    sessions = make_sessions(6)
    labels = [labels_per_second(s, seconds) for s in sessions]
    # features: a noisy one-hot of the second's class (learnable), per view
    feats = {
        s.key: {"rear": np.eye(16)[y] * 3 + rng.normal(0, 0.3, (seconds, 16))}
        for s, y in zip(sessions, labels)
    }
    owner = {id(f): s for s, f in zip(sessions, feats.values())}
    seen = []
    real_fit = run_module.fit_groups

    def spy(cfg, groups, train_feats, train_labels):
        seen.append({owner[id(f)].driver for f in train_feats})
        return real_fit(cfg, groups, train_feats, train_labels)

    monkeypatch.setattr(run_module, "fit_groups", spy)
    cfg = BaselineConfig(views=["rear"], pca=8, oof_folds=3, fold_seed=1, threshold=0.3, smooth=1)
    oof = run_module.out_of_fold_mos(cfg, sessions, feats, labels, [["rear"]])
    from ndar.data.folds import assign_folds

    folds = assign_folds([s.driver for s in sessions], 3, 1)
    assert len(seen) == 3 and oof["sessions"] == 12
    for fold, trained_on in enumerate(seen):  # each fold's model never saw the drivers it predicts
        held = {d for d, f in folds.items() if f == fold}
        assert trained_on == set(folds) - held
    assert oof["mOS"] > 0.8  # the classes are learnable across drivers
    # a fold without training drivers is a clear error, not a silent score
    with pytest.raises(ValueError, match="at least 7 drivers"):
        run_module.out_of_fold_mos(
            BaselineConfig(views=["rear"], oof_folds=7), sessions, feats, labels, [["rear"]]
        )
