"""A shrunken copy of configs/main/rehearsal.yaml end to end: the real main job's path (fold models,
clip cache, the real extraction and heads configs) on 1920x1080 videos, to a validated submission."""

from __future__ import annotations

from pathlib import Path

import pytest

from ndar.config import load_config
from ndar.pipeline import MainConfig
from ndar.pipeline import run as run_main_job
from ndar.submission import validate_submission

REPO = Path(__file__).resolve().parents[2]
REHEARSAL = REPO / "configs" / "main" / "rehearsal.yaml"


def test_rehearsal_config_is_the_real_path_at_the_real_geometry():
    cfg = load_config(MainConfig, REHEARSAL)
    aicity = load_config(MainConfig, REPO / "configs" / "main" / "aicity.yaml")
    assert (cfg.synth.width, cfg.synth.height, cfg.synth.fps, cfg.synth.time_scale) == (1920, 1080, 30.0, 1.0)
    assert cfg.synth.drivers >= 2 and cfg.data_root is None  # synthetic sessions, not the official data
    for key in ("tracks", "views", "finetune_folds", "finetune_fold", "heads_inputs", "clip_cache",
                "extract_config", "heads", "ensemble_config"):  # fmt: skip
        assert getattr(cfg, key) == getattr(aicity, key), key
    assert cfg.finetune_config == "configs/finetune/tiny/{track}.yaml"  # the tiny backbones
    assert cfg.heads_config == "configs/heads/{head}_tiny.yaml"  # the real heads take days on a CPU


def test_gpu_rehearsal_plans_the_real_backbones_from_the_cache(tmp_path, monkeypatch):
    """configs/main/rehearsal_gpu.yaml: the real fine-tuning configs (random init), each track's own
    frames and rate in one cache stage per view, extraction on the GPU; checked on the plan."""
    from ndar.plan import build_plan

    monkeypatch.chdir(REPO)
    cfg = load_config(MainConfig, REPO / "configs" / "main" / "rehearsal_gpu.yaml", [f"runs_dir={tmp_path}"])
    stages = {s.name: s for s in build_plan(cfg).stages}
    cache = stages["cache-clips rear"]
    assert [c.base.name for c in cache.configs] == ["k400_vith.yaml", "hybrid_vitl.yaml", "ego_vitl.yaml"]
    rates = [c.data["model"]["sampling_rate"] for c in cache.configs]
    assert rates == [2, 4, 3]
    # random init: the command line of every fine-tune (and of the cache, which reads its config) says so
    assert (
        "model.pretrained=null" in cache.argv
        and "model.pretrained=null" in stages["finetune ego_vitl/rear fold1"].argv
    )
    assert "device=cuda" in stages["extract fold0"].argv
    assert (cfg.synth.width, cfg.synth.height, cfg.synth.time_scale) == (1920, 1080, 1.0)


@pytest.mark.slow
def test_shrunken_rehearsal_reaches_a_valid_submission(tmp_path, monkeypatch):
    """Sessions of ~31 s (every class once, 1 s each, 1 s gaps) at 1920x1080 and 5 fps (rendering
    1080p costs ~23 CPU-ms a frame: 30 fps would take minutes), the rear view, 2 A1 drivers + 1 A2
    driver, two steps per fold model, one epoch of each head."""
    monkeypatch.chdir(REPO)
    overrides = [
        "name=rehearsal_small",
        f"runs_dir={tmp_path / 'runs'}",
        f"submissions_dir={tmp_path / 'subs'}",
        f"synth.out={tmp_path / 'data'}",
        "synth.drivers=2",
        "synth.test_drivers=1",
        "synth.fps=5",
        "synth.views=[rear]",
        "views=[rear]",
        "synth.time_scale=0.02",
        "synth.min_activity_s=1",
        "synth.min_gap_s=1",
        "tracks=[k400_vith]",
        "folds=2",
        "notebooks=false",
        "baseline=false",
        "extract_overrides=[device=cpu,dtype=float32,expected_fps=5,batch_size=32]",
        "finetune_overrides=[model.num_frames=16,model.sampling_rate=2,data.cache_max_frames=0,"
        "train.epochs=1,train.max_steps_per_epoch=2]",
        "head_overrides={tim: [tim.epochs=1, tim.warmup_epochs=0], "
        "actionformer: [actionformer.epochs=1, actionformer.warmup_epochs=0]}",
        # near-uniform probabilities after two steps: threshold 0 keeps A2's submission non-empty
        "ensemble_overrides=[tuning.rounds=1,stacker.n_estimators=10,priors.threshold=0.0,"
        '"tuning.threshold_grid=[0.0]",tuning.per_class_thresholds=false]',
    ]
    cfg = load_config(MainConfig, REHEARSAL, overrides)
    summary = run_main_job(cfg)
    data = tmp_path / "data"
    import av

    with av.open(str(next(data.glob("A1/*/*.MP4")))) as video:
        stream = video.streams.video[0]
        assert (stream.width, stream.height) == (1920, 1080)
    submission = tmp_path / "subs" / "rehearsal_small" / "submission.txt"
    assert validate_submission(submission, data / "A2" / "video_ids.csv") == []
    assert submission.read_text().strip(), "the submission holds segments"
    assert set(summary["stages"]) >= {
        "cache-clips rear",
        "finetune k400_vith/rear fold0",
        "finetune k400_vith/rear fold1",
        "extract fold0",
        "extract fold1",
        "heads tim/k400_vith",
        "heads actionformer/k400_vith",
        "ensemble",
    }
    fold_model = tmp_path / "runs" / "rehearsal_small" / "finetune" / "k400_vith_rear_fold0"
    assert (fold_model / "best" / "best.json").is_file()  # the held fold picks a best model too
