from __future__ import annotations

import pytest

from ndar.data.video_ids import read_video_ids, read_video_ids_with_issues

EXPECTED = {
    1: {
        "dashboard": "Dashboard_user_id_12670_NoAudio_5.MP4",
        "rear": "Rear_view_user_id_12670_NoAudio_5.MP4",
        "right": "Right_side_window_user_id_12670_NoAudio_5.MP4",
    },
    2: {
        "dashboard": "Dashboard_user_id_12670_NoAudio_6.MP4",
        "rear": "Rear_view_user_id_12670_NoAudio_6.MP4",
        "right": "Right_side_window_user_id_12670_NoAudio_6.MP4",
    },
}


def test_2024_quoted_form(tmp_path):
    path = tmp_path / "video_ids.csv"
    path.write_text(
        "video_id,video_files1,video_files2,video_files3\n"
        "1,'Dashboard_user_id_12670_NoAudio_5.MP4','Rear_view_user_id_12670_NoAudio_5.MP4','Right_side_window_user_id_12670_NoAudio_5.MP4'\n"
        "2,'Dashboard_user_id_12670_NoAudio_6.MP4','Rear_view_user_id_12670_NoAudio_6.MP4','Right_side_window_user_id_12670_NoAudio_6.MP4'\n"
    )
    assert read_video_ids(path) == EXPECTED


def test_other_column_names_order_and_quotes(tmp_path):
    """Views matched by file name, not column position; double quotes, spaces, BOM, no trailing newline."""
    path = tmp_path / "ids.csv"
    path.write_bytes(
        b"\xef\xbb\xbf ID , Right camera, Dash cam ,Rear\n"
        b'2," Right_side_window_user_id_12670_NoAudio_6.MP4","Dashboard_user_id_12670_NoAudio_6.MP4",'
        b"Rear_view_user_id_12670_NoAudio_6.MP4\n"
        b"1,Right_side_window_user_id_12670_NoAudio_5.MP4,Rear_view_user_id_12670_NoAudio_5.MP4,"
        b"'Dashboard_user_id_12670_NoAudio_5.MP4'"
    )
    assert read_video_ids(path) == EXPECTED


def test_headerless_and_tab_separated(tmp_path):
    path = tmp_path / "video_ids.csv"
    path.write_text(
        "1\tDashboard_user_id_12670_NoAudio_5.MP4\tRear_view_user_id_12670_NoAudio_5.MP4\t"
        "Right_side_window_user_id_12670_NoAudio_5.MP4\n"
    )
    assert read_video_ids(path) == {1: EXPECTED[1]}


def test_bad_rows_are_reported_with_row(tmp_path):
    path = tmp_path / "video_ids.csv"
    path.write_text(
        "video_id,f1,f2\n"
        "1,Dashboard_user_id_1_NoAudio_5.MP4,Dashboard_user_id_1_NoAudio_5.MP4\n"
        "x,Dashboard_user_id_1_NoAudio_6.MP4,\n"
        "3,garbage.mp4,\n"
        "1,Rear_view_user_id_1_NoAudio_5.MP4,\n"
    )
    ids, issues = read_video_ids_with_issues(path)
    assert [(i.row, i.level) for i in issues] == [
        (2, "error"),
        (3, "error"),
        (4, "error"),
        (4, "error"),
        (5, "error"),
    ]
    assert "two files for view 'dashboard'" in issues[0].reason
    assert "not an integer" in issues[1].reason
    assert "appears twice" in issues[4].reason
    assert ids[1] == {"dashboard": "Dashboard_user_id_1_NoAudio_5.MP4"}
    with pytest.raises(ValueError, match=r"video_ids.csv:3"):
        read_video_ids(path)


def test_a_headerless_first_row_with_a_bad_id_is_an_error_not_a_header(tmp_path):
    path = tmp_path / "video_ids.csv"
    path.write_text("l,Dashboard_user_id_1_NoAudio_5.MP4\n2,Dashboard_user_id_1_NoAudio_6.MP4\n")
    ids, issues = read_video_ids_with_issues(path)
    assert ids == {2: {"dashboard": "Dashboard_user_id_1_NoAudio_6.MP4"}}
    [issue] = issues
    assert (issue.level, issue.row) == ("error", 1) and "video id 'l' is not an integer" in issue.reason
