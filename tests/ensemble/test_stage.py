"""The whole ensemble stage on tiny synthetic sources; feature sets as sources; the notebook."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from ndar.cli import main as cli_main
from ndar.data.discover import load_dataset
from ndar.ensemble import run
from ndar.ensemble.sources import feature_set_source, load_source
from ndar.ensemble.stage import source_is_current
from ndar.resume import SettingsChanged
from ndar.submission import read_submission, validate_submission


@pytest.fixture(scope="module")
def first_run(bench, tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(bench, out)
    return cfg, run(cfg)


@pytest.mark.slow
def test_run_writes_validated_submission_and_reports(bench, first_run):
    cfg, result = first_run
    run_dir = cfg.out_dir / cfg.run_name
    submission = run_dir / "submission.txt"
    assert result["submission"] == str(submission)
    assert validate_submission(submission, video_ids=bench.root / "data" / "A2" / "video_ids.csv") == []
    rows = read_submission(submission)
    assert set(rows["video"]) == set(bench.ids.values())
    assert rows.groupby("video")["label"].apply(lambda s: s.is_unique).all()  # one segment per class
    for name in ("tuned.yaml", "config.yaml", "report.csv", "report.json", "report.html", "metrics.json"):
        assert (run_dir / name).is_file(), name
    table = pd.read_csv(run_dir / "report.csv")
    assert {"src0", "src1", "src2", "stacker", "segment fusion", "ensemble"} <= set(table["name"])
    ensemble = table[table["name"] == "ensemble"].iloc[0]
    assert ensemble["oof_mOS"] == pytest.approx(result["oof_mOS"], abs=1e-6)
    assert ensemble["test_mOS"] == pytest.approx(result["test_mOS"], abs=1e-6)  # A2_ground_truth.txt found
    singles = table[(table["kind"] == "head")]["oof_mOS"]
    assert result["oof_mOS"] > singles.max()  # the tuned ensemble beats every single source on OOF
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1 + cfg.report_timelines  # confusion + timelines
    assert "Per-class mOS: A1 OOF" in html and "Per-class mOS: A2 test" in html
    # the nested estimate sits beside the in-sample one, and the report says what the tuning kept
    nested = result["nested"]
    assert nested["level"] in cfg.tuning.levels and 0 < nested["tuned_mOS"] <= 1
    assert nested["in_sample_mOS"] == pytest.approx(result["oof_mOS"], abs=1e-6)
    assert f"ensemble, nested CV: {nested['level']}" in set(table["name"])
    assert "tuning level kept: " + nested["level"] in html


@pytest.mark.slow
def test_same_seed_same_bytes_and_resume(bench, tiny_config, first_run, tmp_path):
    cfg, result = first_run
    again = tiny_config(bench, tmp_path)
    run(again)
    first = (cfg.out_dir / cfg.run_name / "submission.txt").read_bytes()
    assert (tmp_path / "tiny" / "submission.txt").read_bytes() == first
    assert (tmp_path / "tiny" / "tuned.yaml").read_text() == (
        cfg.out_dir / cfg.run_name / "tuned.yaml"
    ).read_text()
    marker = tmp_path / "tiny" / "submission.txt"
    marker.write_text("untouched\n")
    assert run(again) == json.loads((tmp_path / "tiny" / "done.json").read_text())["result"]
    assert marker.read_text() == "untouched\n"  # finished run skipped


@pytest.mark.slow
def test_other_settings_over_a_finished_run_are_refused(first_run):
    cfg, _ = first_run
    done = cfg.out_dir / cfg.run_name / "done.json"
    before = done.read_text()
    with pytest.raises(SettingsChanged, match=r"ensemble: .*\(seed: 0 -> 1\): pass overwrite=true"):
        run(dataclasses.replace(cfg, seed=1))
    assert done.read_text() == before  # nothing was redone


@pytest.mark.slow
def test_sources_remade_with_the_same_settings_redo_a_finished_run(bench, tiny_config, tmp_path):
    """Resume keys on what the stage read too: heads retrained (or features re-merged) with the same
    settings must not leave a submission made from their old predictions."""
    import shutil

    from ndar.formats.predictions import read_predictions, write_predictions

    folders = {n: shutil.copytree(f, tmp_path / "sources" / n) for n, f in bench.folders.items()}
    cfg = tiny_config(bench, tmp_path / "runs")
    cfg = dataclasses.replace(
        cfg, sources=[dataclasses.replace(s, path=folders[s.name]) for s in cfg.sources]
    )
    run(cfg)
    submission = tmp_path / "runs" / "tiny" / "submission.txt"
    submission.write_text("marker\n")
    run(cfg)
    assert submission.read_text() == "marker\n"  # nothing changed: the finished run is skipped
    curves, segments = read_predictions(folders["src0"], "test")
    write_predictions(folders["src0"], "test", {k: c[::-1].copy() for k, c in curves.items()}, segments)
    run(cfg)
    assert submission.read_text() != "marker\n"  # src0's A2 predictions changed: redone
    assert validate_submission(submission, video_ids=bench.root / "data" / "A2" / "video_ids.csv") == []


@pytest.mark.slow
def test_cli_with_overrides(bench, tiny_config, tmp_path, capsys):
    cfg = tiny_config(bench, tmp_path)
    config = tmp_path / "ens.yaml"
    from ndar.config import save_config

    save_config(cfg, config)
    args = [
        "ensemble",
        "--config",
        str(config),
        "run_name=cli",
        "fusion.stacker=false",
        "fusion.segment=false",
        "priors.class_thresholds={3: 0.2}",
        "tuning.tune_single_sources=false",
    ]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "OOF mOS" in out and str(tmp_path / "cli" / "submission.txt") in out
    table = pd.read_csv(tmp_path / "cli" / "report.csv")
    stamp = (tmp_path / "cli" / "submission.txt").stat().st_mtime_ns
    assert cli_main(args) == 0  # same config (int-keyed mapping included): finished run skipped
    assert (tmp_path / "cli" / "submission.txt").stat().st_mtime_ns == stamp
    assert "stacker" not in set(table["name"])


def write_features(root, index, track, view, rng, truth):
    """Feature files with window probabilities that follow the truth (2 s windows every 1 s)."""
    for session in index.sessions:
        video = session.views[view]
        segs = truth.get(session.key, [])
        duration = max([e for _, _, e in segs] + [30.0]) + 5
        t_start = np.arange(0, duration - 2, 1.0)
        t_end = t_start + 2
        probs = np.full((len(t_start), 16), 0.01, dtype=np.float32)
        probs[:, 0] = 0.8
        for label, s, e in segs:
            probs[(t_start + 1 >= s) & (t_start + 1 < e), label] = 0.9
        probs /= probs.sum(axis=1, keepdims=True)
        folder = root / track / view
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / f"{video.stem}.npz",
            probs=probs,
            t_start=t_start,
            t_end=t_end,
            features=rng.normal(size=(len(t_start), 4)).astype(np.float16),
        )


def test_feature_set_source(bench, tmp_path):
    data = bench.root / "data"
    rng = np.random.default_rng(0)
    for split, truth in (("A1", bench.oof_truth), ("A2", bench.test_truth)):
        write_features(tmp_path / "features", load_dataset(data, split), "k400_vith", "rear", rng, truth)
    folder = feature_set_source(tmp_path / "features", "k400_vith/rear", data, tmp_path / "src")
    source = load_source("k400_vith_rear", folder, "feature_set")
    assert sorted(source.oof_curves) == sorted(bench.oof_truth)
    assert sorted(source.test_curves) == sorted(bench.test_truth)
    key = sorted(bench.oof_truth)[0]
    label, start, end = bench.oof_truth[key][0]
    curve = source.oof_curves[key]
    assert curve.shape[1] == 16 and curve[int(start) + 1].argmax() == label
    found = source.oof_segments[
        (source.oof_segments["video"] == key) & (source.oof_segments["label"] == label)
    ]
    assert abs(found["start"].iloc[0] - start) <= 1 and abs(found["end"].iloc[0] - end) <= 1
    # a built source is reused while its feature files are the same, rebuilt once they are remade
    assert source_is_current(folder, tmp_path / "features", "k400_vith/rear")
    write_features(tmp_path / "features", load_dataset(data, "A2"), "k400_vith", "rear", rng, {})
    assert not source_is_current(folder, tmp_path / "features", "k400_vith/rear")
    missing = tmp_path / "features" / "k400_vith" / "dashboard"
    with pytest.raises(FileNotFoundError, match="feature file not found"):
        feature_set_source(tmp_path / "features", "k400_vith/dashboard", data, tmp_path / "src2")
    assert not missing.exists()


@pytest.mark.slow
def test_notebook_runs_with_papermill(bench, tiny_config, tmp_path):
    from pathlib import Path

    from ndar.config import save_config
    from ndar.notebooks import run_notebook

    config = tmp_path / "ens.yaml"
    save_config(tiny_config(bench, tmp_path), config)
    repo = Path(__file__).resolve().parents[2]
    executed = run_notebook(
        repo / "notebooks" / "30_ensemble.ipynb",
        tmp_path / "nb",
        {
            "config_path": str(config),
            "run_name": "nb",
            "overrides": ["fusion.stacker=false", "fusion.segment=false", "tuning.tune_single_sources=false"],
            "n_timelines": 1,
        },
        cwd=repo,
    )
    assert executed.is_file()
    run_dir = tmp_path / "nb" / "30_ensemble" / "nb"
    assert validate_submission(run_dir / "submission.txt", video_ids=set(bench.ids.values())) == []
    assert "image/png" in executed.read_text()


def test_shipped_config_loads():
    from pathlib import Path

    from ndar.config import load_config
    from ndar.ensemble.config import EnsembleConfig

    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(EnsembleConfig, repo / "configs" / "ensemble" / "default.yaml", ["tuning.rounds=1"])
    assert cfg.tuning.rounds == 1 and cfg.fusion.stacker and len(cfg.feature_sets) == 6
    assert cfg.stacker == type(cfg.stacker)()  # the YAML states the code's defaults
    assert cfg.fusion == type(cfg.fusion)()
    assert cfg.fusion.curve_rule == "geometric" and cfg.fusion.segment_weight == 1.0


def test_untuned_start_takes_the_configured_pooling_and_segment_weight():
    from ndar.config import ConfigError, load_config
    from ndar.ensemble.config import EnsembleConfig
    from ndar.ensemble.stage import FusionInputs, start_params

    curves = {"a": {"k": np.full((3, 16), 1 / 16)}, "b": {"k": np.full((3, 16), 1 / 16)}}
    segments = pd.DataFrame([("k", 1, 0.0, 2.0, 0.9)], columns=["video", "label", "start", "end", "score"])
    cfg = load_config(EnsembleConfig, None, ["fusion.curve_rule=mean", "fusion.segment_weight=0.5"])
    start = start_params(cfg, FusionInputs(curves, segments))
    assert start.curve_rule == "mean" and start.segment_weight == 0.5
    assert start.curve_weights == {"a": 1.0, "b": 1.0}
    assert start_params(cfg, FusionInputs(curves, None)).segment_weight == 0.0  # no segment fusion
    with pytest.raises(ConfigError, match=r"fusion.*segment_weight must be >= 0"):
        load_config(EnsembleConfig, None, ["fusion.segment_weight=-1"])
    with pytest.raises(ConfigError, match="curve_rule"):
        load_config(EnsembleConfig, None, ["fusion.curve_rule=median"])


def test_an_empty_test_prediction_is_refused_with_the_reason(tmp_path):
    from ndar.ensemble.stage import check_not_empty
    from ndar.ensemble.tuning import EnsembleParams

    empty = pd.DataFrame(columns=["video", "label", "start", "end", "score"])
    history = [{"round": 0, "parameter": "start", "value": None, "mOS": 0.0}, {"mOS": 0.018}]
    with pytest.raises(ValueError, match=r"no segment on any A2 session .*A1 OOF mOS 0\.018"):
        check_not_empty(empty, EnsembleParams(), history, tmp_path)
    one = pd.DataFrame([("s_1", 3, 1.0, 4.0, 0.5)], columns=empty.columns)
    check_not_empty(one, EnsembleParams(), history, tmp_path)  # a single segment is enough


def test_a_failed_overwrite_leaves_no_done_record_for_a_resume_to_skip_on(tmp_path):
    """A run redone with other settings (overwrite=true) that fails must not let a resume with those
    settings skip on the earlier run's done.json: that would return the old result as theirs."""
    from ndar.config import save_config
    from ndar.ensemble.config import EnsembleConfig
    from ndar.ensemble.stage import inputs_digest
    from ndar.utils.io import write_json

    old = EnsembleConfig(run_name="r", out_dir=tmp_path, seed=0)
    save_config(old, tmp_path / "r" / "config.yaml")
    write_json(tmp_path / "r" / "done.json", {"result": {"old": True}, "inputs_sha256": inputs_digest(old)})
    new = dataclasses.replace(old, seed=1, overwrite=True)
    with pytest.raises(ValueError, match="lists no sources"):  # fails after taking over the folder
        run(new)
    with pytest.raises(ValueError, match="lists no sources"):  # the resume redoes it, no old result
        run(dataclasses.replace(new, overwrite=False))
