from __future__ import annotations

import json
import subprocess
import sys

from ndar.cli import main


def test_clean_dataset_exits_0(dataset, capsys):
    assert main(["check-data", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "A1 (" in out and "A2 (" in out
    assert "drivers 4, sessions 8, videos 24 (dashboard 8, rear 8, right 8)" in out
    assert "OK (no errors)" in out


def test_warnings_only_exit_0_and_errors_exit_1(dataset, capsys):
    label_file = dataset / "A1" / "user_id_101" / "user_id_101.csv"
    lines = label_file.read_text().splitlines()
    lines[2] = lines[2].replace("Class 1", "NA")
    label_file.write_text("\n".join(lines) + "\n")
    assert main(["check-data", str(dataset), "--split", "A1"]) == 0
    assert f"WARNING {label_file}:3: label 'NA' is NA" in capsys.readouterr().out

    lines[4] = lines[4].replace("0:01:40,0:01:58", "0:01:58,0:01:40")
    label_file.write_text("\n".join(lines) + "\n")
    assert main(["check-data", str(dataset), "--split", "A1"]) == 1
    out = capsys.readouterr().out
    assert f"ERROR {label_file}:5: end 100s is before start 118s" in out
    assert "FAILED: 1 error(s)" in out


def test_json_report_and_missing_video(dataset, capsys):
    (dataset / "A1" / "user_id_102" / "Dashboard_user_id_102_NoAudio_1.MP4").unlink()
    assert main(["check-data", str(dataset), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [s["split"] for s in report["splits"]] == ["A1", "A2"]
    assert report["splits"][0]["videos_per_view"] == {"dashboard": 7, "rear": 8, "right": 8}
    assert report["splits"][1]["sessions_with_video_id"] == 2
    [error] = [i for i in report["issues"] if i["level"] == "error"]
    assert error["file"].endswith("user_id_102.csv") and error["row"] == 2
    assert "Dashboard_user_id_102_1" in error["reason"] and "not found on disk" in error["reason"]


def test_missing_root_exits_2(tmp_path, capsys):
    assert main(["check-data", str(tmp_path / "nope")]) == 2
    assert main(["check-data", str(tmp_path), "--split", "A1"]) == 2
    assert "no A1/ folder" in capsys.readouterr().err


def test_module_entry_point(dataset):
    done = subprocess.run(
        [sys.executable, "-m", "ndar", "check-data", str(dataset / "A1"), "--labels", str(dataset / "A1")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "drivers 4, sessions 8" in done.stdout


def test_identical_messages_are_grouped_with_a_count(dataset, capsys):
    label_file = dataset / "A1" / "user_id_101" / "user_id_101.csv"
    lines = label_file.read_text().splitlines()
    for i in (2, 3, 6):
        lines[i] = lines[i].replace(f"Class {lines[i].split('Class ')[1].split(',')[0]}", "NA")
    label_file.write_text("\n".join(lines) + "\n")
    assert main(["check-data", str(dataset), "--split", "A1"]) == 0
    out = capsys.readouterr().out
    assert f"WARNING {label_file}:3-4, 7: label 'NA' is NA; row not used (x3)" in out
