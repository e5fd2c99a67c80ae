"""Faults in the input data: broken videos, bad label times, odd CSV files, non-UTF-8 submissions.

Each case is what a careless export or a copy gone wrong really produces; each must be reported
per file (and row) by `check-data` and `prepare`, never read silently wrong and never a traceback.
Helpers live in this file (other fault modules in tests/faults/ belong to other stages).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from ndar.cli import main
from ndar.data.config import PrepareConfig
from ndar.data.prepare import run as prepare

HEADER = "Filename,Camera View,Activity Type,Start Time,End Time,Label (Primary),Appearance Block"
VIEWS = {"dashboard": "Dashboard", "rear": "Rear_view", "right": "Right_side_window"}
FPS, SECONDS = 4, 12  # every test video: 48 frames of 32x32


def encode(
    path: Path, frames: int = FPS * SECONDS, fps: int = FPS, size: int = 32, faststart: bool = False
) -> Path:
    options = {"movflags": "faststart"} if faststart else {}
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4", options=options) as container:
        # one encoder thread: the same bytes whatever the machine or an earlier test's thread settings,
        # so the corruption below always lands on the same frame
        stream = container.add_stream("libx264", rate=fps, options={"threads": "1"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = fps
        for _ in range(frames):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)  # noise: every frame has data
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def good_video(tmp_path_factory) -> Path:
    return encode(tmp_path_factory.mktemp("videos") / "good.MP4")


def video_path(root: Path, driver: str, view: str, session: int = 1) -> Path:
    return root / "A1" / f"user_id_{driver}" / f"{VIEWS[view]}_user_id_{driver}_NoAudio_{session}.MP4"


def label_path(root: Path, driver: str) -> Path:
    return root / "A1" / f"user_id_{driver}" / f"user_id_{driver}.csv"


def label_text(driver: str, rows: list[str] | None = None) -> str:
    """Two activities per view of session 1; `rows` replaces the dashboard block's rows."""
    lines = [HEADER]
    for view, prefix in VIEWS.items():
        block = (
            rows
            if rows is not None and view == "dashboard"
            else ["0:00:01,0:00:03,Class 3", "0:00:06,0:00:08,Class 5"]
        )
        for i, row in enumerate(block):
            name = f"{prefix}_user_id_{driver}_1" if i == 0 else ""
            start, end, label = row.split(",")
            lines.append(f"{name},{prefix},Distracted,{start},{end},{label},None")
    return "\n".join(lines) + "\n"


def make_dataset(root: Path, good_video: Path, drivers=("1", "2")) -> Path:
    for driver in drivers:
        for view in VIEWS:
            path = video_path(root, driver, view)
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(good_video, path)
        label_path(root, driver).write_text(label_text(driver))
    return root


def check(root: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["check-data", str(root), *extra])
    return code, capsys.readouterr().out


def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _corrupt_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mdat = data.find(b"mdat")
    # a fifth of the picture data around the middle: it spans a keyframe whatever the encoder's
    # frame sizes, so the check (which decodes keyframes) meets it on every machine
    start, stop = mdat + (len(data) - mdat) * 2 // 5, mdat + (len(data) - mdat) * 3 // 5
    data[start:stop] = np.random.default_rng(1).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


BROKEN = {
    "zero-byte": (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "text-as-mp4": (lambda p: p.write_text("not a video\n" * 50), "cannot open video"),
    "no-video-stream": (_audio_only, "no video stream"),
    "3-frames": (lambda p: encode(p, frames=3), "only 3 frame(s)"),
    "faststart-truncated": (
        lambda p: (encode(p, faststart=True), _truncate(p, 0.6)),
        "corrupt or unreadable data",
    ),
    "corrupt-mid-file": (_corrupt_middle, "corrupt or unreadable data"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_check_data_videos_reports_each_broken_video(tmp_path, good_video, capsys, case):
    root = make_dataset(tmp_path, good_video)
    broken = video_path(root, "1", "rear")
    damage, reason = BROKEN[case]
    damage(broken)
    code, out = check(root, capsys)
    assert code == 0 and "OK (no errors)" in out  # without --videos only the names are read
    code, out = check(root, capsys, "--videos")
    assert code == 1 and "FAILED: 1 error(s)" in out
    assert f"ERROR {broken}: cannot read video: {reason}" in out


def test_faststart_truncation_is_reported_by_its_header_promise(tmp_path):
    """The case that passed before: the index at the front still lists every frame."""
    path = encode(tmp_path / "fs.MP4", faststart=True)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart indeed
    from ndar.data.video_check import check_video
    from ndar.video import probe

    _truncate(path, 0.6)
    assert probe(path).num_frames == FPS * SECONDS  # the header still promises all frames
    assert not check_video(path).ok


def test_prepare_writes_no_clip_of_a_video_it_reported(tmp_path, good_video):
    root = make_dataset(tmp_path / "data", good_video)
    broken = video_path(root, "1", "rear")
    encode(broken, faststart=True)
    _truncate(broken, 0.6)
    out = prepare(PrepareConfig(root=root, out=tmp_path / "out", k=2))
    issues = json.loads((out / "issues.json").read_text())
    assert [(i["file"], i["reason"].split(":")[0]) for i in issues if i["level"] == "error"] == [
        (str(broken), "cannot read video")
    ]
    rear = pd.read_csv(out / "clips_rear.csv")
    assert str(broken.resolve()) not in set(rear["path"]) and len(rear) > 0
    assert len(pd.read_csv(out / "clips_dashboard.csv")["path"].unique()) == 2  # the others go on


@pytest.mark.parametrize("bad", ["nan", "inf", "1e9", "0:00:0_2"])
def test_non_time_values_are_errors_naming_file_and_row(tmp_path, good_video, capsys, bad):
    root = make_dataset(tmp_path / "data", good_video)
    labels = label_path(root, "1")
    labels.write_text(label_text("1", ["0:00:01,0:00:03,Class 3", f"0:00:05,{bad},Class 5"]))
    code, out = check(root, capsys)
    assert code == 1 and f"ERROR {labels}:3: unreadable time: time '{bad}'" in out
    out_dir = prepare(PrepareConfig(root=root, out=tmp_path / "out", k=2, probe=False))
    clips = pd.read_csv(out_dir / "clips_dashboard.csv")
    assert clips[["start", "end"]].notna().all().all() and clips["end"].max() < 1e6


def test_a_time_beyond_the_video_is_an_error_and_never_a_clip(tmp_path, good_video, capsys):
    root = make_dataset(tmp_path / "data", good_video)
    labels = label_path(root, "1")
    labels.write_text(label_text("1", ["0:00:01,0:00:03,Class 3", "0:00:05,0:59:00,Class 5"]))
    code, out = check(root, capsys, "--videos")
    assert code == 1 and f"ERROR {labels}:3: segment 5-3540s ends after the video" in out
    out_dir = prepare(PrepareConfig(root=root, out=tmp_path / "out", k=2))
    clips = pd.read_csv(out_dir / "clips_dashboard.csv")
    assert clips["end"].max() <= SECONDS


def test_cr_only_label_file_reads_like_lf_in_check_data_and_prepare(tmp_path, good_video, capsys):
    root = make_dataset(tmp_path / "data", good_video)
    lf = prepare(PrepareConfig(root=root, out=tmp_path / "lf", k=2, probe=False))
    for driver in ("1", "2"):
        path = label_path(root, driver)
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))  # old Mac Excel
    code, out = check(root, capsys)
    assert code == 0 and "0 error(s), 0 warning(s)" in out
    cr = prepare(PrepareConfig(root=root, out=tmp_path / "cr", k=2, probe=False))
    assert (cr / "segments.csv").read_text() == (lf / "segments.csv").read_text()


@pytest.mark.parametrize(
    "content, phrase",
    [
        (b"Filename,Camera View\nDashboard_user_id_1_1,x\r,y\n", "mixes CR-only line endings"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)), "binary, not a text CSV"),
    ],
)
def test_ambiguous_or_binary_csv_is_one_line_naming_the_file(
    tmp_path, good_video, capsys, caplog, content, phrase
):
    root = make_dataset(tmp_path / "data", good_video)
    labels = label_path(root, "2")
    labels.write_bytes(content)
    code, out = check(root, capsys)
    [line] = [line for line in out.splitlines() if str(labels) in line]
    assert code == 1 and line.strip().startswith(f"ERROR {labels}:") and phrase in line
    assert "Traceback" not in out
    assert main(["prepare", f"root={root}", f"out={tmp_path / 'out'}", "k=2", "probe=false"]) == 1
    assert "Traceback" not in caplog.text  # k=2 folds need 2 labelled drivers: a clear error, not a crash


def test_binary_video_ids_csv_is_one_line_naming_the_file(tmp_path, good_video, capsys):
    root = make_dataset(tmp_path / "data", good_video)
    a2 = root / "A2"
    shutil.copytree(root / "A1", a2)
    for csv_file in a2.rglob("user_id_*.csv"):
        csv_file.unlink()
    ids = a2 / "video_ids.csv"
    ids.write_bytes(b"\x00\x01binary" * 20)
    code, out = check(root, capsys, "--split", "A2")
    assert code == 1 and f"ERROR {ids}: video id file is binary, not a text CSV" in out


def test_score_and_validate_name_a_non_utf8_file(tmp_path, capsys):
    gt = tmp_path / "gt.txt"
    gt.write_text("1 1 10 20\n")
    bad = tmp_path / "sub.txt"
    bad.write_bytes(b"1 1 10 20\n1 2 30 40 \xff\xfe\n")
    assert main(["score", "--gt", str(gt), "--pred", str(bad)]) == 1
    assert f"{bad}: not a UTF-8 text file" in capsys.readouterr().err
    assert main(["validate-submission", str(bad)]) == 1
    assert f"{bad}: not a UTF-8 text file" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, phrase",
    [
        ({"fps": 8, "frames": 8 * SECONDS}, "differ in fps"),
        ({"frames": FPS * (SECONDS + 6)}, "differ in length"),
    ],
)
def test_check_data_warns_when_a_sessions_views_differ(tmp_path, good_video, capsys, change, phrase):
    root = make_dataset(tmp_path / "data", good_video)
    encode(video_path(root, "2", "right"), **change)
    code, out = check(root, capsys, "--videos")
    assert code == 0 and f"session 2_1: views {phrase}" in out
