"""The main job's notebook path: stage commands, resume records, the same files as the package path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ndar.config import load_config
from ndar.executor import Executor
from ndar.pipeline import MainConfig
from ndar.pipeline import run as run_main_job
from ndar.plan import Stage, build_plan
from ndar.utils.progress import format_seconds

REPO = Path(__file__).resolve().parents[2]


def planned_job(tmp_path, monkeypatch, overrides: list[str], seconds: float = 1.0):
    """A main-job config and a stage runner that records each stage (and creates its outputs)
    instead of running it."""
    calls: list[Stage] = []

    def fake_run(stage: Stage, nproc: int = 1) -> float:
        calls.append(stage)
        for out in stage.outputs:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("{}")
        return seconds

    monkeypatch.chdir(REPO)
    base = [
        f"runs_dir={tmp_path / 'runs'}",
        f"submissions_dir={tmp_path / 'subs'}",
        "jobs=1",
        "baseline=false",
    ]
    base.append(f"synth.out={tmp_path / 'data'}")
    cfg = load_config(MainConfig, REPO / "configs" / "main" / "synthetic.yaml", base + overrides)
    return cfg, calls, fake_run


def test_heads_and_ensemble_run_through_the_notebooks_with_complete_configs(tmp_path, monkeypatch):
    cfg, calls, fake_run = planned_job(tmp_path, monkeypatch, ["tracks=[k400_vith]"])
    run_main_job(cfg, fake_run)
    by_name = {s.name: s.argv for s in calls}
    notebooks = tmp_path / "runs" / "synthetic" / "notebooks"
    tim = by_name["heads tim/k400_vith"]
    assert tim[:3] == ["notebooks", "--notebook", str(REPO / "notebooks" / "10_tim.ipynb")]
    assert tim[tim.index("--executed") + 1] == str(notebooks / "10_tim_k400_vith.ipynb")
    config = Path(tim[tim.index("config_path") + 1])
    # the per-head overrides are in the config itself, so the notebook (or a user) re-runs it as is
    assert yaml.safe_load(config.read_text())["tim"]["epochs"] == 20
    ensemble = by_name["ensemble"]
    assert ensemble[2].endswith("30_ensemble.ipynb") and "--executed" in ensemble

    cfg.notebooks = False
    cfg.name = "direct"
    calls.clear()
    run_main_job(cfg, fake_run)
    by_name = {s.name: s.argv for s in calls}
    assert by_name["heads tim/k400_vith"][:3] == ["heads", "train", "--config"]
    assert by_name["ensemble"][:2] == ["ensemble", "--config"]


def test_finished_stages_are_skipped_and_keep_their_times(tmp_path, monkeypatch, caplog):
    cfg, calls, fake_run = planned_job(
        tmp_path, monkeypatch, ["tracks=[k400_vith]", "views=[rear]"], seconds=5.0
    )
    first = run_main_job(cfg, fake_run)
    ran = [s.name for s in calls]
    calls.clear()
    caplog.set_level("INFO", logger="ndar.pipeline")
    second = run_main_job(cfg, fake_run)
    assert [s.name for s in calls] == ["check-data"]  # it has no outputs: always checked
    assert second["stages"] == first["stages"] and set(second["skipped"]) == set(ran) - {"check-data"}
    assert "[4/11] finetune k400_vith/rear fold0: skipped (done" in caplog.text
    summary = json.loads((tmp_path / "runs" / "synthetic" / "pipeline.json").read_text())
    assert summary["stages"]["extract fold0"] == 5.0

    # a stage whose config changed runs again, and so does everything after it
    calls.clear()
    cfg.head_overrides = {"tim": ["tim.epochs=2"]}
    run_main_job(cfg, fake_run)
    assert [s.name for s in calls] == ["check-data", "heads tim/k400_vith", "ensemble"]


def test_main_job_prints_the_short_summary_only(tmp_path, monkeypatch, capsys):
    import ndar.pipeline as pipeline
    from ndar.cli import main

    cfg, _, fake_run = planned_job(tmp_path, monkeypatch, ["tracks=[k400_vith]", "views=[rear]"])
    # the command line's own output is under test here, so its job runs with the recording runner
    monkeypatch.setattr(pipeline, "run", lambda cfg: run_main_job(cfg, fake_run))
    args = ["run", f"runs_dir={tmp_path / 'runs'}", "--config", "configs/main/synthetic.yaml"]
    args += [
        f"submissions_dir={tmp_path / 'subs'}",
        "jobs=1",
        "baseline=false",
        f"synth.out={tmp_path / 'data'}",
    ]
    assert main([*args, "tracks=[k400_vith]", "views=[rear]", "--no-notebooks"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 8 and "{" not in out and "pipeline.json" in out


@pytest.mark.slow
def test_notebook_and_package_paths_write_the_same_files(tmp_path):
    """One TIM heads stage run both ways on the same resolved config: identical predictions."""
    sys.path.insert(0, str(REPO / "tests" / "heads"))
    from heads_fixtures import make_videos, write_dataset

    a1 = make_videos(n_drivers=4, sessions=1, duration=60.0, seed=0)
    write_dataset(tmp_path / "data", tmp_path / "features", a1, [])
    outs = {}
    for way in ("notebook", "package"):
        outs[way] = tmp_path / way
        config = tmp_path / f"{way}.yaml"
        data = yaml.safe_load((REPO / "configs" / "heads" / "tim_tiny.yaml").read_text())
        data.update(
            data_root=str(tmp_path / "data"),
            features_root=str(tmp_path / "features"),
            feature_sets=["trk/rear", "trk/dashboard"],
            folds=2,
            predict_test=False,
            out=str(outs[way]),
        )
        data["tim"]["epochs"] = 1
        config.write_text(yaml.safe_dump(data))
        if way == "notebook":
            executed = tmp_path / "nb" / "10_tim.ipynb"
            argv = ["notebooks", "--notebook", "notebooks/10_tim.ipynb", "--executed", str(executed)]
            argv += ["-p", "config_path", str(config)]
        else:
            argv = ["heads", "train", "--config", str(config)]
        done = subprocess.run([sys.executable, "-m", "ndar", *argv], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "image/png" in executed.read_text()  # the plots are in the executed copy
    a, b = outs["notebook"], outs["package"]
    assert pd.read_csv(a / "oof" / "segments.csv").equals(pd.read_csv(b / "oof" / "segments.csv"))
    with np.load(a / "oof" / "curves.npz") as ca, np.load(b / "oof" / "curves.npz") as cb:
        assert sorted(ca) == sorted(cb) and all(np.array_equal(ca[k], cb[k]) for k in ca)
    assert (
        json.loads((a / "metrics.json").read_text())["overall"]
        == json.loads((b / "metrics.json").read_text())["overall"]
    )
    names = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*") if "tb" not in p.parts)  # noqa: E731
    assert names(a) == names(b)


def test_notebooks_share_one_parameter_vocabulary_and_papermill_reads_every_line():
    import nbformat

    from ndar.notebooks import inspect_parameters, named_overrides

    declared = {}
    for name in ("10_tim", "20_actionformer", "30_ensemble"):
        path = REPO / "notebooks" / f"{name}.ipynb"
        cell = next(
            c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])
        )
        lines = [line for line in cell.source.splitlines() if line and not line.startswith("#")]
        declared[name] = set(inspect_parameters(path))
        assert len(declared[name]) == len(lines), f"{name}: papermill skipped a parameter line"
    assert declared["10_tim"] == declared["20_actionformer"]
    assert declared["30_ensemble"] - declared["10_tim"] == {"run_name"}
    # an empty default keeps the config's value: only the parameters given become overrides
    assert named_overrides(out="r", folds=0, feature_sets=[], data_root="") == ["out=r"]
    assert named_overrides(feature_sets=["a/rear"], folds=3) == ['feature_sets=["a/rear"]', "folds=3"]


def test_eta_counts_unrecorded_stages_at_their_kinds_mean(tmp_path, monkeypatch):
    cfg, _, _ = planned_job(tmp_path, monkeypatch, ["tracks=[k400_vith]", "views=[rear]", "jobs=2"])
    job = Executor(build_plan(cfg), jobs=cfg.jobs)
    job.timings = {name: 10.0 for name in job.planned if not name.startswith(("heads", "ensemble"))}
    job.timings["heads tim/k400_vith"] = 200.0
    # actionformer: 200 s like the other heads run, shared by 2 jobs; the ensemble: the overall mean
    mean = sum(job.timings.values()) / len(job.timings)
    assert job.eta() == "~" + format_seconds(100 + mean)


def test_extraction_takes_its_own_process_count_and_the_other_stages_the_jobs(tmp_path, monkeypatch, capsys):
    """`extract_nproc` launches only the extraction stages through torchrun with that many processes
    (they run alone, so the cores the paired stages used are free); the rest keep the job's nproc."""
    cfg, calls, fake_run = planned_job(
        tmp_path, monkeypatch, ["tracks=[k400_vith]", "views=[rear]", "extract_nproc=2"]
    )
    given: dict[str, int] = {}

    def recording_run(stage: Stage, nproc: int = 1) -> float:
        given[stage.name] = nproc
        return fake_run(stage, nproc)

    run_main_job(cfg, recording_run)
    extracts = {name for name in given if name.startswith("extract")}
    assert extracts == {"extract fold0", "extract fold1"}
    assert {given[n] for n in extracts} == {2}
    assert {n: p for n, p in given.items() if n not in extracts and p != 1} == {}
    stage = next(s for s in calls if s.name == "extract fold0")
    assert stage.launcher(1)[2:5] == ["torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    finetune = next(s for s in calls if s.name.startswith("finetune"))
    assert finetune.launcher(1) == ["python", "-m", "ndar"]

    from ndar.cli import main

    args = ["run", "--config", "configs/main/synthetic.yaml", "--dry-run", f"runs_dir={tmp_path / 'dry'}"]
    assert main([*args, "tracks=[k400_vith]", "views=[rear]", "extract_nproc=2"]) == 0
    out = capsys.readouterr().out
    assert "$ python -m torch.distributed.run --standalone --nproc_per_node=2 -m ndar extract --config" in out
    assert main([*args, "extract_nproc=-1"]) == 1
