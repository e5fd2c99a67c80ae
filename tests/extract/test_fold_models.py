"""Fold models: extraction limited to the A1 drivers a fold model never saw, and the merge of the
fold folders (A1 copied from its one fold model, A2 averaged over all of them)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ndar.data.folds import assign_folds
from ndar.extract.config import ExtractConfig
from ndar.extract.merge import merge_fold_features
from ndar.extract.outputs import read_features, write_features
from ndar.extract.runner import held_out_sessions
from ndar.formats.features import read_feature_file
from ndar.utils.io import read_json


def fake_index(drivers: list[str], unlabelled: str = "99999"):
    """Two sessions per driver; the last driver has no labels (like an unlabelled folder)."""
    videos = [SimpleNamespace(driver=d, segments=[1] if d != unlabelled else []) for d in drivers]
    sessions = [SimpleNamespace(driver=d, key=f"{d}_{s}") for d in drivers for s in (1, 2)]
    return SimpleNamespace(videos=videos, sessions=sessions)


def test_each_labelled_driver_is_extracted_by_exactly_the_fold_that_held_it_out() -> None:
    drivers = ["11", "22", "33", "44", "55", "99999"]
    index = fake_index(drivers)
    folds = assign_folds(drivers[:-1], 2, 0)  # what the fine-tuning assigns (labelled drivers only)
    seen = []
    for fold in (0, 1):
        cfg = ExtractConfig(held_out_fold=fold, folds=2)
        picked = held_out_sessions(index, index.sessions, cfg)
        assert {s.driver for s in picked} == {d for d, f in folds.items() if f == fold}
        seen += [s.key for s in picked]
    assert sorted(seen) == sorted(s.key for s in index.sessions if s.driver != "99999")
    with pytest.raises(ValueError, match="not a fold"):
        held_out_sessions(index, index.sessions, ExtractConfig(held_out_fold=2, folds=2))


def write_pair(root: Path, name: str, probs: np.ndarray, feats: np.ndarray, sha: str) -> None:
    npz = root / "k400_vith" / "rear" / f"{name}.npz"
    npz.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(len(probs), dtype=np.float64)
    meta = {"checkpoint": str(root), "checkpoint_sha256": sha, "fps": 10.0, "num_frames": 40}
    write_features(npz, npz.with_suffix(".json"), feats, probs, t, t + 1.6, meta)


def test_merge_copies_single_files_and_averages_shared_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    f0, f1, out = tmp_path / "fold0", tmp_path / "fold1", tmp_path / "merged"
    p = {k: rng.dirichlet(np.ones(16), size=5).astype(np.float32) for k in ("a1_0", "a1_1", "a2_0", "a2_1")}
    x = {k: rng.normal(size=(5, 8)).astype(np.float32) for k in p}
    write_pair(f0, "A1video_a", p["a1_0"], x["a1_0"], "sha0")
    write_pair(f1, "A1video_b", p["a1_1"], x["a1_1"], "sha1")
    write_pair(f0, "A2video", p["a2_0"], x["a2_0"], "sha0")
    write_pair(f1, "A2video", p["a2_1"], x["a2_1"], "sha1")

    counts = merge_fold_features([f0, f1], out)
    assert counts == {"copied": 2, "averaged": 1, "skipped": 0}
    folder = out / "k400_vith" / "rear"
    copied = folder / "A1video_a.npz"
    assert copied.read_bytes() == (f0 / "k400_vith" / "rear" / "A1video_a.npz").read_bytes()
    merged = read_features(folder / "A2video.npz")
    np.testing.assert_allclose(merged["probs"], (p["a2_0"] + p["a2_1"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(merged["probs"].sum(1), 1.0, rtol=1e-5)  # still distributions
    meta = read_json(folder / "A2video.json")
    assert len(meta["fold_models"]) == 2 and meta["checkpoint_sha256"] not in ("sha0", "sha1")
    assert read_json(out / "merge.json")["averaged"] == 1
    # what a head reads from the merged folder: the probabilities, or their logs
    probs = read_feature_file(folder / "A2video.npz", "probs")["features"]
    np.testing.assert_allclose(probs, merged["probs"], rtol=1e-6)
    logs = read_feature_file(folder / "A2video.npz", "log_probs")["features"]
    np.testing.assert_allclose(logs, np.log(np.maximum(merged["probs"], 1e-4)), rtol=1e-5)
    with pytest.raises(ValueError, match="inputs"):
        read_feature_file(folder / "A2video.npz", "logits")
    # a second merge finds everything done; a retrained fold model makes its files merge again
    assert merge_fold_features([f0, f1], out) == {"copied": 0, "averaged": 0, "skipped": 3}
    write_pair(f1, "A2video", p["a2_0"], x["a2_0"], "sha1-retrained")
    assert merge_fold_features([f0, f1], out) == {"copied": 0, "averaged": 1, "skipped": 2}
    np.testing.assert_allclose(read_features(folder / "A2video.npz")["probs"], p["a2_0"], rtol=1e-6)


def test_merge_refuses_fold_files_of_different_windows(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    write_pair(tmp_path / "f0", "v", rng.dirichlet(np.ones(16), 5), rng.normal(size=(5, 4)), "a")
    write_pair(tmp_path / "f1", "v", rng.dirichlet(np.ones(16), 6), rng.normal(size=(6, 4)), "b")
    with pytest.raises(ValueError, match="different windows"):
        merge_fold_features([tmp_path / "f0", tmp_path / "f1"], tmp_path / "out")
    with pytest.raises(ValueError, match="at least two"):
        merge_fold_features([tmp_path / "f0"], tmp_path / "out")


def test_a_copy_killed_midway_leaves_no_pair_that_looks_merged(tmp_path: Path, monkeypatch) -> None:
    import shutil

    import ndar.extract.merge as merge

    rng = np.random.default_rng(2)
    f0, f1, out = tmp_path / "f0", tmp_path / "f1", tmp_path / "out"
    write_pair(f0, "A1video", rng.dirichlet(np.ones(16), 5), rng.normal(size=(5, 4)), "old")
    write_pair(f1, "other", rng.dirichlet(np.ones(16), 5), rng.normal(size=(5, 4)), "b")
    merge_fold_features([f0, f1], out)
    folder = out / "k400_vith" / "rear"
    write_pair(f0, "A1video", rng.dirichlet(np.ones(16), 5), rng.normal(size=(5, 4)), "new")

    def crash(src, dst):  # the copy dies part-way through the npz
        Path(dst).write_bytes(Path(src).read_bytes()[:10])
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfile", crash)
    with pytest.raises(OSError, match="disk full"):
        merge.merge_fold_features([f0, f1], out)
    assert not (folder / "A1video.json").exists()  # the old json is gone: the pair is not complete
    assert not list(folder.glob(".*"))  # no temporary file left behind
    monkeypatch.undo()
    assert merge.merge_fold_features([f0, f1], out)["copied"] == 1  # resume redoes it
    assert read_json(folder / "A1video.json")["checkpoint_sha256"] == "new"


def entropy(p: np.ndarray) -> float:
    """Mean window entropy in nats, written here apart from the code under test."""
    p = p.astype(np.float64)
    return float(np.mean([-sum(v * np.log(v) for v in row if v > 0) for row in p]))


def test_entropy_matched_merge_is_as_sharp_as_one_fold_model_and_keeps_its_ranking(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    f0, f1 = tmp_path / "fold0", tmp_path / "fold1"
    a = rng.dirichlet(np.full(16, 0.3), size=40).astype(np.float32)  # two models that disagree
    b = rng.dirichlet(np.full(16, 0.3), size=40).astype(np.float32)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    write_pair(f0, "A2video", a, x, "sha0")
    write_pair(f1, "A2video", b, x, "sha1")
    plain, matched = tmp_path / "plain", tmp_path / "matched"
    merge_fold_features([f0, f1], plain, "mean")
    merge_fold_features([f0, f1], matched, "entropy-matched")
    mean = read_features(plain / "k400_vith" / "rear" / "A2video.npz")["probs"]
    sharp = read_features(matched / "k400_vith" / "rear" / "A2video.npz")["probs"]
    target = (entropy(a) + entropy(b)) / 2
    assert entropy(mean) > target + 0.1  # the plain mean is flatter than either model
    assert entropy(sharp) == pytest.approx(target, abs=1e-3)
    np.testing.assert_allclose(sharp.sum(axis=1), 1.0, atol=1e-5)
    assert (np.argsort(-sharp, axis=1)[:, :3] == np.argsort(-mean, axis=1)[:, :3]).all()
    meta = read_json(matched / "k400_vith" / "rear" / "A2video.json")
    assert meta["probs_rule"] == "entropy-matched" and 0 < meta["probs_temperature"] < 1
    # a merge with the other rule is redone, not taken as finished; the same rule resumes
    assert merge_fold_features([f0, f1], plain, "entropy-matched")["averaged"] == 1
    assert merge_fold_features([f0, f1], plain, "entropy-matched")["skipped"] == 1
    with pytest.raises(ValueError, match="probs rule 'max'"):
        merge_fold_features([f0, f1], plain, "max")


def test_entropy_matched_merge_leaves_agreeing_models_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(16), size=10).astype(np.float32)
    x = rng.normal(size=(10, 8)).astype(np.float32)
    write_pair(tmp_path / "fold0", "A2video", p, x, "sha0")
    write_pair(tmp_path / "fold1", "A2video", p, x, "sha1")
    merge_fold_features([tmp_path / "fold0", tmp_path / "fold1"], tmp_path / "out", "entropy-matched")
    merged = read_features(tmp_path / "out" / "k400_vith" / "rear" / "A2video.npz")["probs"]
    np.testing.assert_allclose(merged, p, atol=1e-6)
    assert read_json(tmp_path / "out" / "k400_vith" / "rear" / "A2video.json")["probs_temperature"] == 1.0
