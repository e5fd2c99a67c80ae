from __future__ import annotations

from pathlib import Path

import pytest

from ndar.data.labels import VideoName, parse_label, parse_time, parse_video_name, read_label_file

HEADER = "Filename,Camera View,Activity Type,Start Time,End Time,Label (Primary),Appearance Block"
HEADER_2022 = "User ID,Filename,Camera View,Activity Type,Start Time,End Time,Label/Class ID,Appearance Block"


def write(tmp_path: Path, text: str, name: str = "user_id_42271.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def issues_at(label_file, row):
    return [i for i in label_file.issues if i.row == row]


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("0:08:09", 489),
        ("8:09", 489),
        ("0:8:9", 489),
        ("00:08:09", 489),
        ("1:02:03", 3723),
        ("75", 75),
        (" 0:00:09.5 ", 9.5),
        ("0:00:00", 0),
    ],
)
def test_parse_time_formats(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1:60", "1::2", "-1:00", "1:2:3:4", "0:08:9x"])
def test_parse_time_rejects(text):
    with pytest.raises(ValueError, match="time"):
        parse_time(text)


@pytest.mark.parametrize(
    "text, fmt, label",
    [
        ("Class 7", "2023", 7),
        ("class7", "2023", 7),
        ("CLASS  15", "2023", 15),
        (" 7 ", "2023", 7),
        ("3.0", "2023", 3),
        ("0", "2023", 0),
        ("NA", "2023", None),
        ("n/a", "2023", None),
        ("", "2023", None),
        ("8", "2022", 7),  # 2022 'Reaching behind' is 2023 class 7
        ("15", "2022", 14),
        ("16", "2022", 15),
        ("17", "2022", 15),
        ("Class 3", "2022", 3),
    ],
)
def test_parse_label(text, fmt, label):
    assert parse_label(text, fmt) == label


@pytest.mark.parametrize(
    "text, fmt, message",
    [
        ("Class 16", "2023", "unknown class 16"),
        ("99", "2023", "unknown class 99"),
        ("Drinking", "2023", "not 'Class N'"),
        ("7", "2022", "no 2023/2024 class"),
        ("18", "2022", "unknown class 18"),
    ],
)
def test_parse_label_rejects(text, fmt, message):
    with pytest.raises(ValueError, match=message):
        parse_label(text, fmt)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Dashboard_user_id_42271_3", VideoName("dashboard", "42271", 3)),
        ("Dashboard_user_id_42271_NoAudio_3.MP4", VideoName("dashboard", "42271", 3)),
        ("Rear_view_User_id_42271_NoAudio_3.mp4", VideoName("rear", "42271", 3)),
        ("Rearview_mirror_user_id_42271_NoAudio_3", VideoName("rear", "42271", 3)),
        ("Rearview_user_id_42271_3", VideoName("rear", "42271", 3)),
        ("Right_side_window_user_id_42271_NoAudio_7", VideoName("right", "42271", 7)),
        ("Rightside_window_user_id_42271_NoAudio_7", VideoName("right", "42271", 7)),
        ("right_window_USER_ID_042271_noaudio_7.Mp4", VideoName("right", "42271", 7)),
        ("'Dashboard_user_id_12670_NoAudio_5.MP4'", VideoName("dashboard", "12670", 5)),
        ('"Dashboard_user_id_12670_NoAudio_5.MP4"', VideoName("dashboard", "12670", 5)),
    ],
)
def test_parse_video_name_variants(name, expected):
    assert parse_video_name(name) == expected


@pytest.mark.parametrize("name", ["Dashboard_42271_3", "Left_user_id_1_2", "Dashboard_user_id_x_3", ""])
def test_parse_video_name_rejects(name):
    with pytest.raises(ValueError):
        parse_video_name(name)


def test_2023_format_forward_fill_bom_and_header_tolerance(tmp_path):
    text = (
        " filename ,CAMERA  VIEW, Activity Type,Start Time ,End time,label (primary),Appearance Block\n"
        "Dashboard_user_id_42271_3,Dashboard,Distracted,0:00:09,0:00:26,Class 3,None\n"
        " ,Dashboard,Distracted,0:0:30,0:00:41,Class 1,None\n"  # a space: forward-filled
        ",Dashboard,Distracted,1:02,1:10,7,None\n"  # blank: forward-filled; M:SS; integer label
        "Rear_view_user_id_42271_3,Rear_view,Distracted,0:00:09,0:00:26,Class 3,None\n"
        ",,,,,,\n"  # an empty line carries nothing
        ",Rear_view,Distracted,0:00:30,0:00:41,Class 1,None\n"
    )
    parsed = read_label_file(write(tmp_path, text, bom=True))
    assert parsed.fmt == "2023"
    assert parsed.issues == []
    blocks = parsed.block_rows()
    dash = [
        (r.segment.label, r.segment.start, r.segment.end) for r in blocks[VideoName("dashboard", "42271", 3)]
    ]
    assert dash == [(3, 9, 26), (1, 30, 41), (7, 62, 70)]
    rear = blocks[VideoName("rear", "42271", 3)]
    assert [r.row for r in rear] == [5, 7]
    assert rear[1].filename == "Rear_view_user_id_42271_3"
    assert rear[1].segment.source.endswith("user_id_42271.csv:7")


def test_2022_format_maps_class_ids(tmp_path):
    text = (
        f"{HEADER_2022}\n"
        "42271,Dashboard_user_id_42271_3,Dashboard,Distracted,0:00:09,0:00:26,3,None\n"
        ",,Dashboard,Distracted,0:00:30,0:00:41,8,None\n"
        ",,Dashboard,Distracted,0:00:50,0:00:55,17,None\n"
        ",,Dashboard,Distracted,0:01:00,0:01:05,7,None\n"
    )
    parsed = read_label_file(write(tmp_path, text))
    assert parsed.fmt == "2022"
    assert [r.segment.label for r in parsed.rows] == [3, 7, 15]
    [issue] = parsed.issues
    assert (issue.level, issue.row) == ("error", 5)
    assert "Hair / makeup" in issue.reason


def test_na_label_is_a_warning_and_row_not_used(tmp_path):
    text = f"{HEADER}\nDashboard_user_id_1_1,Dashboard,Distracted,0:00:09,0:00:26,NA,None\n"
    parsed = read_label_file(write(tmp_path, text))
    assert parsed.rows == []
    [issue] = parsed.issues
    assert (issue.level, issue.row) == ("warning", 2)
    assert "NA" in issue.reason and "not used" in issue.reason


@pytest.mark.parametrize(
    "row, level, reason",
    [
        ("Dashboard_user_id_1_1,Dashboard,D,0:00:09,0:00:26,Class 16,None", "error", "unknown class 16"),
        (
            "Dashboard_user_id_1_1,Dashboard,D,0:00:26,0:00:09,Class 3,None",
            "error",
            "end 9s is before start 26s",
        ),
        ("Dashboard_user_id_1_1,Dashboard,D,0:00:xx,0:00:26,Class 3,None", "error", "unreadable time"),
        ("Dashboard_user_id_1_1,Dashboard,D,,0:00:26,Class 3,None", "error", "unreadable time"),
        ("Dash_board_1_1,Dashboard,D,0:00:09,0:00:26,Class 3,None", "error", "unreadable Filename"),
        (",Dashboard,D,0:00:09,0:00:26,Class 3,None", "error", "no earlier row to fill it from"),
        ("Dashboard_user_id_1_1,Rear_view,D,0:00:09,0:00:26,Class 3,None", "warning", "disagrees"),
    ],
)
def test_malformed_rows_give_file_row_reason(tmp_path, row, level, reason):
    path = write(tmp_path, f"{HEADER}\n{row}\n")
    parsed = read_label_file(path)
    [issue] = parsed.issues
    assert (issue.level, issue.file, issue.row) == (level, str(path), 2)
    assert reason in issue.reason


def test_rows_of_an_unreadable_filename_are_reported_too(tmp_path):
    text = f"{HEADER}\nnot_a_video,Dashboard,D,0:00:09,0:00:26,Class 3,None\n,Dashboard,D,0:00:30,0:00:40,Class 1,None\n"
    parsed = read_label_file(write(tmp_path, text))
    assert parsed.rows == []
    assert [(i.row, i.level) for i in parsed.issues] == [(2, "error"), (3, "error")]
    assert "not_a_video" in parsed.issues[1].reason


def test_overlapping_segments_of_one_video_are_errors(tmp_path):
    text = (
        f"{HEADER}\n"
        "Dashboard_user_id_1_1,Dashboard,D,0:00:10,0:01:00,Class 3,None\n"
        ",Dashboard,D,0:00:20,0:00:25,Class 1,None\n"  # inside row 2
        ",Dashboard,D,0:00:50,0:01:10,Class 4,None\n"  # overlaps row 2 too (not row 3)
        ",Dashboard,D,0:01:10,0:01:20,Class 5,None\n"  # touching is fine
        "Rear_view_user_id_1_1,Rear_view,D,0:00:20,0:00:25,Class 1,None\n"  # other video: no overlap
    )
    parsed = read_label_file(write(tmp_path, text))
    assert len(parsed.rows) == 5  # reported, not dropped
    overlaps = [i for i in parsed.issues if "overlaps" in i.reason]
    assert [(i.level, i.row) for i in overlaps] == [("error", 3), ("error", 4)]
    assert "row 2" in overlaps[0].reason and "row 2" in overlaps[1].reason


def test_rows_out_of_time_order_are_a_warning(tmp_path):
    text = f"{HEADER}\nDashboard_user_id_1_1,Dashboard,D,0:01:00,0:01:10,Class 3,None\n,Dashboard,D,0:00:10,0:00:20,Class 1,None\n"
    parsed = read_label_file(write(tmp_path, text))
    assert len(parsed.rows) == 2
    [issue] = parsed.issues
    assert (issue.level, issue.row) == ("warning", 3)
    assert "out of time order" in issue.reason


def test_missing_header_column_and_empty_file(tmp_path):
    parsed = read_label_file(write(tmp_path, "Filename,Camera View,Start Time,End Time\nx,y,0:01,0:02\n"))
    [issue] = parsed.issues
    assert (issue.level, issue.row) == ("error", 1)
    assert "label" in issue.reason
    empty = read_label_file(write(tmp_path, "", name="empty.csv"))
    assert empty.issues[0].level == "error" and "empty" in empty.issues[0].reason


def test_nothing_is_dropped_silently(tmp_path):
    """Every non-empty data row is either used or named by an issue."""
    text = (
        f"{HEADER}\n"
        "Dashboard_user_id_1_1,Dashboard,D,0:00:09,0:00:26,Class 3,None\n"
        ",Dashboard,D,0:00:30,0:00:41,NA,None\n"
        ",Dashboard,D,0:00:50,0:00:45,Class 4,None\n"
        ",Dashboard,D,0:01:00,0:01:05,Class 42,None\n"
        ",Dashboard,D,0:01:10,zz,Class 5,None\n"
        ",Dashboard,D,0:01:20,0:01:30,Class 6,None\n"
    )
    parsed = read_label_file(write(tmp_path, text))
    used = {r.row for r in parsed.rows}
    reported = {i.row for i in parsed.issues}
    assert used == {2, 7}
    assert used | reported == set(range(2, 8))
