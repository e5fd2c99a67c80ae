"""Shipped extract configs load into ExtractConfig; overrides and unknown keys behave."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ndar.config import ConfigError, load_config
from ndar.extract import ExtractConfig
from ndar.extract.runner import VideoJob, pad_batch, shard

CONFIGS = sorted(Path("configs/extract").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_config(ExtractConfig, path, ["batch_size=2", "overwrite=true"])
    assert cfg.batch_size == 2 and cfg.overwrite
    assert all("{view}" in m.folder for m in cfg.models)
    # the tracks and views of the main job of the same name (aicity: three tracks; synthetic: the two
    # `make demo` fine-tunes, whose models it names), so it runs as it is after that job
    main = yaml.safe_load((Path("configs/main") / path.name).read_text())
    assert [m.track for m in cfg.models] == main["tracks"] and cfg.views == main["views"]


def test_unknown_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="stridee"):
        load_config(ExtractConfig, None, ["stridee=4"])


def test_shard_is_a_deterministic_partition() -> None:
    jobs = [VideoJob("A1", f"{i}_1", "rear", Path(f"v{i}.mp4"), f"v{i}") for i in range(7)]
    parts = [shard(jobs, r, 3) for r in range(3)]
    assert sorted(j.stem for p in parts for j in p) == sorted(j.stem for j in jobs)
    assert [len(p) for p in parts] == [3, 2, 2]


def test_pad_batch_repeats_the_last_clip() -> None:
    clips = np.arange(2 * 3).reshape(2, 3, 1, 1, 1).astype(np.uint8)
    padded = pad_batch(clips, 4)
    assert padded.shape[0] == 4
    np.testing.assert_array_equal(padded[2], clips[1])
    assert pad_batch(clips, 2) is clips


def test_conversion_threads_are_automatic_on_gpu_only_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from ndar.extract.runner import convert_threads

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    auto = load_config(ExtractConfig, None, [])
    assert convert_threads(auto, torch.device("cpu")) == 0  # the model needs the cores
    assert convert_threads(auto, torch.device("cuda:0")) == 8
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert convert_threads(auto, torch.device("cuda:0")) == 2
    assert convert_threads(load_config(ExtractConfig, None, ["convert_threads=3"]), torch.device("cpu")) == 3
