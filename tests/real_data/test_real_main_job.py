"""The main job's stage settings against what the real 2024 release holds (durations, sizes of its
videos, from wolfworld6's label json); no video is decoded and no stage is run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from real_files import REAL, labels_by_driver, lay_out, needs_real, video_names

from ndar.cli import main as cli_main
from ndar.config import load_config
from ndar.data.discover import load_dataset
from ndar.heads.data import load_feature_videos
from ndar.pipeline import MainConfig
from ndar.plan import build_plan
from ndar.synth.encode import write_video

REPO = Path(__file__).resolve().parents[2]


def real_durations() -> dict[str, float]:
    """Seconds of every 2024 A1 video (stem -> duration), as wolfworld6 measured them."""
    database = json.loads((REAL / "json" / "2024" / "wolfworld6_label_A1-train_A1-val.json").read_text())
    return {stem: float(entry["duration"]) for stem, entry in database["database"].items()}


def write_windows(path: Path, seconds: float) -> None:
    """A feature file of one window a second over `seconds` (what extraction at stride = fps writes)."""
    n = int(seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    probs = np.full((n, 16), 1 / 16, dtype=np.float32)
    t_start = np.arange(n, dtype=np.float64)
    np.savez(path, features=probs, probs=probs, t_start=t_start, t_end=t_start + 1.0)
    path.with_suffix(".json").write_text(json.dumps({"fps": 1.0, "frame_count": n}))


@needs_real
def test_main_job_heads_read_sessions_whose_real_views_differ_in_length(tmp_path, monkeypatch):
    """The 2024 cameras of one session stop up to a second (three sessions: minutes) apart: driver
    13522's session 5 is 510 s on the dashboard and 509 s on the rear view. The heads the main job
    plans must read them (cut to the shortest view), not stop with FeatureAlignmentError after hours
    of fine-tuning and extraction."""
    durations = real_durations()
    driver = "13522"
    stems = [s for s in video_names("2024_A1") if f"_id_{driver}_" in s]
    labels = labels_by_driver(REAL / "labels" / "2024" / "skku_default", stems)
    lay_out(tmp_path / "data" / "A1", stems, {driver: labels[driver]})
    features = tmp_path / "features"
    for stem in stems:
        view = "rear" if stem.startswith("Rear") else "dashboard" if stem.startswith("Dash") else "right"
        write_windows(features / "k400_vith" / view / f"{stem}.npz", durations[stem])
    assert durations["Dashboard_user_id_13522_NoAudio_5"] != durations["Rear_view_user_id_13522_NoAudio_5"]

    monkeypatch.chdir(REPO)
    cfg = load_config(
        MainConfig,
        REPO / "configs" / "main" / "aicity.yaml",
        [f"data_root={tmp_path / 'data'}", f"runs_dir={tmp_path / 'runs'}", "notebooks=false"],
    )
    heads = next(s.config.data for s in build_plan(cfg).stages if s.name.startswith("heads tim"))
    videos = load_feature_videos(
        tmp_path / "data", features, heads["feature_sets"], "A1", trim=heads["trim_mismatch"], inputs="probs"
    )
    lengths = {v.key: len(next(iter(v.streams.values()))) for v in videos}
    assert lengths == {"13522_5": 509, "13522_7": 514}  # the shortest view of each session
    assert all(len(s) == lengths[v.key] for v in videos for s in v.streams.values())
    with pytest.raises(ValueError, match="13522_5: views have different lengths"):
        load_feature_videos(tmp_path / "data", features, heads["feature_sets"], "A1", inputs="probs")


def real_sizes() -> dict[str, tuple[int, int]]:
    """Width and height of every 2024 A1 video (stem -> size), as wolfworld6 recorded them."""
    database = json.loads((REAL / "json" / "2024" / "wolfworld6_label_A1-train_A1-val.json").read_text())
    out = {}
    for stem, entry in database["database"].items():
        width, height = (int(x) for x in entry["resolution"].split("*"))
        out[stem] = (width, height)
    return out


@needs_real
@pytest.mark.parametrize("driver, warned", [("13522", []), ("16700", ["16700_7"])])
def test_check_data_videos_on_the_real_sizes_and_lengths(tmp_path, capsys, driver, warned):
    """A driver's six videos at its real sizes (divided by 16) and real lengths (1 fps): the 2024
    cameras differ in size in every session, which is no warning; 13522's views stop 1 s apart (no
    warning either), 16700's right view of session 7 stops after 268 s of 511 (a warning)."""
    durations, sizes = real_durations(), real_sizes()
    stems = [s for s in video_names("2024_A1") if f"_id_{driver}_" in s]
    labels = labels_by_driver(REAL / "labels" / "2024" / "skku_default", stems)
    lay_out(tmp_path / "A1", stems, {driver: labels[driver]})
    for stem in stems:
        width, height = (max(16, x // 16 // 2 * 2) for x in sizes[stem])
        frame = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
        path = tmp_path / "A1" / f"user_id_{driver}" / f"{stem}.MP4"
        write_video(path, (frame for _ in range(int(durations[stem]))), 1.0, width, height)
    cli_main(["check-data", str(tmp_path), "--videos"])
    out = capsys.readouterr().out
    assert "differ in size" not in out
    assert [
        line.split("session ")[1].split(":")[0] for line in out.splitlines() if "differ in length" in line
    ] == warned


@needs_real
def test_a_symlinked_driver_folder_is_read_like_a_real_one(tmp_path):
    """Teams link driver folders into a split (a held-out set, data on another disk): the linked
    driver's videos and label file are read, not dropped without a word."""
    stems = [s for s in video_names("2024_A1") if "_id_13522_" in s or "_id_14786_" in s]
    labels = labels_by_driver(REAL / "labels" / "2024" / "skku_default", stems)
    lay_out(tmp_path / "store", stems, labels)
    (tmp_path / "A1").mkdir()
    (tmp_path / "store" / "user_id_13522").rename(tmp_path / "A1" / "user_id_13522")
    (tmp_path / "A1" / "user_id_14786").symlink_to(tmp_path / "store" / "user_id_14786")
    index = load_dataset(tmp_path, "A1")
    assert sorted(index.drivers) == ["13522", "14786"] and not index.errors
    assert sum(1 for v in index.videos if v.driver == "14786") == 6
    assert all(s.segments for s in index.sessions)
