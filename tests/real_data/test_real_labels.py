"""Every real label file of the 2022-2024 releases, read by ndar as the organisers meant it.

Each file's segments are compared with an independent reading (`real_files.independent_reading`, a
plain csv-module reader written for these tests); each real defect is an expected error, checked
by row; whole releases are laid out officially beside empty placeholder videos and indexed in both
label layouts, then checked with `check-data` and `prepare`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from real_files import (
    REAL,
    driver_of,
    independent_reading,
    labels_by_driver,
    lay_out,
    needs_real,
    real_files,
    video_names,
)

from ndar.cli import main as cli_main
from ndar.data.config import PrepareConfig
from ndar.data.discover import load_dataset
from ndar.data.labels import read_label_file
from ndar.data.prepare import run as prepare

# The real defects, as errors on these rows (SOURCES.md lists them); nothing else may be an error.
EXPECTED_ERRORS = {
    "labels/2022/parking7907/user_id_79336.csv": [72, 92, 112],  # end before start
    "labels/2023/rongchangli_A1_new_annotation/user_id_83756.csv": [19, 51, 83],  # 0:00:44-0:01:13 overlap
    "labels/2024/skku_default/user_id_25432.csv": [3, 35, 67],  # 00:00:44-00:04:49 spans 7 rows
    "labels/2024/skku_default/user_id_33682.csv": [23, 55, 87],
    "labels/2024/skku_default/user_id_47457.csv": [11, 43, 75],
    "labels/2024/skku_default/user_id_50921.csv": [12, 44, 76],  # 00:00:45-00:04:46 spans 9 rows
    "labels/2024/skku_default/user_id_96269.csv": [19, 23, 25, 51, 55, 57, 83, 87, 89],
    "labels/2024/skku_default/user_id_98389.csv": [49, 81],  # a session-5 row under the session-7 Filename
    "labels/2024/skku_relabel/user_id_47457.csv": [11, 43, 75],
    "labels/2024/skku_relabel/user_id_96269.csv": [23, 55, 87],
    "labels/2024/skku_relabel/user_id_98389.csv": [49, 81],
}


def _segments(rows) -> list[tuple[int, float, float]]:
    return sorted(((r.label, r.start, r.end) for r in rows), key=lambda s: (s[1], s[2], s[0]))


@pytest.mark.parametrize("path", real_files("labels/**/*.csv"))
def test_label_file_parses_to_the_independent_reading(path: Path):
    parsed = read_label_file(path)
    ndar = {
        (v.view, v.session): _segments(r.segment for r in rows) for v, rows in parsed.block_rows().items()
    }
    assert ndar == independent_reading(path)
    errors = sorted(i.row for i in parsed.issues if i.level == "error")
    assert errors == EXPECTED_ERRORS.get(str(path.relative_to(REAL)), [])
    if parsed.fmt == "2022":  # Hair/makeup rows: one warning per file, never an error
        [hair] = [i for i in parsed.issues if "Hair / makeup" in i.reason]
        assert hair.level == "warning" and "not used" in hair.reason


@needs_real
def test_all_154_label_files_are_there():
    assert len(list(REAL.glob("labels/**/*.csv"))) == 154


def _layout_2024(root: Path, release: str, flat: Path | None = None) -> Path:
    """A1 of the 2024 release (414 real video names, labels in driver folders or in `flat`) and A2
    (90 names) with the 2024 video_ids.csv."""
    a1_names = video_names("2024_A1")
    labels = labels_by_driver(REAL / "labels" / "2024" / release, a1_names)
    lay_out(root / "A1", a1_names, {} if flat else labels)
    if flat:
        flat.mkdir(parents=True)
        for path in labels.values():
            (flat / path.name).write_bytes(path.read_bytes())
    lay_out(root / "A2", video_names("2024_A2"), {})
    (root / "A2" / "video_ids.csv").write_bytes(
        (REAL / "video_ids" / "2024_A2_video_ids_skku.csv").read_bytes()
    )
    return root


def _layout_2022(root: Path, release: str = "parking7907") -> Path:
    """A1 and A2 of 2022 (real video names), each driver's label file in its folder, the A2 video_ids.csv.
    cybercore labelled only the A2 drivers: their layout has A2 alone."""
    folder = REAL / "labels" / "2022" / release
    for split in ("A2",) if release.startswith("cybercore") else ("A1", "A2"):
        names = video_names(f"2022_{split}")
        drivers = {driver_of(n) for n in names}
        labels = {driver_of(p.name): p for p in folder.glob("*.csv") if driver_of(p.name) in drivers}
        lay_out(root / split, names, labels)
    (root / "A2" / "video_ids.csv").write_bytes((REAL / "video_ids" / "2022_A2_video_ids.csv").read_bytes())
    return root


def _check_against_independent_reading(index, label_files: dict[str, Path]) -> None:
    """Every video's ground truth equals the independent reading of its driver's file."""
    expected = {}
    for driver, path in label_files.items():
        for (view, session), segments in independent_reading(path).items():
            expected[(driver, session, view)] = segments
    got = {(v.driver, v.session, v.view): _segments(v.segments) for v in index.videos if v.segments}
    assert got == expected


def _expected_error_rows(index) -> list[tuple[str, int]]:
    return sorted((Path(i.file).name, i.row) for i in index.errors)


def _defects(release: str) -> list[tuple[str, int]]:
    return sorted(
        (Path(key).name, row)
        for key, rows in EXPECTED_ERRORS.items()
        if f"/{release}/" in key
        for row in rows
    )


@pytest.mark.slow
@needs_real
@pytest.mark.parametrize("release", ["skku_default", "skku_relabel"])
def test_2024_release_reads_the_same_in_both_layouts(tmp_path, release):
    nested = load_dataset(_layout_2024(tmp_path / "nested", release), "A1")
    flat = load_dataset(
        _layout_2024(tmp_path / "flat", release, flat=tmp_path / "labels"),
        "A1",
        labels_dir=tmp_path / "labels",
    )
    labels = labels_by_driver(REAL / "labels" / "2024" / release, video_names("2024_A1"))
    for index in (nested, flat):
        assert len(index.drivers) == 69 and len(index.videos) == 414
        _check_against_independent_reading(index, labels)
        assert _expected_error_rows(index) == _defects(release)
        assert all(v.segments for v in index.videos)  # every video has its labels
    assert [(s.key, _segments(s.segments)) for s in nested.sessions] == [
        (s.key, _segments(s.segments)) for s in flat.sessions
    ]
    if release == "skku_default":
        warnings = " | ".join(i.reason for i in nested.warnings)
        assert "Filenames name driver 98389, but this is driver 93439's label file" in warnings
        assert "lacks 'user_'" in warnings and "Camera View is taken" in warnings
        assert "79775" in " | ".join(f"{i.file} {i.reason}" for i in flat.warnings)


@needs_real
def test_2022_layout_reads_every_driver_and_check_data_reports_only_the_real_defects(tmp_path, capsys):
    root = _layout_2022(tmp_path)
    index = load_dataset(root, "A1")
    assert index.drivers == ["24026", "24491", "35133", "38058", "49381"]
    labels = {
        d: p for d, p in ((driver_of(p.name), p) for p in (REAL / "labels/2022/parking7907").glob("*.csv"))
    }
    _check_against_independent_reading(index, {d: labels[d] for d in index.drivers})
    a2 = load_dataset(root, "A2")
    _check_against_independent_reading(a2, {d: labels[d] for d in a2.drivers})
    assert {s.video_id for s in a2.sessions} == set(range(1, 11))
    assert cli_main(["check-data", str(root)]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 3 error(s)" in out  # 79336 rows 72, 92, 112 end before they start
    # the same defect in the three views' blocks: one line, counted
    assert (
        out.count("ERROR ") == 1
        and "user_id_79336.csv:72, 92, 112: end 265s is before start 267s (x3)" in out
    )
    assert "6 row(s) of 2022 class 7 (Hair / makeup) not used" in out


def _drop_rows(path: Path, rows: list[int]) -> None:
    """Account for a file's real defects: the rows reported as errors are removed from the copy."""
    lines = path.read_bytes().decode("utf-8-sig").splitlines(keepends=True)
    path.write_text("".join(line for number, line in enumerate(lines, start=1) if number not in rows))


@needs_real
@pytest.mark.parametrize(
    "release", ["parking7907", "cybercore_A2_local_labels", "skku_default", "skku_relabel"]
)
def test_check_data_exits_0_once_the_real_defects_are_removed(tmp_path, release, capsys):
    root = _layout_2024(tmp_path, release) if release.startswith("skku") else _layout_2022(tmp_path, release)
    for key, rows in EXPECTED_ERRORS.items():
        if f"/{release}/" in key:
            [copy] = list(root.rglob(Path(key).name))
            _drop_rows(copy, rows)
    assert cli_main(["check-data", str(root)]) == 0, capsys.readouterr().out


@needs_real
def test_2023_file_reads_like_the_independent_reading(tmp_path):
    path = REAL / "labels/2023/rongchangli_A1_new_annotation/user_id_83756.csv"
    filenames = {
        row[0].strip() for row in csv.reader(io.StringIO(path.read_text())) if "id_" in row[0].lower()
    }
    names = sorted(re.sub(r"(?i)_user_id_83756_", "_user_id_83756_NoAudio_", name) for name in filenames)
    lay_out(tmp_path / "A1", names, {"83756": path})
    index = load_dataset(tmp_path, "A1")
    _check_against_independent_reading(index, {"83756": path})
    assert _expected_error_rows(index) == [("user_id_83756.csv", r) for r in (19, 51, 83)]


@pytest.mark.slow
@needs_real
@pytest.mark.parametrize("year", ["2022", "2024"])
def test_prepare_works_on_the_real_layouts(tmp_path, year):
    root = (
        _layout_2022(tmp_path / "data") if year == "2022" else _layout_2024(tmp_path / "data", "skku_relabel")
    )
    out = prepare(PrepareConfig(root=root, out=tmp_path / "out", probe=False))
    folds = json.loads((out / "folds.json").read_text())
    assert len(folds["drivers"]) == (5 if year == "2022" else 69)  # the A1 drivers: k=5 needs 5
    index = load_dataset(root, "A1")
    for view in ("dashboard", "rear", "right"):
        clips = (out / f"clips_{view}.csv").read_text().splitlines()
        activities = sum(1 for v in index.videos if v.view == view for s in v.segments if s.label != 0)
        assert sum(1 for line in clips[1:] if line.split(",")[4] != "0") == activities > 0
