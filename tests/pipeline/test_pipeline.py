"""The main job, end to end at a tiny size, plus its stage plumbing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ndar.config import ConfigError, load_config
from ndar.executor import Executor, StageError, run_stage
from ndar.pipeline import MainConfig
from ndar.pipeline import run as run_main_job
from ndar.plan import Stage, StageGroup, build_plan, derive_config
from ndar.submission import validate_submission

REPO = Path(__file__).resolve().parents[2]


def test_derive_config_loads_the_base_with_settings_and_overrides(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("data:\n  root: x\n  view: rear\ntrain:\n  epochs: 7\n")
    updates = {"data.view": "dashboard", "output": Path("/q"), "data.k": 4}
    config = derive_config("finetune", base, updates, tmp_path / "d.yaml", ["train.epochs=2"])
    data = config.data  # every key of FinetuneConfig, as the stage will load it
    assert data["data"]["root"] == "x" and data["data"]["view"] == "dashboard" and data["data"]["k"] == 4
    assert data["output"] == "/q" and data["train"]["epochs"] == 2 and "model" in data
    assert not (tmp_path / "d.yaml").exists()  # planning writes nothing
    with pytest.raises(ConfigError, match="config file not found"):
        derive_config("finetune", tmp_path / "missing.yaml", {}, tmp_path / "e.yaml")
    # a wrong key fails while planning, naming the derived config and the override
    with pytest.raises(ConfigError, match=r"d.yaml .*override 'train.epochz=1'"):
        derive_config("finetune", base, {}, tmp_path / "d.yaml", argv_overrides=["train.epochz=1"])


def test_stage_peak_memory_is_its_own_process_tree(tmp_path):
    """A stage whose child process holds 300 MiB reports at least that; one beside it, far less."""
    import sys
    import threading

    from ndar.executor import run_measured

    hog = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'b = bytearray(300 << 20); b[::4096] = b\"x\" * len(b[::4096]); import time; time.sleep(1)'], check=True)"
    results = {}

    def run(name: str, code: str) -> None:
        with open(tmp_path / f"{name}.log", "w") as out:
            results[name] = run_measured([sys.executable, "-c", code], out)

    threads = [threading.Thread(target=run, args=a) for a in (("hog", hog), ("small", "x = 1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (code, hog_run), (small_code, small_run) = results["hog"], results["small"]
    assert code == small_code == 0 and float(hog_run) == hog_run.seconds > 0
    assert hog_run.peak_rss_mib >= 300 and small_run.peak_rss_mib < 100, results
    assert run_measured([sys.executable, "-c", "raise SystemExit(3)"], open(tmp_path / "x.log", "w"))[0] == 3


def test_failing_stage_names_stage_command_and_log(tmp_path):
    stage = Stage(
        "score",
        ["score", "--gt", str(tmp_path / "nope.txt"), "--pred", str(tmp_path / "nope.txt")],
        tmp_path / "logs" / "score.log",
    )
    with pytest.raises(StageError) as err:
        run_stage(stage)
    text = str(err.value)
    assert "stage 'score' failed" in text and "score.log" in text and "nope.txt" in text
    assert (tmp_path / "logs" / "score.log").is_file()


def test_main_config_ships_and_loads():
    cfg = load_config(MainConfig, REPO / "configs" / "main" / "synthetic.yaml")
    # two tracks on three views: the demo's 10 minutes (bench/results/accuracy.md, "Two tracks, three views")
    assert cfg.tracks == ["k400_vith", "hybrid_vitl"] and cfg.views == ["rear", "dashboard", "right"]
    for track in cfg.tracks:
        assert (REPO / cfg.finetune_config.format(track=track)).is_file()
    for head in cfg.heads:
        assert (REPO / cfg.heads_config.format(head=head)).is_file()
    for path in (cfg.extract_config, cfg.ensemble_config, cfg.baseline_config):
        assert (REPO / path).is_file()


@pytest.mark.slow
def test_main_job_end_to_end_tiny(tmp_path, monkeypatch):
    """synth -> check -> baseline -> finetune -> extract -> TIM + ActionFormer -> ensemble -> scored submission."""
    monkeypatch.chdir(REPO)
    overrides = [
        "name=e2e",
        f"runs_dir={tmp_path / 'runs'}",
        f"submissions_dir={tmp_path / 'subs'}",
        f"synth.out={tmp_path / 'data'}",
        "synth.drivers=3",
        "synth.test_drivers=1",
        "synth.time_scale=0.08",
        "tracks=[k400_vith]",
        "views=[rear]",
        "folds=3",
        "finetune_overrides=[train.epochs=1,train.max_steps_per_epoch=3]",
        "heads_overrides=[tim.epochs=1,actionformer.epochs=1,actionformer.warmup_epochs=0]",
        # models trained for 3 steps give near-uniform probabilities (about 1/16): at the tuned
        # thresholds (>= 0.1) A2 could come out with no segment at all, so threshold 0 keeps the
        # submission non-empty; this test checks the plumbing, the quality is random here
        "ensemble_overrides=[tuning.rounds=1,stacker.n_estimators=10,priors.threshold=0.0,"
        '"tuning.threshold_grid=[0.0]",tuning.per_class_thresholds=false]',
    ]
    cfg = load_config(MainConfig, REPO / "configs" / "main" / "synthetic.yaml", overrides)
    summary = run_main_job(cfg)

    submission = tmp_path / "subs" / "e2e" / "submission.txt"
    assert submission.is_file() and (tmp_path / "subs" / "e2e" / "report.html").is_file()
    ids = tmp_path / "data" / "A2" / "video_ids.csv"
    assert validate_submission(submission, ids) == []
    metrics = summary["ensemble"]
    assert 0.0 <= metrics["test_mOS"] <= 1.0 and 0.0 <= metrics["oof_mOS"] <= 1.0
    assert "mOS" in summary["baseline"]
    assert summary["baseline"]["oof"]["sessions"] == 6  # 3 A1 drivers x 2, scored out of fold (k=3)
    assert json.loads((tmp_path / "runs" / "e2e" / "pipeline.json").read_text())["run"] == "e2e"
    assert summary["peak_rss_mib"]["finetune k400_vith/rear fold0"] > 100  # torch and a model at least
    assert set(summary["stages"]) >= {
        "synth",
        "cache-clips rear",  # the synthetic job fine-tunes from the clip cache, as the real one
        "finetune k400_vith/rear fold0",
        "finetune k400_vith/rear fold1",
        "extract fold0",
        "extract fold1",
        "merge-features",
        "heads tim/k400_vith",
        "ensemble",
    }

    # Re-running resumes: finished outputs are not rewritten.
    stamp = submission.stat().st_mtime_ns
    model = tmp_path / "runs" / "e2e" / "finetune" / "k400_vith_rear_fold0" / "model.safetensors"
    model_stamp = model.stat().st_mtime_ns
    run_main_job(cfg)
    assert submission.stat().st_mtime_ns == stamp and model.stat().st_mtime_ns == model_stamp


def test_stage_processes_do_not_inherit_a_process_group(monkeypatch):
    from ndar.executor import _stage_env

    monkeypatch.setenv("MASTER_PORT", "12345")
    monkeypatch.setenv("RANK", "0")
    env = _stage_env()
    assert "MASTER_PORT" not in env and "RANK" not in env and env["PYTHONUNBUFFERED"] == "1"


def test_headline_names_scores_and_paths():
    from ndar.pipeline import headline

    text = headline(
        {
            "run": "r",
            "seconds": 12.4,
            "ensemble": {"oof_mOS": 0.5, "test_mOS": 0.25},
            "baseline": {"mOS": 0.3, "oof": {"mOS": 0.4}},
            "submission": "submissions/r/submission.txt",
            "report": "submissions/r/report.html",
        }
    )
    assert "A2 0.250" in text and "A1 out-of-fold 0.500" in text and "baseline mOS: A2 0.300" in text
    assert "baseline mOS: A1 out-of-fold 0.400" in text
    assert "submissions/r/submission.txt" in text and "submissions/r/report.html" in text


def plan_stages(tmp_path, monkeypatch, overrides: list[str]) -> tuple[MainConfig, list[Stage]]:
    """The main job's stages, in plan order (nothing is run or written)."""
    monkeypatch.chdir(REPO)
    base = [f"runs_dir={tmp_path / 'runs'}", f"submissions_dir={tmp_path / 'subs'}", "jobs=1"]
    cfg = load_config(MainConfig, REPO / "configs" / "main" / "synthetic.yaml", base + overrides)
    return cfg, build_plan(cfg).stages


def test_fold_models_plan_stages_and_configs(tmp_path, monkeypatch):
    """finetune_folds=2: two fold models per track and view, each extracting the A1 drivers it never
    saw, one merge, heads on probabilities; checked on the stage plan (no stage is run)."""
    overrides = ["tracks=[k400_vith]", "views=[rear, dashboard]", "finetune_folds=2", "heads_inputs=probs"]
    cfg, calls = plan_stages(tmp_path, monkeypatch, overrides)
    names = [s.name for s in calls]
    assert [n for n in names if n.startswith("finetune")] == [
        "finetune k400_vith/rear fold0",
        "finetune k400_vith/rear fold1",
        "finetune k400_vith/dashboard fold0",
        "finetune k400_vith/dashboard fold1",
    ]
    assert names.index("extract fold1") < names.index("merge-features") < names.index("heads tim/k400_vith")
    assert not (tmp_path / "runs").exists()
    configs = {s.config.path.stem: s.config.data for s in calls if s.config is not None}
    ft = configs["finetune_k400_vith_rear_fold1"]
    assert ft["data"]["k"] == 2 and ft["data"]["fold"] == 1 and ft["output"].endswith("k400_vith_rear_fold1")
    ex = configs["extract_fold1"]
    assert ex["held_out_fold"] == 1 and ex["folds"] == 2
    assert ex["models"][0]["folder"].endswith("k400_vith_{view}_fold1")
    heads = configs["heads_tim_k400_vith"]
    assert heads["inputs"] == "probs" and heads["features_root"].endswith("features")
    merge = calls[names.index("merge-features")].argv
    assert merge[-2:] == [str(tmp_path / "runs" / cfg.name / "features_folds" / f"fold{f}") for f in (0, 1)]
    assert merge[merge.index("--probs") + 1] == cfg.merge_probs


def test_heads_extra_train_and_per_head_overrides_reach_only_their_heads(tmp_path, monkeypatch):
    overrides = [
        "tracks=[k400_vith, ego_vitl]",
        "heads_extra_train=[tim]",
        "head_overrides={tim: [tim.epochs=3], actionformer: []}",
        "heads_overrides=[seed=5]",
    ]
    cfg, calls = plan_stages(tmp_path, monkeypatch, overrides)
    configs = {s.config.path.stem: s.config.data for s in calls if s.config is not None}
    tim = configs["heads_tim_ego_vitl"]
    assert (
        tim["extra_train_tracks"] == ["k400_vith", "ego_vitl"] and tim["feature_sets"][0] == "ego_vitl/rear"
    )
    af = configs["heads_actionformer_ego_vitl"]
    assert not af.get("extra_train_tracks")
    # the overrides are written into the stage's config (the common ones applied last), so the
    # notebook or a user re-running the stage from runs/<name>/configs/ gets the same run
    assert tim["tim"]["epochs"] == 3 and tim["seed"] == 5
    assert af["seed"] == 5 and not af["tim"]


def test_per_head_settings_must_name_a_head_of_the_run():
    from ndar.pipeline import check_config

    with pytest.raises(StageError, match=r"head_overrides names \['tmi'\]"):
        check_config(MainConfig(head_overrides={"tmi": ["tim.epochs=3"]}))
    with pytest.raises(StageError, match="heads_extra_train needs heads_inputs"):
        check_config(MainConfig(heads_extra_train=["tim"], heads_inputs="features"))
    check_config(MainConfig(heads_extra_train=["tim"], heads_inputs="probs"))


def test_fold_models_refuse_embeddings_and_a_single_fold():
    from ndar.pipeline import check_config

    with pytest.raises(StageError, match="heads_inputs"):
        check_config(MainConfig(finetune_folds=2, heads_inputs="features"))
    with pytest.raises(StageError, match="k >= 2"):
        check_config(MainConfig(finetune_folds=1, heads_inputs="probs"))
    check_config(MainConfig(finetune_folds=0, heads_inputs="features"))
    with pytest.raises(StageError, match="merge_probs='max'"):
        check_config(MainConfig(finetune_folds=2, heads_inputs="probs", merge_probs="max"))


def test_independent_stages_run_jobs_at_a_time_and_every_one_finishes(tmp_path):
    import threading

    from ndar.pipeline import check_config

    job = Executor(build_plan(MainConfig(runs_dir=tmp_path, notebooks=False)), jobs=2)
    together = threading.Barrier(2, timeout=10)  # passes only if two stages run at the same time
    done: list[str] = []

    def stage(name: str, fail: bool = False):
        def call() -> None:
            together.wait()
            done.append(name)
            if fail:
                raise StageError(f"stage '{name}' failed")

        return call

    job.run_together([stage("a"), stage("b")])
    assert sorted(done) == ["a", "b"]
    together.reset()
    done.clear()
    with pytest.raises(StageError, match="'c' failed"):
        job.run_together([stage("c", fail=True), stage("d")])
    assert sorted(done) == ["c", "d"]  # the other stage still ran to its end
    with pytest.raises(StageError, match="same devices"):
        check_config(MainConfig(jobs=2, nproc=2))
    with pytest.raises(StageError, match="jobs=0"):
        check_config(MainConfig(jobs=0))


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from ndar.cli import main

    monkeypatch.chdir(REPO)
    args = ["run", "--config", "configs/main/synthetic.yaml", "--dry-run", f"runs_dir={tmp_path / 'runs'}"]
    args += [f"submissions_dir={tmp_path / 'subs'}", "tracks=[k400_vith]", "views=[rear]"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[1/12] synth" in out and "[12/12] ensemble" in out and "[4/12] cache-clips rear" in out
    assert "$ python -m ndar finetune --config" in out and "produces:" in out and "consumes:" in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "subs").exists()
    # a bad stage override fails while planning, before any folder exists
    assert main([*args[:-3], *args[-3:], "ensemble_overrides=[tuning.roundz=1]"]) == 2
    assert "ensemble.yaml" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    bad = [a for a in args if a != "--dry-run"] + ["finetune_overrides=[train.epochz=1]"]
    assert main(bad) == 2 and not (tmp_path / "runs").exists()


def test_plan_groups_independent_stages_and_chains_files(tmp_path, monkeypatch):
    """The groups run in order; every file a stage consumes is the data root or made by an earlier stage."""
    overrides = ["tracks=[k400_vith, ego_vitl]", "views=[rear, dashboard]", "baseline=false"]
    cfg, stages = plan_stages(tmp_path, monkeypatch, overrides)
    plan = build_plan(cfg)
    groups = [(g.name, g.together, len(g.stages)) for g in plan.groups]
    assert groups[:4] == [
        ("synth", False, 1), ("check-data", False, 1), ("cache-clips", True, 2), ("finetune", True, 8),
    ]  # fmt: skip
    assert ("heads", True, 4) in groups and groups[-1] == ("ensemble", False, 1)
    assert all(isinstance(g, StageGroup) for g in plan.groups)
    made = {Path(cfg.synth.out)}
    for stage in stages:
        for path in stage.inputs:
            assert path in made or any(path == p.parent for p in made), (stage.name, path)
        made |= set(stage.outputs) | {p.parent for p in stage.outputs}


def test_a_stage_that_failed_on_a_rerun_is_not_skipped_next_time(tmp_path, monkeypatch):
    """A finished stage re-run because a stage before it ran, and failing, is run again by the next
    invocation: its record from before must not count it as done over outputs of the old inputs."""
    monkeypatch.chdir(REPO)
    cfg = load_config(
        MainConfig,
        REPO / "configs" / "main" / "synthetic.yaml",
        [f"runs_dir={tmp_path / 'runs'}", f"submissions_dir={tmp_path / 'subs'}", "jobs=1"]
        + ["tracks=[k400_vith]", "views=[rear]", "notebooks=false", f"synth.out={tmp_path / 'data'}"],
    )
    ran, failing = [], set()

    def runner(stage: Stage, nproc: int) -> float:
        ran.append(stage.name)
        if stage.name in failing:
            raise StageError(f"stage '{stage.name}' failed")
        for path in stage.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        return 1.0

    Executor(build_plan(cfg), runner=runner).run()
    build_plan(cfg).stages[0].outputs[0].unlink()  # the first stage has work again: all after it re-run
    failing.add("ensemble")
    with pytest.raises(StageError, match="'ensemble' failed"):
        Executor(build_plan(cfg), runner=runner).run()
    ran.clear()
    failing.clear()
    resumed = Executor(build_plan(cfg), runner=runner)
    resumed.run()
    assert "ensemble" in ran and "ensemble" not in resumed.skipped
    assert resumed.timings["ensemble"] == 1.0
