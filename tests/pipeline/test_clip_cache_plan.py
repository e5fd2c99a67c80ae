"""The main job's clip cache: one cache-clips stage per track and view, before every fine-tune,
built from the same derived config the fold models read."""

from __future__ import annotations

from test_pipeline import plan_stages


def test_clip_cache_stages_come_first_and_fine_tunes_name_the_cache(tmp_path, monkeypatch):
    overrides = ["tracks=[k400_vith]", "finetune_folds=2", "heads_inputs=probs", "clip_cache=true"]
    cfg, calls = plan_stages(tmp_path, monkeypatch, overrides)
    names = [s.name for s in calls]
    caches = [n for n in names if n.startswith("cache-clips")]
    assert caches == ["cache-clips k400_vith/rear", "cache-clips k400_vith/dashboard"]
    assert max(names.index(n) for n in caches) < min(
        i for i, n in enumerate(names) if n.startswith("finetune")
    )
    argv = calls[names.index("cache-clips k400_vith/rear")].argv
    assert argv[:2] == ["cache-clips", "--from-finetune"] and argv[2].endswith(
        "finetune_k400_vith_rear_fold0.yaml"
    )
    configs = {s.config.path.stem: s.config.data for s in calls if s.config is not None}
    for fold in (0, 1):
        ft = configs[f"finetune_k400_vith_rear_fold{fold}"]
        assert ft["data"]["cache_dir"].endswith("clipcache/k400_vith") and ft["data"]["cache"] is False
