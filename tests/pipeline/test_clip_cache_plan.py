"""The main job's clip caches: one cache-clips stage per view (every track's cache from one decode
of each video), before every fine-tune, built from the same derived configs the fold models read."""

from __future__ import annotations

from pathlib import Path

from test_pipeline import plan_stages


def test_clip_cache_stages_come_first_and_fine_tunes_name_the_cache(tmp_path, monkeypatch):
    overrides = ["tracks=[k400_vith, ego_vitl]", "views=[rear, dashboard]", "finetune_folds=2"]
    overrides += ["heads_inputs=probs", "clip_cache=true"]
    cfg, calls = plan_stages(tmp_path, monkeypatch, overrides)
    names = [s.name for s in calls]
    caches = [n for n in names if n.startswith("cache-clips")]
    assert caches == ["cache-clips rear", "cache-clips dashboard"]
    assert max(names.index(n) for n in caches) < min(
        i for i, n in enumerate(names) if n.startswith("finetune")
    )
    stage = calls[names.index("cache-clips rear")]
    assert stage.argv[:2] == ["cache-clips", "--from-finetune"]
    assert [Path(a).name for a in stage.argv[2:4]] == [
        "finetune_k400_vith_rear_fold0.yaml", "finetune_ego_vitl_rear_fold0.yaml",
    ]  # fmt: skip
    # both tracks' configs are written before the stage runs (the second is not its `config`)
    assert [c.path.name for c in stage.configs] == [Path(a).name for a in stage.argv[2:4]]
    assert [p.parent.parent.name for p in stage.outputs] == ["k400_vith", "ego_vitl"]
    configs = {s.config.path.stem: s.config.data for s in calls if s.config is not None}
    for fold in (0, 1):
        ft = configs[f"finetune_k400_vith_rear_fold{fold}"]
        assert ft["data"]["cache_dir"].endswith("clipcache/k400_vith") and ft["data"]["cache"] is False
