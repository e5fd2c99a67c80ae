"""One place for the run layout: the main job, the stage defaults and the shell scripts agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ndar.config import load_config
from ndar.layout import STANDALONE, RunLayout, model_name, stage_slug
from ndar.pipeline import MainConfig
from ndar.plan import build_plan

REPO = Path(__file__).resolve().parents[2]


def test_run_folders_and_names():
    layout = RunLayout.of("r", Path("runs"), Path("subs"))
    assert layout.finetune("k400_vith", "rear") == Path("runs/r/finetune/k400_vith_rear")
    assert layout.finetune("k400_vith", "rear", 2) == Path("runs/r/finetune/k400_vith_rear_fold2")
    assert layout.heads("tim", "ego_vitl") == Path("runs/r/heads/tim_ego_vitl")
    assert layout.fold_features(1) == Path("runs/r/features_folds/fold1")
    assert layout.clipcache("hybrid_vitl") == Path("runs/r/clipcache/hybrid_vitl")
    from ndar.clipcache.store import MANIFEST

    manifest = layout.clipcache_manifest("hybrid_vitl", "Rear_view")
    assert manifest == Path("runs/r/clipcache/hybrid_vitl/rear") / MANIFEST
    assert layout.submission == Path("subs/r/submission.txt")
    assert layout.stage_log("finetune k400_vith/rear fold0") == Path(
        "runs/r/logs/finetune_k400_vith_rear_fold0.log"
    )
    assert layout.stage_record("heads tim/k") == Path("runs/r/stages/heads_tim_k.json")
    assert model_name("t", "dashboard", None) == "t_dashboard" and stage_slug("a b/c") == "a_b_c"


def test_stage_defaults_come_from_the_layout():
    from ndar.baseline.config import BaselineConfig
    from ndar.clipcache.config import ClipCacheConfig
    from ndar.extract.config import ExtractConfig
    from ndar.finetune.config import FinetuneConfig

    assert ExtractConfig().out == STANDALONE.features == Path("runs/features")
    assert FinetuneConfig().output == STANDALONE.finetune("tiny", "rear")
    assert BaselineConfig().out == STANDALONE.baseline and ClipCacheConfig().out == Path("runs/clipcache")


def test_every_planned_path_is_under_the_run_or_its_submission(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    overrides = [f"runs_dir={tmp_path / 'runs'}", f"submissions_dir={tmp_path / 'subs'}", "finetune_folds=2"]
    overrides += ["heads_inputs=probs", "clip_cache=true", f"synth.out={tmp_path / 'data'}"]
    plan = build_plan(load_config(MainConfig, REPO / "configs" / "main" / "synthetic.yaml", overrides))
    layout = plan.layout
    for stage in plan.stages:
        for path in [*stage.outputs, stage.log_file] + ([stage.config.path] if stage.config else []):
            assert (
                path.is_relative_to(layout.run_dir)
                or path.is_relative_to(layout.submission_dir)
                or (path.is_relative_to(tmp_path / "data"))
            ), (stage.name, path)
    assert plan.stage("finetune hybrid_vitl/right fold1").outputs == [
        layout.finetune("hybrid_vitl", "right", 1) / "model.safetensors"
    ]


def test_shell_script_takes_the_model_folders_from_the_layout_cli(tmp_path):
    """shell/finetune_views.sh asks `ndar layout` for each view's folder: a file where the fold
    model's folder would go makes the preflight name that folder (no torchrun is reached)."""
    (tmp_path / "data" / "A1").mkdir(parents=True)
    (tmp_path / "ckpt.pth").write_text("")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / model_name("k400_vith", "dashboard", 2)).write_text("in the way")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHON": sys.executable}
    argv = ["bash", "shell/finetune_views.sh", "k400_vith", "configs/finetune/tiny/k400_vith.yaml", "none"]
    argv += [str(tmp_path / "data"), str(tmp_path / "ckpt.pth"), str(tmp_path / "out"), "1", "2"]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"output folder {tmp_path / 'out' / 'k400_vith_dashboard_fold2'}: exists and is not a folder" in (
        done.stderr
    )
    assert "_fold" not in (REPO / "shell" / "finetune_views.sh").read_text()  # no name built by hand
