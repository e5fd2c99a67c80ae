"""Submission reader, writer and validator; the two CLIs."""

import json
import re

import pandas as pd
import pytest

from ndar.cli import main as cli_main
from ndar.submission import check_submission, read_submission, validate_submission, write_submission


def test_reader_accepts_spaces_tabs_commas(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1 2 10 20\n\n3\t4\t5.5\t7\n5,6,1,1\n")
    frame = read_submission(path)
    assert frame.values.tolist() == [[1, 2, 10, 20], [3, 4, 5.5, 7], [5, 6, 1, 1]]
    assert frame["video"].dtype.kind == "i"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1 2 10\n", "expected 4 fields"),
        ("video_id activity_id start end\n", "not an integer"),
        ("1 2 a 20\n", "not numbers"),
        ("1 2 30 20\n", "before start"),
    ],
)
def test_reader_malformed_line_names_file_and_line(tmp_path, text, reason):
    path = tmp_path / "sub.txt"
    path.write_text("1 1 0 5\n" + text)
    with pytest.raises(ValueError, match=rf"sub.txt:2: .*{reason}"):
        read_submission(path)


def test_writer_rounds_sorts_drops_class0_and_round_trips(tmp_path):
    rows = pd.DataFrame(
        [(2, 3, 10.4, 20.5), (1, 5, 7.6, 9.49), (1, 0, 0, 3), (1, 4, 2.0, 4.0), (1, 4, 2.2, 3.8)],
        columns=["video", "label", "start", "end"],
    )
    path = write_submission(tmp_path / "sub" / "submission.txt", rows)
    assert path.read_text() == "1 4 2 4\n1 5 8 9\n2 3 10 21\n"
    assert validate_submission(path, video_ids=[1, 2]) == []
    assert read_submission(path).values.tolist() == [[1, 4, 2, 4], [1, 5, 8, 9], [2, 3, 10, 21]]
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left


def test_writer_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="video id must be an integer"):
        write_submission(tmp_path / "s.txt", [("42271_3", 1, 0, 2)])
    with pytest.raises(ValueError, match="class must be"):
        write_submission(tmp_path / "s.txt", [(1, 16, 0, 2)])
    with pytest.raises(ValueError, match="0 <= start <= end"):
        write_submission(tmp_path / "s.txt", [(1, 1, 5, 2)])


def test_validator_reports_each_problem_with_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 1 10 20\n1 1 10 20\n9 2 3 4\n1 0 5 6\n1 16 5 6\n1 3 5.5 6\n1 4 8 7\nx 1 2 3\n")
    problems = validate_submission(path, video_ids={1, 2})
    assert problems == [
        f"{path}:2: duplicate of line 1",
        f"{path}:3: video id 9 is not in the video id list",
        f"{path}:5: activity id 16 is outside 1..15",
        f"{path}:6: times must be whole seconds (start 5.5, end 6)",
        f"{path}:7: end 7 is before start 8",
        f"{path}:8: video id 'x' is not an integer",
    ]
    assert f"{path}:4: activity id 0 (normal driving) is not scored (--strict)" in validate_submission(
        path, video_ids={1, 2}, strict=True
    )


def test_class0_lines_are_one_warning_unless_strict(tmp_path, capsys):
    path = tmp_path / "sub.txt"
    path.write_text("1 1 10 20\n1 0 20 30\n1 0 40 50\n1 2 60 70\n")
    check = check_submission(path)
    assert check.errors == []
    assert check.warnings == [f"{path}: 2 class-0 line(s) (lines 2-3): not scored, the evaluation drops them"]
    assert cli_main(["validate-submission", str(path)]) == 0
    assert "warning:" in capsys.readouterr().out
    assert cli_main(["validate-submission", str(path), "--strict"]) == 1


def test_2022_edition_accepts_its_own_class_ids(tmp_path):
    path = tmp_path / "sub.txt"
    path.write_text("7 17 354 371 \n")
    assert validate_submission(path) == [f"{path}:1: activity id 17 is outside 1..15"]
    assert check_submission(path, edition="2022").errors == []


def test_non_utf8_file_is_named_by_score_and_validate(tmp_path, capsys):
    gt = tmp_path / "gt.txt"
    gt.write_text("1 1 10 20\n")
    bad = tmp_path / "latin.txt"
    bad.write_bytes("1 1 10 20 \xe9t\xe9\n".encode("latin-1"))
    assert cli_main(["score", "--gt", str(gt), "--pred", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "not a UTF-8 text file" in err
    assert cli_main(["validate-submission", str(bad)]) == 1
    assert f"{bad}: not a UTF-8 text file" in capsys.readouterr().out


def test_validator_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n")
    assert validate_submission(path) == [f"{path}: the file has no rows"]


def test_validator_reads_video_ids_csv(tmp_path):
    ids = tmp_path / "video_ids.csv"
    ids.write_text(
        "video_id,video_files1,video_files2,video_files3\n"
        "1,'Dashboard_user_id_12670_NoAudio_5.MP4','Rear_view_user_id_12670_NoAudio_5.MP4',"
        "'Right_side_window_user_id_12670_NoAudio_5.MP4'\n"
    )
    path = tmp_path / "s.txt"
    path.write_text("1 1 0 5\n2 1 0 5\n")
    assert validate_submission(path, video_ids=ids) == [f"{path}:2: video id 2 is not in the video id list"]


def test_score_and_validate_cli(tmp_path, capsys):
    gt, pred = tmp_path / "gt.txt", tmp_path / "pred.txt"
    gt.write_text("1 1 10 20\n1 2 30 40\n")
    pred.write_text("1 1 12 22\n")
    assert cli_main(["score", "--gt", str(gt), "--pred", str(pred), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mOS"] == pytest.approx((8 / 12) / 2)
    assert (out["n_pred"], out["n_gt"], out["n_matched"]) == (1, 2, 1)
    assert [row["label"] for row in out["per_class"]] == [1, 2]
    assert cli_main(["score", "--gt", str(gt), "--pred", str(pred)]) == 0
    assert "mOS 0.3333" in capsys.readouterr().out
    pred.write_text("1 1 12\n")
    assert cli_main(["score", "--gt", str(gt), "--pred", str(pred)]) == 1
    assert "pred.txt:1" in capsys.readouterr().err
    assert cli_main(["validate-submission", str(gt)]) == 0
    assert cli_main(["validate-submission", str(pred)]) == 1


def test_validator_reports_unreadable_video_id_file(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1 1 0 5\n")
    problems = validate_submission(path, video_ids=tmp_path / "missing.csv")
    assert len(problems) == 1 and "missing.csv" in problems[0] and "cannot read" in problems[0]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("-1 3 10 20", "video id '-1' is not an integer"),
        ("+1 3 10 20", "video id '+1' is not an integer"),
        ("\u0661 3 10 20", "is not an integer"),  # an Arabic-Indic digit: int() takes it, the format does not
        ("1 3 1e1 20", "are not numbers"),
        ("1 3 1_0 20", "are not numbers"),
        ("1 3 10 inf", "are not numbers"),
    ],
)
def test_validator_refuses_numbers_python_reads_but_the_format_does_not_hold(tmp_path, line, reason):
    path = tmp_path / "sub.txt"
    path.write_text(f"1 1 0 5\n{line}\n", encoding="utf-8")
    [problem] = validate_submission(path)
    assert problem.startswith(f"{path}:2: ") and reason in problem
    with pytest.raises(ValueError, match=rf"sub.txt:2: .*{re.escape(reason)}"):
        read_submission(path)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((1, float("nan"), 0, 2), "class must be"),
        ((1, 1, "a", 2), "expected finite times"),
        ((1, 1, None, 2), "expected finite times"),
        ((-1, 1, 0, 2), "video id must be an integer"),
    ],
)
def test_writer_names_the_row_of_any_bad_value(tmp_path, row, reason):
    with pytest.raises(ValueError, match=rf"submission row 1 .*{reason}"):
        write_submission(tmp_path / "s.txt", [(1, 1, 0, 2), row])
    assert not (tmp_path / "s.txt").exists()


def test_writer_names_missing_columns(tmp_path):
    with pytest.raises(ValueError, match=r"lack column\(s\) \['start', 'end'\]"):
        write_submission(tmp_path / "s.txt", pd.DataFrame({"video": [1], "label": [1]}))
