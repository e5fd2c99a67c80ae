"""The synthetic generator: layout, labels that parse back to the drawn timeline, decodable videos,
determinism, A2 ground truth, and the body model's class motions."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ndar.resume import SettingsChanged
from ndar.synth import SynthConfig, generate
from ndar.synth.body import animate, make_driver
from ndar.synth.generate import format_time
from ndar.synth.timeline import make_timeline, perturb_timeline
from ndar.utils.io import read_json

TINY = dict(
    drivers=1,
    test_drivers=1,
    fps=4.0,
    width=64,
    height=48,
    time_scale=0.05,
    gop=8,
    min_activity_s=1,
    min_gap_s=1,
)
VIEW_PREFIX = ("Dashboard", "Rear_view", "Right_side_window")


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    return generate(SynthConfig(out=out, seed=3, workers=2, **TINY))


@pytest.fixture(scope="module")
def meta(dataset) -> dict:
    return json.loads((dataset / "synth.json").read_text())


def test_layout_and_names(dataset, meta):
    a1 = sorted(p.name for p in (dataset / "A1").iterdir())
    a2 = sorted(p.name for p in (dataset / "A2").iterdir() if p.is_dir())
    assert len(a1) == 1 and len(a2) == 1
    for folder in a1 + a2:
        assert re.fullmatch(r"user_id_\d{5}", folder)
    sessions = [s for s in meta["sessions"] if s["split"] == "A1"]
    assert len(sessions) == 2 and sessions[0]["appearance"] == "None"
    assert sessions[1]["appearance"] in ("Hat", "Sunglasses")
    driver_dir = dataset / "A1" / a1[0]
    driver = a1[0].removeprefix("user_id_")
    expected = {f"{v}_user_id_{driver}_NoAudio_{s['session']}.MP4" for v in VIEW_PREFIX for s in sessions}
    assert {p.name for p in driver_dir.glob("*.MP4")} == expected
    assert (driver_dir / f"user_id_{driver}.csv").is_file()
    assert not list((dataset / "A2" / a2[0]).glob("*.csv"))
    assert (dataset / "A2" / "video_ids.csv").is_file()
    assert (dataset / "A2_ground_truth.txt").is_file() and not (
        dataset / "A2" / "A2_ground_truth.txt"
    ).exists()


def test_label_csv_format_and_round_trip(dataset, meta):
    from ndar.data.labels import read_label_file

    csv_path = next((dataset / "A1").glob("user_id_*/user_id_*.csv"))
    lines = csv_path.read_text().splitlines()
    assert (
        lines[0] == "Filename,Camera View,Activity Type,Start Time,End Time,Label (Primary),Appearance Block"
    )
    first = lines[1].split(",")
    # spelled as the 2023/2024 releases: the dashboard's `User`, "Rearview", "Rightside Window", and
    # "Distracted Behavior" as the Activity Type of every row
    assert "NoAudio" not in first[0] and re.fullmatch(r"Dashboard_User_id_\d{5}_\d", first[0])
    assert (
        lines[2].startswith(",")
        and re.fullmatch(r"Class \d+", first[5])
        and re.fullmatch(r"\d:\d\d:\d\d", first[3])
    )
    rows = [line.split(",") for line in lines[1:]]
    assert {r[1] for r in rows} == {"Dashboard", "Rearview", "Rightside Window"}
    assert {r[2] for r in rows} == {"Distracted Behavior"}

    parsed = read_label_file(csv_path)
    assert not [i for i in parsed.issues if i.level == "error"]
    for session in (s for s in meta["sessions"] if s["split"] == "A1"):
        drawn = [(a["label"], a["start"], a["end"]) for a in session["activities"]]
        for view in ("dashboard", "rear", "right"):
            rows = [r for r in parsed.rows if r.video.session == session["session"] and r.video.view == view]
            got = [(r.segment.label, r.segment.start, r.segment.end) for r in rows]
            assert [g for g in got if g[0] != 0] == drawn
            # one Class 0 row, the session's longest stretch between activities (or before the
            # first, or after the last), the other gaps unlabelled, as in the releases
            edges = [0, *(t for a in drawn for t in a[1:]), session["duration_s"]]
            gaps = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b > a]
            longest = max(gaps, key=lambda g: (g[1] - g[0], -g[0]))
            assert [g for g in got if g[0] == 0] == [(0, *longest)]
            assert got == sorted(got, key=lambda g: g[1])
            assert sorted(g[0] for g in got if g[0] != 0) == list(range(1, 16))


def test_dataset_discovery_sees_everything(dataset):
    from ndar.data.discover import load_dataset

    a1 = load_dataset(dataset, "A1")
    a2 = load_dataset(dataset, "A2")
    assert not [i for i in a1.issues + a2.issues if i.level == "error"]
    assert len(a1.sessions) == 2 and all(len(s.views) == 3 for s in a1.sessions)
    assert all(sorted(g.label for g in s.segments if g.label) == list(range(1, 16)) for s in a1.sessions)
    assert sorted(s.video_id for s in a2.sessions) == [1, 2]


def test_videos_decode_at_stated_fps_and_frame_count(dataset, meta):
    import decord

    for session in meta["sessions"]:
        folder = dataset / session["split"] / f"user_id_{session['driver']}"
        for prefix in VIEW_PREFIX:
            reader = decord.VideoReader(
                str(folder / f"{prefix}_user_id_{session['driver']}_NoAudio_{session['session']}.MP4")
            )
            assert len(reader) == session["frames"] == int(round(session["duration_s"] * TINY["fps"]))
            assert reader.get_avg_fps() == pytest.approx(TINY["fps"])
            frame = reader[len(reader) // 2].asnumpy()
            assert frame.shape == (TINY["height"], TINY["width"], 3) and frame.std() > 5


def test_video_is_h264_yuv420p_with_fixed_gop(dataset):
    import av

    path = next((dataset / "A1").glob("*/Rear_view_*.MP4"))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        keys = [i for i, packet in enumerate(container.demux(stream)) if packet.is_keyframe]
    assert keys[:3] == [0, TINY["gop"], 2 * TINY["gop"]]


def test_a2_ground_truth_matches_video_ids(dataset, meta):
    from ndar.data.video_ids import read_video_ids
    from ndar.submission import read_submission

    ids = read_video_ids(dataset / "A2" / "video_ids.csv")
    header = (dataset / "A2" / "video_ids.csv").read_text().splitlines()[0]
    assert header == "video_id,video_files1,video_files2,video_files3"
    gt = read_submission(dataset / "A2_ground_truth.txt")
    assert set(gt["video"]) == set(ids)
    for session in (s for s in meta["sessions"] if s["split"] == "A2"):
        names = ids[session["video_id"]]
        assert names["rear"] == f"Rear_view_user_id_{session['driver']}_NoAudio_{session['session']}.MP4"
        rows = gt[gt["video"] == session["video_id"]]
        drawn = [(a["label"], a["start"], a["end"]) for a in session["activities"]]
        assert list(zip(rows["label"], rows["start"], rows["end"])) == drawn


def test_oracle_scores_one(dataset):
    from ndar.metrics import mos
    from ndar.submission import read_submission

    gt = read_submission(dataset / "A2_ground_truth.txt")
    assert mos(gt, gt).mos == pytest.approx(1.0)


@pytest.mark.slow
def test_same_seed_same_bytes_different_seed_different(dataset, tmp_path):
    # Each view is seeded on its own, so a rear-only run must reproduce the rear videos byte for
    # byte (with one worker instead of two), and the same timelines.
    full = {k: v for k, v in _digest(dataset).items() if "Rear_view" in k or k == "A2_ground_truth.txt"}
    again = generate(SynthConfig(out=tmp_path / "again", seed=3, workers=1, **(TINY | {"views": ["rear"]})))
    assert {k: v for k, v in _digest(again).items() if k in full} == full
    other = generate(SynthConfig(out=tmp_path / "other", seed=4, workers=1, **(TINY | {"views": ["rear"]})))
    assert not set(_digest(other).values()) & set(full.values())


def test_resume_keeps_a_finished_dataset_and_refuses_another(dataset):
    before = _digest(dataset)
    stamp = (dataset / "synth.json").stat().st_mtime_ns
    generate(SynthConfig(out=dataset, seed=3, workers=1, **TINY))
    assert (dataset / "synth.json").stat().st_mtime_ns == stamp and _digest(dataset) == before
    with pytest.raises(SettingsChanged, match=r"synth: .*\(seed: 3 -> 99\): pass overwrite=true"):
        generate(SynthConfig(out=dataset, seed=99, workers=1, **TINY))
    assert _digest(dataset) == before


def test_overwrite_replaces_a_dataset_of_other_settings(dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    generate(SynthConfig(out=copy, seed=4, workers=1, overwrite=True, **(TINY | {"views": ["rear"]})))
    assert read_json(copy / "synth.json")["config"]["seed"] == 4
    assert not list(copy.rglob("*Dashboard*"))  # the other dataset's files are gone


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"crf": 99}, r"synth: crf must be in 0\.\.51 \(x264\), got 99"),
        ({"preset": "ultrafst"}, r"synth: preset must be one of \[.*'ultrafast'.*\], got 'ultrafst'"),
        ({"min_activity_s": 0}, r"synth: min_activity_s must be >= 1, got 0"),
        ({"amp_low": 2.0}, r"synth: need 0 <= amp_low <= amp_high, got 2\.0 and 1\.1"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        generate(SynthConfig(out=tmp_path / "data", workers=1, **(TINY | bad)))
    assert not (tmp_path / "data").exists()


def _interrupted(out: Path, monkeypatch, **settings) -> None:
    """A run of `settings` killed while rendering its second session (the first one's videos written)."""
    gen = importlib.import_module("ndar.synth.generate")  # `ndar.synth.generate` is also the function
    rendered = []

    def render(cfg, plan, *resume):
        if rendered:
            raise KeyboardInterrupt
        rendered.append(plan)
        return real(cfg, plan, *resume)

    real = gen.render_session
    monkeypatch.setattr(gen, "render_session", render)
    with pytest.raises(KeyboardInterrupt):
        generate(SynthConfig(out=out, workers=1, **settings))
    monkeypatch.setattr(gen, "render_session", real)
    assert list(out.rglob("*.MP4")) and not (out / "synth.json").exists()


def test_an_interrupted_dataset_is_refused_or_removed_for_other_settings(tmp_path, monkeypatch):
    out = tmp_path / "data"
    _interrupted(out, monkeypatch, seed=1, **(TINY | {"drivers": 2}))
    with pytest.raises(SettingsChanged, match=r"seed: 1 -> 2"):
        generate(SynthConfig(out=out, seed=2, workers=1, **TINY))
    generate(SynthConfig(out=out, seed=2, workers=1, overwrite=True, **TINY))
    drivers = {s["driver"] for s in read_json(out / "synth.json")["sessions"]}
    assert {p.name.removeprefix("user_id_") for p in out.glob("A*/user_id_*")} == drivers
    assert not (out / "synth.started.json").exists()


def test_an_interrupted_dataset_resumes_to_the_same_bytes(dataset, tmp_path, monkeypatch):
    out = tmp_path / "data"
    _interrupted(out, monkeypatch, seed=3, **TINY)
    kept = {p: p.stat().st_mtime_ns for p in out.rglob("*.MP4")}
    generate(SynthConfig(out=out, seed=3, workers=1, **TINY))
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished session was not redone
    assert _digest(out) == _digest(dataset)


def test_timeline_follows_the_rules():
    rng = np.random.default_rng(0)
    for scale in (1.0, 0.25):
        base = make_timeline(rng, scale)
        labels = [a.label for a in base.activities]
        assert sorted(labels) == list(range(1, 16))
        gaps = [b.start - a.end for a, b in zip(base.activities, base.activities[1:])]
        assert min(gaps) >= 2 and min(a.end - a.start for a in base.activities) >= 2
        if scale == 1.0:
            assert max(gaps) <= 65 and 3 <= np.median(gaps) <= 45
        second = perturb_timeline(rng, base, 2)
        assert [a.label for a in second.activities] == labels
        assert all(abs(a.start - b.start) <= 2 * 16 for a, b in zip(base.activities, second.activities))
        per_second = base.labels_per_second()
        assert len(per_second) == base.duration and set(per_second) == set(range(16))


def test_format_time():
    assert format_time(0) == "0:00:00" and format_time(489) == "0:08:09" and format_time(3723) == "1:02:03"


def test_class_motions_put_hands_and_head_where_the_class_says():
    rng = np.random.default_rng(1)
    driver = make_driver(rng, (1.0, 1.0))
    acts = [(2, 5, 15), (3, 25, 35), (5, 45, 55), (11, 65, 75), (9, 85, 95)]
    pose = animate(rng, driver, acts, 100.0, 10.0, distractor_rate=0.0)
    p = pose.points

    def at(name, second):
        return p[name][int(second * 10)]

    def dist(a, b, second):
        return float(np.linalg.norm(at(a, second) - at(b, second)))

    normal = 60
    assert dist("hand_r", "head", 10) < 0.2 < dist("hand_r", "head", normal)  # phone right at the ear
    assert dist("hand_l", "head", 30) < 0.2 < dist("hand_l", "head", normal)  # phone left
    assert pose.props["phone_r"][100] and not pose.props["phone_r"][300] and pose.props["phone_l"][300]
    assert at("hand_r", 50)[1] < at("hand_r", normal)[1] - 0.05  # texting: hand low
    assert pose.props["phone_flat_r"][500]
    gaze = at("mouth", 70) - at("head", 70)
    assert gaze[0] > 0.05  # talking to the right passenger: face turned right
    assert at("head", 90)[1] < at("head", normal)[1] - 0.1  # pick up from floor: bent down
    assert pose.mouth[700] > pose.mouth[600]


def test_cli_arguments_map_to_the_config():
    import argparse

    from ndar.synth.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--out",
            "x",
            "--drivers",
            "6",
            "--test-drivers",
            "3",
            "--size",
            "128x112",
            "--views",
            "rear,dashboard",
            "noise=2",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.drivers, cfg.n_test_drivers, cfg.width, cfg.height) == (6, 3, 128, 112)
    assert cfg.views == ["rear", "dashboard"] and cfg.noise == 2.0 and str(cfg.out) == "x"
    assert SynthConfig(drivers=9).n_test_drivers == 2 and SynthConfig(drivers=2).n_test_drivers == 1
    with pytest.raises(ValueError, match="views"):
        SynthConfig(views=["front"]).validate()
    with pytest.raises(SystemExit):
        parser.parse_args(["--size", "big"])
