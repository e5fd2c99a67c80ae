from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import yaml

from ndar.cli import main
from ndar.config import load_config
from ndar.data.config import PrepareConfig
from ndar.data.folds import read_folds
from ndar.data.prepare import run

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "prepare" / "default.yaml")


def write_tiny_video(path, frames=15, fps=30):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 5 % 256, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_default_config_loads():
    cfg = load_config(PrepareConfig, CONFIG)
    assert cfg.split == "all" and cfg.views == ["dashboard", "rear", "right"]


def test_prepare_writes_every_output(dataset, tmp_path):
    out = run(
        PrepareConfig(
            root=dataset, out=tmp_path / "prep", k=2, seed=1, probe=False, views=["rear", "Dashboard"]
        )
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "videos.csv",
            "sessions.csv",
            "segments.csv",
            "folds.json",
            "clips_rear.csv",
            "clips_dashboard.csv",
            "issues.json",
            "summary.json",
            "config.yaml",
        ]
    )
    folds = read_folds(out / "folds.json")
    assert sorted(folds) == ["101", "102", "103", "104"] and sorted(folds.values()) == [0, 0, 1, 1]

    sessions = pd.read_csv(out / "sessions.csv", dtype={"driver": str})
    a1 = sessions[sessions["split"] == "A1"]
    assert len(a1) == 8 and (a1.groupby("driver")["fold"].nunique() == 1).all()  # both sessions in one fold
    assert all(a1["fold"] == a1["driver"].map(folds))
    a2 = sessions[sessions["split"] == "A2"]
    assert sorted(a2["video_id"]) == [1, 2] and set(a2["fold"]) == {-1}

    videos = pd.read_csv(out / "videos.csv", dtype={"driver": str})
    assert len(videos) == 30 and set(videos["split"]) == {"A1", "A2"}

    clips = pd.read_csv(out / "clips_rear.csv", dtype={"driver": str})
    assert len(clips[clips["label"] > 0]) == 8 * 4 and len(clips[clips["label"] == 0]) == 8 * 2
    assert all(clips["fold"] == clips["driver"].map(folds))
    assert json.loads((out / "issues.json").read_text()) == []
    segments = pd.read_csv(out / "segments.csv")
    assert len(segments) == 8 * 4 and set(segments["split"]) == {"A1"}
    assert yaml.safe_load((out / "config.yaml").read_text())["k"] == 2


def test_prepare_is_deterministic(dataset, tmp_path):
    a = run(PrepareConfig(root=dataset, out=tmp_path / "a", k=3, seed=2, probe=False))
    b = run(PrepareConfig(root=dataset, out=tmp_path / "b", k=3, seed=2, probe=False))
    for name in ("folds.json", "clips_right.csv", "sessions.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_probe_reads_real_videos_and_reports_broken_ones(dataset, tmp_path):
    good = dataset / "A1" / "user_id_101" / "Rear_view_user_id_101_NoAudio_1.MP4"
    write_tiny_video(good, frames=130, fps=1)  # 130 s: the label timeline ends at 118 s
    out = run(PrepareConfig(root=dataset, split="A1", out=tmp_path / "p", k=2, probe=True, views=["rear"]))
    videos = pd.read_csv(out / "videos.csv").set_index("stem")
    row = videos.loc[good.stem]
    assert (row["fps"], row["frames"], row["duration"]) == (1.0, 130.0, 130.0)
    issues = json.loads((out / "issues.json").read_text())
    assert len(issues) == 23 and all(
        i["level"] == "error" and "cannot read video: empty file (0 bytes)" in i["reason"] for i in issues
    )
    clips = pd.read_csv(out / "clips_rear.csv")
    assert set(clips["path"]) == {str(good.resolve())}  # no clip of a video it reported
    with pytest.raises(ValueError, match="23 data error"):
        run(PrepareConfig(root=dataset, split="A1", out=tmp_path / "s", k=2, probe=True, strict=True))


def test_cli_with_overrides_and_clear_errors(dataset, tmp_path, caplog):
    out = tmp_path / "cli"
    args = [
        "prepare",
        "--config",
        CONFIG,
        f"root={dataset}",
        f"out={out}",
        "k=4",
        "probe=false",
        "views=[right]",
    ]
    assert main(args) == 0
    assert (out / "clips_right.csv").is_file() and not (out / "clips_rear.csv").exists()
    assert main(["prepare", "--config", CONFIG, f"root={dataset}", f"out={out}", "k=9", "probe=false"]) == 1
    assert "k=9 folds need at least 9 drivers" in caplog.text
    assert main(["prepare", "--config", CONFIG, "nope=1"]) == 2
