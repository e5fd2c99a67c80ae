import numpy as np
import pytest
from heads_fixtures import video_stem, write_feature_file

from ndar.formats.features import parse_feature_set, stream_names
from ndar.heads.data import FeatureAlignmentError, load_feature_videos


def test_feature_set_names():
    assert parse_feature_set("k400_vith/Rear_view") == ("k400_vith", "rear")
    assert stream_names(["a/rear", "a/dashboard"]) == {"a/rear": "rear", "a/dashboard": "dashboard"}
    assert stream_names(["a/rear", "b/rear"]) == {"a/rear": "a/rear", "b/rear": "b/rear"}
    with pytest.raises(ValueError, match="<track>/<view>"):
        parse_feature_set("k400_vith")


def test_load_feature_videos_aligns_views_with_targets(synthetic_dataset):
    ds = synthetic_dataset
    videos = load_feature_videos(ds["root"], ds["features"], ds["sets"], "A1")
    expected = {v.key: v for v in ds["a1"]}
    assert sorted(v.key for v in videos) == sorted(expected)
    for video in videos:
        ref = expected[video.key]
        assert set(video.streams) == {"rear", "dashboard"}
        assert (
            video.streams["rear"].dtype == np.float32
            and video.streams["rear"].shape == ref.streams["rear"].shape
        )
        np.testing.assert_allclose(
            video.streams["dashboard"], ref.streams["dashboard"], atol=1e-2
        )  # float16 file
        assert video.duration == pytest.approx(ref.duration)
        assert [(s.label, s.start, s.end) for s in video.segments] == [
            (s.label, s.start, s.end) for s in ref.segments
        ]
    test = load_feature_videos(ds["root"], ds["features"], ["trk/rear"], "A2")
    assert [v.key for v in test] == ["201_1", "202_1"] and all(not v.segments for v in test)


def test_mismatched_view_lengths_are_reported_or_trimmed(synthetic_dataset, caplog):
    ds = synthetic_dataset
    video = ds["a1"][0]
    short = type(video)(
        video.key,
        {"rear": video.streams["rear"][:-3]},
        video.t_start[:-3],
        video.t_end[:-3],
        video.duration,
    )
    write_feature_file(
        ds["features"] / "trk" / "rear" / f"{video_stem('rear', video.key)}.npz", short, "rear"
    )
    with pytest.raises(
        FeatureAlignmentError, match=rf"session {video.key}.*Rear_view.*has {len(video.t_start) - 3} windows"
    ):
        load_feature_videos(ds["root"], ds["features"], ds["sets"], "A1")
    videos = load_feature_videos(ds["root"], ds["features"], ds["sets"], "A1", trim=True)
    trimmed = next(v for v in videos if v.key == video.key)
    assert trimmed.streams["dashboard"].shape[0] == len(video.t_start) - 3
    assert "trimmed" in caplog.text


def test_missing_feature_file_names_the_file(synthetic_dataset):
    ds = synthetic_dataset
    path = ds["features"] / "trk" / "dashboard" / f"{video_stem('dashboard', ds['a1'][1].key)}.npz"
    path.unlink()
    with pytest.raises(FileNotFoundError, match=str(path)):
        load_feature_videos(ds["root"], ds["features"], ds["sets"], "A1")
