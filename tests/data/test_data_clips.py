from __future__ import annotations

from pathlib import Path

import pytest

from ndar.data.clips import COLUMNS, activity_gaps, build_clip_samples, read_clip_samples
from ndar.data.records import Segment, VideoRecord

TIMELINE = [(3, 9, 26), (1, 40, 40), (7, 70, 75), (0, 80, 90), (15, 100, 118), (4, 150, 170)]


def video(driver="1", session=1, view="rear", timeline=TIMELINE, split="A1"):
    name = {"rear": "Rear_view", "dashboard": "Dashboard", "right": "Right_side_window"}[view]
    return VideoRecord(
        driver=driver,
        session=session,
        view=view,
        path=Path(f"/d/{name}_user_id_{driver}_NoAudio_{session}.MP4"),
        split=split,
        segments=[Segment(c, a, b) for c, a, b in timeline],
    )


def videos():
    return [video(d, s, v) for d in ("1", "2") for s in (1, 2) for v in ("rear", "dashboard")] + [
        video("3", 1, "rear", timeline=[], split="A2")
    ]


def test_one_sample_per_segment_plus_background():
    folds = {"1": 0, "2": 1}
    clips = build_clip_samples(videos(), "Rear_view", folds, background_per_video=3, seed=0)
    assert list(clips.columns) == COLUMNS
    assert set(clips["view"]) == {"rear"} and set(clips["driver"]) == {"1", "2"}
    activities = clips[clips["label"] > 0]
    assert len(activities) == 4 * 5  # 4 rear videos x 5 activities (class 0 rows of the labels not used)
    assert len(clips[clips["label"] == 0]) == 4 * 3
    assert (clips.groupby("driver")["fold"].unique().map(list).to_dict()) == {"1": [0], "2": [1]}
    sip = activities[activities["label"] == 1].iloc[0]  # a 0 s activity is widened to 1 s around it
    assert (sip["start"], sip["end"]) == (39.5, 40.5)


@pytest.mark.parametrize("seed", range(6))
def test_background_clips_never_overlap_activities_or_each_other(seed):
    clips = build_clip_samples(
        [video()],
        "rear",
        {"1": 0},
        background_per_video=6,
        seed=seed,
        margin=1.0,
        min_seconds=2.0,
        durations={"/d/Rear_view_user_id_1_NoAudio_1.MP4": 200.0},
    )
    background = clips[clips["label"] == 0].sort_values("start")
    assert len(background) == 6
    for _, clip in background.iterrows():
        assert clip["end"] - clip["start"] >= 2.0 and 0 <= clip["start"] and clip["end"] <= 200.0
        for label, start, end in TIMELINE:
            if label:
                assert clip["end"] <= start - 1.0 + 1e-9 or clip["start"] >= end + 1.0 - 1e-9
    assert (background["start"].to_numpy()[1:] >= background["end"].to_numpy()[:-1]).all()


def test_deterministic_and_independent_of_other_videos():
    a = build_clip_samples(videos(), "rear", {"1": 0, "2": 1}, seed=5)
    b = build_clip_samples(list(reversed(videos())), "rear", {"1": 0, "2": 1}, seed=5)
    assert a.equals(b)
    alone = build_clip_samples([video("2", 2, "rear")], "rear", {"2": 1}, seed=5)
    together = a[(a["driver"] == "2") & (a["session"] == 2)].reset_index(drop=True)
    assert alone.equals(together)
    other = build_clip_samples(videos(), "rear", {"1": 0, "2": 1}, seed=6)
    assert not a[a["label"] == 0]["start"].equals(other[other["label"] == 0]["start"])


def test_gaps_and_tail():
    v = video(timeline=[(3, 10, 20), (4, 22, 30), (5, 40, 50)])
    assert activity_gaps(v, margin=1.0) == [(0.0, 9.0), (31.0, 39.0)]
    assert activity_gaps(v, margin=1.0, duration=60.0)[-1] == (51.0, 60.0)
    short = build_clip_samples(
        [v], "rear", {"1": 0}, background_per_video=10, min_seconds=2.0, background_seconds=8.0
    )
    assert len(short[short["label"] == 0]) == 2  # only two 8 s clips fit without a tail


def test_driver_without_fold_is_an_error():
    with pytest.raises(ValueError, match="driver 2 .* has no fold"):
        build_clip_samples(videos(), "rear", {"1": 0})


def test_read_clip_samples_round_trip(tmp_path):
    clips = build_clip_samples(videos(), "rear", {"1": 0, "2": 1}, seed=0)
    clips.to_csv(tmp_path / "clips_rear.csv", index=False)
    back = read_clip_samples(tmp_path / "clips_rear.csv")
    assert back.equals(clips)
    with pytest.raises(FileNotFoundError, match="run `python -m ndar prepare`"):
        read_clip_samples(tmp_path / "nope.csv")
