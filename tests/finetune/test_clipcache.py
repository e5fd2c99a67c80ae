"""The clip cache: built once in order, resumable, the same bytes from any number of processes,
a bad video reported without stopping the rest, and read by fine-tuning only when it matches."""

from __future__ import annotations

import dataclasses
import filecmp
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ndar.backbones import get_spec
from ndar.clipcache.build import run, run_many
from ndar.clipcache.config import ClipCacheConfig
from ndar.clipcache.store import ClipStore, cache_settings, check_matches
from ndar.finetune.data import ClipDataset, load_clip_samples
from ndar.finetune.transforms import EvalClipTransform
from ndar.video.geometry import Geometry, resolve_crop_box

SETTINGS = dict(num_frames=4, sampling_rate=1, img_size=32, crop="synthetic", max_frames=8, k=3)


def cache_config(root: Path, out: Path, **extra) -> ClipCacheConfig:
    return ClipCacheConfig(out=out, root=root, views=["rear"], **{**SETTINGS, **extra})


@pytest.fixture(scope="module")
def built(synth_root: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cache") / "one"
    summary = run(cache_config(synth_root, out))
    assert summary["rear"]["failed"] == 0 and summary["rear"]["done"] == summary["rear"]["videos"] > 0
    return out


def test_resume_skips_complete_shards(synth_root: Path, built: Path) -> None:
    summary = run(cache_config(synth_root, built))
    assert summary["rear"]["skipped"] == summary["rear"]["videos"] and summary["rear"]["done"] == 0


@pytest.mark.slow
def test_two_processes_write_the_same_bytes(synth_root: Path, built: Path, tmp_path: Path) -> None:
    run(cache_config(synth_root, tmp_path / "two", workers=2))
    one, two = built / "rear", tmp_path / "two" / "rear"
    names = sorted(p.name for p in one.iterdir() if p.name != "config.yaml")  # it records `workers`
    assert names == sorted(p.name for p in two.iterdir() if p.name != "config.yaml")
    _, mismatch, errors = filecmp.cmpfiles(one, two, names, shallow=False)
    assert not mismatch and not errors


@pytest.mark.slow
def test_caches_built_in_one_decode_equal_separate_builds(
    synth_root: Path, built: Path, tmp_path: Path
) -> None:
    """Two tracks' caches (other rate, size and box) from one pass over each video: the same files."""
    other = dict(sampling_rate=2, img_size=40, crop="full")
    alone = run(cache_config(synth_root, tmp_path / "alone", **other))
    joint = run_many(
        [cache_config(synth_root, tmp_path / "a"), cache_config(synth_root, tmp_path / "b", **other)]
    )
    assert joint[1] == alone and joint[0]["rear"]["done"] == joint[0]["rear"]["videos"] > 0
    for mine, theirs in (
        (tmp_path / "a" / "rear", built / "rear"),
        (tmp_path / "b" / "rear", tmp_path / "alone" / "rear"),
    ):
        names = sorted(p.name for p in theirs.iterdir() if p.name != "config.yaml")
        assert names == sorted(p.name for p in mine.iterdir() if p.name != "config.yaml")
        _, mismatch, errors = filecmp.cmpfiles(mine, theirs, names, shallow=False)
        assert not mismatch and not errors
    with pytest.raises(ValueError, match="the same folder"):
        run_many(
            [cache_config(synth_root, tmp_path / "a"), cache_config(synth_root, tmp_path / "a", **other)]
        )


def test_bad_video_is_reported_and_the_rest_cached(synth_root: Path, tmp_path: Path) -> None:
    samples = load_clip_samples(synth_root, None, "rear", k=3)
    videos = sorted(samples["path"].unique())
    bad = tmp_path / "broken.MP4"
    bad.write_bytes(Path(videos[0]).read_bytes()[:2000])  # a truncated file
    samples.loc[samples["path"] == videos[0], "path"] = str(bad)
    clips = tmp_path / "clips_rear.csv"
    samples.to_csv(clips, index=False)
    summary = run(cache_config(None, tmp_path / "cache", clips=clips))
    assert summary["rear"]["failed"] == 1 and summary["rear"]["done"] == len(videos) - 1
    with pytest.raises(ValueError, match="failed when the cache was built"):
        check_matches(tmp_path / "cache" / "rear", expected_settings(), samples)


def test_two_videos_of_one_file_name_are_refused(synth_root: Path, tmp_path: Path) -> None:
    """Shards are named by file name: a second video of the same name in another folder would
    overwrite the first's shard while the build reported success."""
    samples = load_clip_samples(synth_root, None, "rear", k=3)
    video = sorted(samples["path"].unique())[0]
    twin = tmp_path / "other_camera" / Path(video).name
    twin.parent.mkdir()
    twin.write_bytes(Path(video).read_bytes())
    extra = samples[samples["path"] == video].iloc[:1].assign(path=str(twin))
    clips = tmp_path / "clips_rear.csv"
    pd.concat([samples, extra], ignore_index=True).to_csv(clips, index=False)
    with pytest.raises(ValueError, match=rf"share the file name '{Path(video).stem}'"):
        run(cache_config(None, tmp_path / "cache", clips=clips))
    assert not (tmp_path / "cache" / "rear").exists()  # refused before any shard is written


def expected_settings(**changes) -> dict:
    values = dict(
        num_frames=4, sampling_rate=1, img_size=32, crop_box=resolve_crop_box("synthetic", "rear"),
        resize="squash", subtract_video_mean=False, max_frames=8,
    )  # fmt: skip
    return cache_settings(**{**values, **changes})


def test_a_cache_made_with_other_settings_is_refused(synth_root: Path, built: Path) -> None:
    samples = load_clip_samples(synth_root, None, "rear", k=3)
    check_matches(built / "rear", expected_settings(), samples)  # the same settings: accepted
    with pytest.raises(ValueError) as err:
        check_matches(built / "rear", expected_settings(sampling_rate=2, img_size=40), samples)
    assert "sampling_rate: cache 1, fine-tuning 2" in str(err.value) and "img_size" in str(err.value)
    with pytest.raises(ValueError, match="clip table"):
        check_matches(built / "rear", expected_settings(), samples.iloc[1:])


def test_a_rebuild_killed_midway_leaves_no_manifest(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    """Rebuilt at another size and killed after one video, the folder holds shards of both sizes:
    the old manifest must not stay behind to pass the old settings' check."""
    from ndar.clipcache import build

    run(cache_config(synth_root, tmp_path))
    real, calls = build.cache_videos, []

    def killed_after_one(tasks):
        calls.append(tasks)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(tasks)

    monkeypatch.setattr(build, "cache_videos", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        run(cache_config(synth_root, tmp_path, img_size=16))
    samples = load_clip_samples(synth_root, None, "rear", k=3)
    with pytest.raises(FileNotFoundError, match="cache.json not found"):
        check_matches(tmp_path / "rear", expected_settings(), samples)


@pytest.mark.parametrize("resize", ["squash", "pad"])
def test_cache_clips_match_decoded_clips(synth_root: Path, built: Path, resize: str, tmp_path: Path) -> None:
    """Validation input from the cache equals validation input decoded by random access."""
    samples = load_clip_samples(synth_root, None, "rear", k=3).iloc[:12].reset_index(drop=True)
    spec = dataclasses.replace(
        get_spec("videomae_vit_tiny"), num_frames=4, sampling_rate=1, img_size=32,
        crop_box=resolve_crop_box("synthetic", "rear"), resize=resize,
    )  # fmt: skip
    plan = Geometry(32, spec.crop_box, resize)  # "pad" is planned per video from its header
    if resize == "pad":
        clips = tmp_path / "clips.csv"
        samples.to_csv(clips, index=False)
        built = tmp_path / "pad"
        run(cache_config(None, built, clips=clips, resize="pad"))
        frames = np.load(next((built / "rear").glob("*.npy")))  # (N, 32, 32, 3): 32 x 27 box
        assert not frames[:, :2].any() and not frames[:, -3:].any() and frames[:, 2:-3].any()
    eval_tf = EvalClipTransform(32, spec.mean, spec.std, spec.normalize, num_crops=1)
    common = dict(eval_transform=eval_tf, num_segments=2, cache_max_frames=8)
    decoded = ClipDataset(samples, 4, 1, plan, **common)
    cached = ClipDataset(samples, 4, 1, plan, store=ClipStore(built / "rear", samples, False), **common)
    for i in range(len(samples)):
        a, b = decoded[i][0], cached[i][0]  # (V, 3, T, S, S)
        assert a.shape == b.shape
        grey = (a - b).abs() * torch.tensor(spec.std).view(1, 3, 1, 1, 1) * 255
        assert grey.mean() < 3.0, (i, float(grey.mean()))


@pytest.mark.slow
def test_finetune_trains_from_the_cache(synth_root: Path, built: Path, shrink, tmp_path: Path) -> None:
    from ndar.config import load_config
    from ndar.finetune.config import FinetuneConfig
    from ndar.finetune.engine import run as finetune

    overrides = shrink(synth_root, tmp_path / "ft") + [
        f"data.cache_dir={built}", "data.crop=synthetic", "data.resize=squash",  # as the cache was built
        "train.epochs=1", "train.max_steps_per_epoch=2",
        "train.precision=fp32", "train.zero_stage=0", "aug.rand_augment=''", "aug.mixup=0", "aug.cutmix=0",
        "eval.num_crops=1",
    ]  # fmt: skip
    out = finetune(load_config(FinetuneConfig, "configs/finetune/tiny/k400_vith.yaml", overrides))
    assert (out / "model.safetensors").is_file()
    bad = load_config(
        FinetuneConfig, "configs/finetune/tiny/k400_vith.yaml", overrides + ["model.sampling_rate=2"]
    )
    bad.output = tmp_path / "ft2"
    with pytest.raises(ValueError, match="sampling_rate: cache 1, fine-tuning 2"):
        finetune(bad)


def test_shards_hold_only_the_frames_clips_use(built: Path) -> None:
    shard = next((built / "rear").glob("*.npy"))
    frames = np.load(shard, mmap_mode="r")
    assert frames.dtype == np.uint8 and frames.shape[1:] == (32, 32, 3)
    assert not list(built.rglob(".*"))  # no temporaries left
    meta = json.loads(shard.with_suffix(".json").read_text())
    assert meta["source_frames"] == sorted(set(meta["source_frames"])) and len(frames) == len(
        meta["source_frames"]
    )
    used = {p for clip in meta["clips"] for p in clip["positions"]}
    assert used == set(range(len(frames)))
