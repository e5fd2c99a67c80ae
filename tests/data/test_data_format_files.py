"""Feature and prediction files (`ndar.formats`) that are broken on disk: one error naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from ndar.formats.features import feature_files_digest, read_feature_file, video_duration
from ndar.formats.predictions import read_predictions, segments_frame, write_predictions


def _feature_file(folder):
    path = folder / "Dashboard_user_id_1_NoAudio_3.npz"
    np.savez(path, features=np.zeros((3, 4)), t_start=np.arange(3.0), t_end=np.arange(3.0) + 1)
    return path


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04" + b"\0" * 20])
def test_truncated_or_foreign_feature_file_is_named(tmp_path, content):
    path = _feature_file(tmp_path)
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{path.name}: unreadable feature file"):
        read_feature_file(path)


def test_broken_sidecar_json_is_named(tmp_path):
    path = _feature_file(tmp_path)
    path.with_suffix(".json").write_text('{"fps": 30, "frame_count"')
    for read in (lambda: video_duration(path, np.arange(3.0)), lambda: feature_files_digest([tmp_path])):
        with pytest.raises(ValueError, match=r"Dashboard_user_id_1_NoAudio_3.json: unreadable"):
            read()


def _source(tmp_path):
    segments = segments_frame({"1_3": [(2, 0.0, 4.0, 0.9)], "NA": [(3, 1.0, 2.0, 0.5)]})
    return write_predictions(tmp_path, "oof", {"1_3": np.zeros((4, 16))}, segments)


def test_prediction_source_round_trips_any_key(tmp_path):
    _source(tmp_path)
    _, segments = read_predictions(tmp_path, "oof")
    assert segments["video"].tolist() == ["1_3", "NA"]  # 'NA' is a key, not a missing value
    assert segments["label"].tolist() == [2, 3]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1_3,,0,4,0.9", r"row 3: label '' is not an integer class id"),
        ("1_3,x,0,4,0.9", r"row 3: label 'x' is not an integer class id"),
        ("1_3,2.5,0,4,0.9", r"row 3: label '2.5' is not an integer class id"),
        ("1_3,2,a,4,0.9", r"row 3: start 'a' is not a finite number"),
    ],
)
def test_bad_prediction_segment_names_file_row_and_field(tmp_path, line, message):
    folder = _source(tmp_path)
    path = folder / "segments.csv"
    path.write_text(f"video,label,start,end,score\n1_3,2,0,4,0.9\n{line}\n")
    with pytest.raises(ValueError, match=rf"segments.csv: {message}"):
        read_predictions(tmp_path, "oof")


@pytest.mark.parametrize(("name", "content"), [("segments.csv", b""), ("curves.npz", b"junk")])
def test_unreadable_prediction_file_is_named(tmp_path, name, content):
    folder = _source(tmp_path)
    (folder / name).write_bytes(content)
    with pytest.raises(ValueError, match=rf"{name}: unreadable"):
        read_predictions(tmp_path, "oof")
