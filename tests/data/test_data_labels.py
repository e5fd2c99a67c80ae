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
    assert (issue.level, issue.row) == ("warning", 5)  # no 2023 class: the row is not used, once per file
    assert "Hair / makeup" in issue.reason and "1 row(s)" in issue.reason


def test_2022_hair_makeup_rows_are_one_warning_per_file_and_messages_use_2022_ids(tmp_path):
    text = (
        f"{HEADER_2022}\n"
        "42271,Dashboard_user_id_42271_3,Dashboard,Distracted,0:00:09,0:00:26,7,None\n"
        ",,Dashboard,Distracted,0:00:20,0:00:41,8,None\n"  # overlaps row 4, quoted as 2022 class 8
        ",,Dashboard,Distracted,0:00:30,0:00:35,3,None\n"
        ",,Dashboard,Distracted,0:01:00,0:01:05,7,None\n"
    )
    parsed = read_label_file(write(tmp_path, text))
    warnings = [i for i in parsed.issues if i.level == "warning"]
    assert len(warnings) == 1 and "2 row(s)" in warnings[0].reason and "rows 2, 5" in warnings[0].reason
    [error] = [i for i in parsed.issues if i.level == "error"]
    assert error.row == 3 and "class 8 (2022 id)" in error.reason and "class 3 (2022 id)" in error.reason


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
    # row 2 spans rows 3 and 4: one error on the culprit, not one on every row it covers
    assert [(i.level, i.row) for i in overlaps] == [("error", 2)]
    assert "2 rows (rows 3-4" in overlaps[0].reason


def test_a_typod_time_spanning_many_rows_is_one_error_on_that_row(tmp_path):
    rows = "".join(f",Dashboard,D,0:0{m}:00,0:0{m}:10,Class 1,None\n" for m in range(1, 8))
    text = f"{HEADER}\nDashboard_user_id_1_1,Dashboard,D,0:00:44,0:04:49,Class 10,None\n{rows}"
    parsed = read_label_file(write(tmp_path, text))
    [issue] = parsed.issues
    assert (issue.level, issue.row) == ("error", 2) and "4 rows (rows 3-6" in issue.reason


def test_a_plain_pair_overlap_is_one_error(tmp_path):
    text = (
        f"{HEADER}\nDashboard_user_id_1_1,Dashboard,D,0:00:44,0:01:13,Class 4,None\n"
        ",Dashboard,D,0:01:12,0:01:16,Class 13,None\n"
    )
    [issue] = read_label_file(write(tmp_path, text)).issues
    assert issue.level == "error" and "overlaps row" in issue.reason


def test_a_repeated_zero_length_row_is_an_overlap_error(tmp_path):
    # 'start < other end' misses two 5-5s rows; a repeated row is an error however short it is
    text = (
        f"{HEADER}\nDashboard_user_id_1_1,Dashboard,D,0:00:05,0:00:05,Class 4,None\n"
        ",Dashboard,D,0:00:05,0:00:05,Class 4,None\n"
        ",Dashboard,D,0:00:09,0:00:09,Class 5,None\n"  # another instant: fine
    )
    parsed = read_label_file(write(tmp_path, text))
    assert len(parsed.rows) == 3  # reported, not dropped
    [issue] = parsed.issues
    assert (issue.level, issue.row) == ("error", 3) and "overlaps row 2 (5-5s, class 4)" in issue.reason


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


def test_repeated_filename_with_another_camera_view_goes_to_that_view(tmp_path):
    # the 2024 release's user_id_47158.csv: the Dashboard Filename copied onto the other views' rows
    block = ["0:00:09,0:00:13,Class 8", "0:00:46,0:01:03,Class 4"]
    lines = [HEADER]
    for view in ("Dashboard", "Rearview", "Rightside Window"):
        lines += [f"Dashboard_user_id_47158_5,{view},D,{b},None" for b in block]
    parsed = read_label_file(write(tmp_path, "\n".join(lines) + "\n"))
    blocks = parsed.block_rows()
    assert sorted(v.view for v in blocks) == ["dashboard", "rear", "right"]
    assert all(len(rows) == 2 for rows in blocks.values())
    assert not [i for i in parsed.issues if i.level == "error"]  # no overlap within the dashboard block
    warnings = [i for i in parsed.issues if i.level == "warning"]
    assert [(i.row, "rows 4-5" in i.reason or "rows 6-7" in i.reason) for i in warnings] == [
        (4, True),
        (6, True),
    ]
    assert "Camera View is taken" in warnings[0].reason


def test_filename_without_user_is_read_with_one_warning(tmp_path):
    text = (
        f"{HEADER}\nRight_side_window_id_14786_7,Right,D,0:00:09,0:00:13,Class 8,None\n"
        "Right_side_window_id_14786_7,Right,D,0:00:20,0:00:23,Class 2,None\n"
    )
    parsed = read_label_file(write(tmp_path, text))
    assert [r.video for r in parsed.rows] == [VideoName("right", "14786", 7)] * 2
    [issue] = parsed.issues
    assert issue.level == "warning" and "rows 2-3" in issue.reason and "lacks 'user_'" in issue.reason


@pytest.mark.parametrize("bad", ["nan", "inf", "1e9", "0:00:0_2", "0:00:-1", "0x10"])
def test_non_time_values_are_errors_naming_the_row(tmp_path, bad):
    text = f"{HEADER}\nDashboard_user_id_1_1,Dashboard,D,0:00:01,0:00:02,Class 3,None\n,Dashboard,D,0:00:05,{bad},Class 1,None\n"
    parsed = read_label_file(write(tmp_path, text))
    assert len(parsed.rows) == 1
    [issue] = parsed.issues
    assert (issue.level, issue.row) == ("error", 3) and "unreadable time" in issue.reason


def test_cr_only_line_endings_are_read_like_lf(tmp_path):
    text = f"{HEADER}\nDashboard_user_id_1_1,Dashboard,D,0:00:01,0:00:02,Class 3,None\n,Dashboard,D,0:00:05,0:00:09,Class 1,None\n"
    lf = read_label_file(write(tmp_path, text, name="user_id_1.csv"))
    cr = read_label_file(write(tmp_path, text.replace("\n", "\r"), name="user_id_2.csv"))
    assert [r.segment for r in cr.rows] != [] and [(r.segment.label, r.segment.start) for r in cr.rows] == [
        (r.segment.label, r.segment.start) for r in lf.rows
    ]
    assert cr.issues == []


def test_mixed_cr_and_lf_and_binary_files_are_one_clear_error(tmp_path):
    mixed = write(tmp_path, f"{HEADER}\nDashboard_user_id_1_1,Dashboard,D,0:00:01,0:00:02,Class 3,None\r,x\n")
    [issue] = read_label_file(mixed).issues
    assert issue.level == "error" and "CR-only" in issue.reason and issue.file == str(mixed)
    binary = tmp_path / "user_id_9.csv"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)))
    [issue] = read_label_file(binary).issues
    assert issue.level == "error" and "binary" in issue.reason and issue.file == str(binary)
