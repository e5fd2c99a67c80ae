from __future__ import annotations

from pathlib import Path

import pytest
from data_fixtures import HEADER_2023, TIMELINE, label_csv_2023, make_split

from ndar.data.discover import load_dataset


def test_official_layout_a1(dataset):
    index = load_dataset(dataset, "A1")
    assert index.issues == []
    assert index.drivers == ["101", "102", "103", "104"]
    assert len(index.videos) == 24 and len(index.sessions) == 8
    session = index.session("102_2")
    assert sorted(session.views) == ["dashboard", "rear", "right"]
    assert [(s.label, s.start, s.end) for s in session.segments] == [
        (c, a + 2, b + 2) for c, a, b in TIMELINE
    ]
    rear = session.views["rear"]
    assert rear.path.name == "Rear_view_user_id_102_NoAudio_2.MP4"
    assert rear.split == "A1" and rear.appearance == "Sunglasses"
    assert index.session("102_1").views["rear"].appearance == "None"


def test_a2_gets_video_ids_and_no_label_warnings(dataset):
    index = load_dataset(dataset, "A2")
    assert index.issues == []
    assert {s.key: s.video_id for s in index.sessions} == {"201_5": 1, "201_6": 2}
    assert all(not v.segments for v in index.videos)


def test_root_may_be_the_split_folder(dataset):
    index = load_dataset(dataset / "A1", "A1")
    assert len(index.videos) == 24 and index.issues == []
    with pytest.raises(FileNotFoundError, match="A2"):
        load_dataset(dataset / "A2", "A1")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(dataset / "nope", "A1")


def test_name_variants_are_matched_to_files(tmp_path):
    """Capital User_id folders, lower-case .mp4, other view spellings; labels written another way."""
    folder = tmp_path / "A1" / "User_id_7"
    folder.mkdir(parents=True)
    for name in (
        "Dashboard_User_id_7_NoAudio_1.mp4",
        "Rearview_mirror_user_id_7_NoAudio_1.MP4",
        "Right_window_user_id_7_NoAudio_1.Mp4",
    ):
        (folder / name).write_bytes(b"")
    (folder / "User_id_7.csv").write_text(
        f"{HEADER_2023}\n"
        "dashboard_USER_ID_7_1,Dashboard,D,0:00:09,0:00:26,Class 3,None\n"
        "Rear_view_user_id_7_NoAudio_1,Rear_view,D,0:00:09,0:00:26,Class 3,None\n"
        "Right_side_window_user_id_7_1.MP4,Right_side_window,D,0:00:09,0:00:26,Class 3,None\n"
    )
    index = load_dataset(tmp_path, "A1")
    assert index.issues == []
    assert all([(s.label, s.start, s.end) for s in v.segments] == [(3, 9, 26)] for v in index.videos)
    assert {v.view: v.path.name for v in index.videos}["rear"] == "Rearview_mirror_user_id_7_NoAudio_1.MP4"


def test_labels_in_a_separate_folder(tmp_path):
    make_split(tmp_path / "videos", "A1", ["5", "6"], labels=False)
    labels = tmp_path / "labels&instructions" / "A1"
    labels.mkdir(parents=True)
    for driver in ("5", "6"):
        (labels / f"user_id_{driver}.csv").write_text(label_csv_2023(driver, {1: TIMELINE, 2: TIMELINE}))
    for labels_dir in (labels, labels.parent):  # the split folder, or the folder holding it
        index = load_dataset(tmp_path / "videos", "A1", labels_dir=labels_dir)
        assert index.issues == []
        assert all(len(s.segments) == len(TIMELINE) for s in index.sessions)


def test_video_named_in_labels_but_missing_on_disk(dataset):
    (dataset / "A1" / "user_id_103" / "Rear_view_user_id_103_NoAudio_2.MP4").unlink()
    index = load_dataset(dataset, "A1")
    [error] = index.errors
    label_file = dataset / "A1" / "user_id_103" / "user_id_103.csv"
    # rows: header, 3 views x 4 rows of session 1, then session 2's dashboard block, then its rear block
    assert (error.file, error.row) == (str(label_file), 1 + 12 + 4 + 1)
    assert "Rear_view_user_id_103_2" in error.reason and "not found on disk" in error.reason
    assert any("has no rear video" in w.reason for w in index.warnings)


def test_ground_truth_is_dashboard_and_disagreement_is_a_warning(tmp_path):
    folder = make_split(tmp_path, "A1", ["9"], sessions=(1,), labels=False) / "user_id_9"
    (folder / "user_id_9.csv").write_text(
        f"{HEADER_2023}\n"
        "Rear_view_user_id_9_1,Rear_view,D,0:00:10,0:00:20,Class 2,None\n"
        "Dashboard_user_id_9_1,Dashboard,D,0:00:11,0:00:20,Class 2,None\n"
        "Right_side_window_user_id_9_1,Right_side_window,D,0:00:11,0:00:20,Class 2,None\n"
    )
    index = load_dataset(tmp_path, "A1")
    assert [(s.start, s.end) for s in index.session("9_1").segments] == [(11, 20)]
    [warning] = index.issues
    assert (warning.level, warning.row) == ("warning", 2)
    assert "rear view differ from the dashboard" in warning.reason


def test_ground_truth_falls_back_to_first_labelled_view(tmp_path):
    folder = make_split(tmp_path, "A1", ["9"], sessions=(1,), labels=False) / "user_id_9"
    (folder / "user_id_9.csv").write_text(
        f"{HEADER_2023}\nRight_side_window_user_id_9_1,Right,D,0:00:30,0:00:40,Class 4,None\n"
        "Rear_view_user_id_9_1,Rear_view,D,0:00:10,0:00:20,Class 2,None\n"
    )
    index = load_dataset(tmp_path, "A1")
    assert [s.label for s in index.session("9_1").segments] == [2]  # rear comes before right
    assert any("no label rows" in w.reason and "Dashboard" in w.file for w in index.warnings)


def test_missing_label_file_and_stray_files(dataset):
    (dataset / "A1" / "user_id_104" / "user_id_104.csv").rename(dataset / "A1" / "user_id_104" / "labels.csv")
    (dataset / "A1" / "user_id_104" / "notes.mp4").write_bytes(b"")
    index = load_dataset(dataset, "A1")
    assert index.errors == []
    reasons = [(Path(w.file).name, w.reason) for w in index.warnings]
    assert ("labels.csv", "CSV not named user_id_<driver>.csv; not read") in reasons
    assert any(name == "notes.mp4" and "video not used" in r for name, r in reasons)
    assert sum("no label file user_id_104.csv" in r for _, r in reasons) == 6
    assert index.session("104_1").segments == []


def test_a1_without_any_label_file_is_an_error(tmp_path):
    make_split(tmp_path, "A1", ["1"], labels=False)
    index = load_dataset(tmp_path, "A1")
    assert any("no label files" in e.reason for e in index.errors)


def test_label_errors_flow_into_the_index(dataset):
    path = dataset / "A1" / "user_id_101" / "user_id_101.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("Class 7", "Class 19")
    path.write_text("\n".join(lines) + "\n")
    index = load_dataset(dataset, "A1")
    [error] = index.errors
    assert (error.file, error.row) == (str(path), 4)
    assert "unknown class 19" in error.reason
    assert len(index.session("101_1").views["dashboard"].segments) == len(TIMELINE) - 1


def test_video_ids_naming_unknown_sessions(dataset):
    (dataset / "A2" / "video_ids.csv").write_text(
        "id,a,b,c\n1,Dashboard_user_id_201_NoAudio_5.MP4,,\n3,Dashboard_user_id_999_NoAudio_1.MP4,,\n"
    )
    index = load_dataset(dataset, "A2")
    assert any("999_1, which is not on disk" in e.reason for e in index.errors)
    assert any("201_6 has no video id" in w.reason for w in index.warnings)


def test_flat_labels_folder_shared_by_both_splits(tmp_path):
    """A labels folder without A1/ A2/ sub-folders: each split reads only its own drivers' files."""
    make_split(tmp_path / "videos", "A1", ["5"], labels=False)
    make_split(tmp_path / "videos", "A2", ["6"], labels=False)
    labels = tmp_path / "labels"
    labels.mkdir()
    for driver in ("5", "7"):
        (labels / f"user_id_{driver}.csv").write_text(label_csv_2023(driver, {1: TIMELINE, 2: TIMELINE}))
    a1 = load_dataset(tmp_path / "videos", "A1", labels_dir=labels)
    assert a1.errors == [] and all(s.segments for s in a1.sessions)
    [warning] = a1.warnings
    assert "without videos in A1 not read: ['7']" in warning.reason
    a2 = load_dataset(tmp_path / "videos", "A2", labels_dir=labels)
    assert a2.errors == [] and not any(s.segments for s in a2.sessions)
    assert any("['5', '7']" in w.reason for w in a2.warnings)


def test_view_difference_warning_names_the_row_that_differs(tmp_path):
    folder = (
        make_split(tmp_path, "A1", ["9"], sessions=(1,), labels=False, views=("dashboard", "rear"))
        / "user_id_9"
    )
    (folder / "user_id_9.csv").write_text(
        f"{HEADER_2023}\n"
        "Dashboard_user_id_9_1,Dashboard,D,0:00:10,0:00:20,Class 2,None\n"
        ",Dashboard,D,0:00:30,0:00:40,Class 3,None\n"
        "Rear_view_user_id_9_1,Rear_view,D,0:00:10,0:00:20,Class 2,None\n"
        ",Rear_view,D,0:00:31,0:00:40,Class 3,None\n"  # row 5 differs, not row 4
    )
    [warning] = [i for i in load_dataset(tmp_path, "A1").issues if "differ" in i.reason]
    assert warning.row == 5 and "class 3 31-40s vs class 3 30-40s" in warning.reason


@pytest.mark.parametrize("name", ["user id_9.csv", "User_ID_9.csv", "userid_9.csv"])
def test_label_file_spellings_of_real_releases_are_read(tmp_path, name):
    folder = make_split(tmp_path, "A1", ["9"], sessions=(1,)) / "user_id_9"
    (folder / "user_id_9.csv").rename(folder / name)  # the 2022 release: 'user id_24491.csv'
    index = load_dataset(tmp_path, "A1")
    assert index.issues == []
    assert len(index.session("9_1").segments) == len(TIMELINE)


def _relabel(text: str, driver: str, other: str) -> str:
    return text.replace(f"user_id_{driver}_", f"user_id_{other}_")


def test_a_file_in_a_drivers_folder_labels_that_driver_even_if_filenames_name_another(tmp_path):
    # the 2024 release's user_id_93439.csv names driver 98389 on every row; 98389 has its own file
    split = make_split(tmp_path, "A1", ["93439", "98389"], sessions=(5,))
    own = split / "user_id_93439" / "user_id_93439.csv"
    own.write_text(_relabel(own.read_text(), "93439", "98389").replace("0:00:17", "0:00:16"))
    index = load_dataset(tmp_path, "A1")
    assert not index.errors
    assert index.session("93439_5").segments[0].start == 16  # its own rows, not 98389's
    assert index.session("98389_5").segments[0].start == 17
    [warning] = [w for w in index.warnings if "Filenames name driver 98389" in w.reason]
    assert warning.file == str(own) and "rows used for driver 93439" in warning.reason


def _misnamed_79755(tmp_path: Path) -> Path:
    split = make_split(tmp_path, "A1", ["79755", "101"], sessions=(3,))
    folder = split / "user_id_79755"
    (folder / "user_id_79755.csv").rename(folder / "user_id_79775.csv")
    return split


def test_misnamed_label_file_reads_the_same_in_driver_folder_and_flat_labels_folder(tmp_path):
    split = _misnamed_79755(tmp_path / "nested")
    nested = load_dataset(split.parent, "A1")
    flat_root = tmp_path / "flat"
    split = _misnamed_79755(flat_root)
    labels = tmp_path / "labels"
    labels.mkdir()
    for csv_file in split.rglob("*.csv"):
        csv_file.rename(labels / csv_file.name)
    flat = load_dataset(flat_root, "A1", labels_dir=labels)
    for index in (nested, flat):
        assert not index.errors, index.errors
        assert len(index.session("79755_3").segments) == len(TIMELINE)
        assert any("79775" in w.reason and "79755" in w.reason for w in index.warnings)
