import json
from pathlib import Path

import numpy as np
import pytest

from ndar.cli import main as cli_main
from ndar.config import ConfigError, load_config
from ndar.formats.predictions import read_predictions
from ndar.heads.config import HeadsConfig
from ndar.heads.runner import run_predict, run_train
from ndar.resume import SettingsChanged

REPO = Path(__file__).resolve().parents[2]


def tiny_config(ds, out, **extra):
    overrides = [
        "head=centroid_test",
        f"data_root={ds['root']}",
        f"features_root={ds['features']}",
        "feature_sets=[trk/rear, trk/dashboard]",
        "folds=3",
        f"out={out}",
    ] + [f"{k}={v}" for k, v in extra.items()]
    return load_config(HeadsConfig, None, overrides)


@pytest.mark.slow
def test_oof_covers_every_session_once_and_resume(synthetic_dataset, tmp_path):
    ds = synthetic_dataset
    out = tmp_path / "run"
    metrics = run_train(tiny_config(ds, out))
    curves, segments = read_predictions(out, "oof")
    assert sorted(curves) == sorted(v.key for v in ds["a1"])
    held = [json.loads((out / "folds" / f"fold_{f}" / "fold.json").read_text())["held_out"] for f in range(3)]
    flat = [k for keys in held for k in keys]
    assert sorted(flat) == sorted(curves) and len(flat) == len(set(flat))  # exactly once
    for f, keys in enumerate(held):  # no driver of the held-out fold was trained on
        train = json.loads((out / "folds" / f"fold_{f}" / "fold.json").read_text())["train"]
        assert not {k.rsplit("_", 1)[0] for k in keys} & {k.rsplit("_", 1)[0] for k in train}
    assert all(c.shape == (120, 16) for c in curves.values())
    test_curves, test_segments = read_predictions(out, "test")
    assert sorted(test_curves) == ["201_1", "202_1"]
    assert set(segments["video"]) <= set(curves)
    # a simple head on separable features finds most segments: well above chance
    assert metrics["overall"]["mOS"] > 0.5 and metrics["overall"]["mAP"] > 0.5
    assert set(metrics["folds"]) == {"0", "1", "2"}
    assert (out / "config.yaml").is_file() and (out / "metrics.csv").is_file()

    stamp = (out / "folds" / "fold_1" / "fold.json").stat().st_mtime_ns
    again = run_train(tiny_config(ds, out))  # resume: every fold done, nothing retrained
    assert (out / "folds" / "fold_1" / "fold.json").stat().st_mtime_ns == stamp
    assert again["overall"]["mOS"] == pytest.approx(metrics["overall"]["mOS"])

    predicted = run_predict(tiny_config(ds, out))  # reload fold models: same predictions
    again_curves, _ = read_predictions(out, "oof")
    for key in curves:
        np.testing.assert_allclose(again_curves[key], curves[key])
    assert predicted["overall"]["mAP"] == pytest.approx(metrics["overall"]["mAP"])


def test_only_some_folds_writes_no_oof(synthetic_dataset, tmp_path):
    out = tmp_path / "partial"
    metrics = run_train(tiny_config(synthetic_dataset, out, only_folds="[0]"))
    assert "overall" not in metrics and not (out / "oof").exists()
    assert set(metrics["folds"]) == {"0"}


def test_unknown_config_keys_are_errors(synthetic_dataset, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['centroid_test'\]"):
        tiny_config(synthetic_dataset, tmp_path / "x", **{"centroid_test.bogus": 1})
    cfg = tiny_config(synthetic_dataset, tmp_path / "y", head="actionformer", **{"actionformer.bogus": 1})
    with pytest.raises(ConfigError, match=r"actionformer: unknown key\(s\) \['bogus'\]"):
        run_train(cfg)


@pytest.mark.slow
def test_cli_train_then_predict(synthetic_dataset, tmp_path, monkeypatch, capsys):
    ds, out = synthetic_dataset, tmp_path / "cli"
    monkeypatch.chdir(REPO)  # the config path is relative to the repository, as in the docs
    args = ["--config", "configs/heads/actionformer_tiny.yaml"]
    args += [
        f"data_root={ds['root']}",
        f"features_root={ds['features']}",
        "feature_sets=[trk/rear]",
        "folds=2",
    ]
    args += [f"out={out}", "actionformer.epochs=1", "predict_test=false"]
    assert cli_main(["heads", "train", *args]) == 0
    assert (out / "oof" / "curves.npz").is_file() and '"mOS"' in capsys.readouterr().out
    first, _ = read_predictions(out, "oof")
    assert cli_main(["heads", "predict", *args]) == 0
    again, _ = read_predictions(out, "oof")
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_extra_train_tracks_add_other_tracks_of_the_training_sessions_only(synthetic_dataset, tmp_path):
    from heads_fixtures import make_videos, write_dataset

    ds = synthetic_dataset
    other = make_videos(n_drivers=6, sessions=2, seed=2)  # the same sessions seen by another backbone
    assert sorted(v.key for v in other) == sorted(v.key for v in ds["a1"])
    write_dataset(tmp_path / "unused_root", ds["features"], other, [], track="trk2")
    out = tmp_path / "xt"
    metrics = run_train(tiny_config(ds, out, inputs="probs", extra_train_tracks="[trk, trk2]"))
    curves, _ = read_predictions(out, "oof")
    assert sorted(curves) == sorted(v.key for v in ds["a1"])  # predictions stay on the run's own sets
    for f in range(3):
        info = json.loads((out / "folds" / f"fold_{f}" / "fold.json").read_text())
        own = [k for k in info["train"] if "+" not in k]
        extra = [k for k in info["train"] if "+" in k]
        assert sorted(extra) == sorted(f"{k}+trk2" for k in own)  # own track skipped, trk2 added
        assert not {k.rsplit("+", 1)[0] for k in extra} & set(info["held_out"])
    assert "overall" in metrics


def test_extra_train_tracks_need_probabilities_and_one_track(synthetic_dataset, tmp_path):
    ds = synthetic_dataset
    with pytest.raises(ValueError, match="probs or log_probs"):
        run_train(tiny_config(ds, tmp_path / "a", extra_train_tracks="[trk2]"))
    with pytest.raises(ValueError, match="one track"):
        run_train(
            tiny_config(
                ds, tmp_path / "b", inputs="probs", extra_train_tracks="[trk2]",
                feature_sets="[trk/rear, trk2/rear]",
            )
        )  # fmt: skip
    with pytest.raises(FileNotFoundError, match="trk3"):  # a missing extra feature file is named
        run_train(tiny_config(ds, tmp_path / "c", inputs="probs", extra_train_tracks="[trk3]"))


def test_fold_models_trained_with_other_settings_are_not_reused(synthetic_dataset, tmp_path):
    ds, out = synthetic_dataset, tmp_path / "run"
    run_train(tiny_config(ds, out, only_folds="[0]"))
    run_train(tiny_config(ds, out))  # only_folds may differ: the other folds are added
    stamp = (out / "folds" / "fold_0" / "fold.json").stat().st_mtime_ns
    with pytest.raises(SettingsChanged, match=r"heads: .* other settings \(folds: 3 -> 2\).*overwrite=true"):
        run_train(tiny_config(ds, out, folds=2))
    assert (out / "folds" / "fold_0" / "fold.json").stat().st_mtime_ns == stamp
    assert (
        "folds: 3" in (out / "config.yaml").read_text().splitlines()
    )  # the saved config still tells the truth
    run_train(tiny_config(ds, out, folds=2, overwrite="true"))  # redone: the 3-fold models are gone
    assert sorted(p.name for p in (out / "folds").iterdir()) == ["fold_0", "fold_1"]
    assert "folds: 2" in (out / "config.yaml").read_text().splitlines()


def test_trim_mismatch_turned_on_keeps_finished_folds(synthetic_dataset, tmp_path):
    """Folds finished with trim_mismatch off had no session to trim, so with it on they would be the
    same models: turning it on (the main job does) reuses them instead of refusing the run."""
    ds, out = synthetic_dataset, tmp_path / "run"
    run_train(tiny_config(ds, out, only_folds="[0]"))
    stamp = (out / "folds" / "fold_0" / "fold.json").stat().st_mtime_ns
    run_train(tiny_config(ds, out, only_folds="[0]", trim_mismatch="true"))
    assert (out / "folds" / "fold_0" / "fold.json").stat().st_mtime_ns == stamp


def test_predict_refuses_settings_other_than_the_models_were_trained_with(synthetic_dataset, tmp_path):
    """Another fold_seed would let a fold model predict drivers it trained on, and recording it in
    config.yaml would let a later `heads train` resume those models as if trained that way."""
    ds, out = synthetic_dataset, tmp_path / "run"
    run_train(tiny_config(ds, out, only_folds="[0]"))
    with pytest.raises(SettingsChanged, match=r"heads predict: .* other settings \(fold_seed: 0 -> 1\)"):
        run_predict(tiny_config(ds, out, only_folds="[0]", fold_seed=1))
    assert "fold_seed: 0" in (out / "config.yaml").read_text().splitlines()
    with pytest.raises(SettingsChanged, match=r"fold_seed: 0 -> 1"):
        run_train(tiny_config(ds, out, only_folds="[0]", fold_seed=1))


def test_features_remade_with_the_same_settings_retrain_the_folds(synthetic_dataset, tmp_path):
    """Resume keys on the feature files too: re-extracted or re-merged features with unchanged
    settings must not leave predictions made from the old ones."""
    from heads_fixtures import video_stem, write_feature_file

    ds = synthetic_dataset
    out = tmp_path / "run"
    run_train(tiny_config(ds, out))
    fold_json = out / "folds" / "fold_0" / "fold.json"
    stamp = fold_json.stat().st_mtime_ns
    before, _ = read_predictions(out, "test")
    run_train(tiny_config(ds, out))
    assert fold_json.stat().st_mtime_ns == stamp  # same files: nothing retrained

    video = ds["a2"][0]  # an A2 video's features remade, as a new merge or extraction would
    video.streams["rear"] = video.streams["rear"][:, ::-1].copy()
    write_feature_file(
        ds["features"] / "trk" / "rear" / f"{video_stem('rear', video.key)}.npz", video, "rear"
    )
    old_checkpoint = fold_json.parent / "checkpoint_of_the_old_training.pt"  # must not be resumed from
    old_checkpoint.write_bytes(b"old")
    run_train(tiny_config(ds, out))
    assert fold_json.stat().st_mtime_ns != stamp and not old_checkpoint.exists()
    after, _ = read_predictions(out, "test")
    assert not np.allclose(after[video.key], before[video.key])
