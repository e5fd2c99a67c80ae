"""Find the videos, labels and video ids of one split (A1 or A2) and report every problem.

`load_dataset(root, split)` accepts the folder holding `A1/` and `A2/` or the split folder itself.
Videos are found by their names anywhere below the split folder (normally `user_id_<d>/`), label
files `user_id_<d>.csv` in the driver folders or in a separate labels folder, and `video_ids.csv`
in the split folder, the labels folder or the root. Label `Filename`s are matched to real files by
(view, driver, session), since they lack `NoAudio` and spell views and case differently.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ndar import taxonomy
from ndar.data.labels import LabelFile, VideoName, format_rows, parse_video_name, read_label_file
from ndar.data.records import Issue, SessionRecord, VideoRecord
from ndar.data.video_ids import read_video_ids_with_issues

log = logging.getLogger(__name__)

# 'user_id_24491.csv' and the spellings releases really use: the 2022 release names one file
# 'user id_24491.csv' (a space); 'User_ID_', 'userid_' and 'user-id_' are accepted alike.
LABEL_FILE_RE = re.compile(r"^user[ _-]?id[ _-]?(\d+)\.csv$", re.IGNORECASE)
DRIVER_DIR_RE = re.compile(r"^user[ _-]?id[ _-]?(\d+)$", re.IGNORECASE)
VIDEO_IDS_RE = re.compile(r"^video_ids?.*\.csv$", re.IGNORECASE)
SPLIT_NAME_RE = re.compile(r"^a\d$", re.IGNORECASE)


@dataclass
class DatasetIndex:
    """Everything found in one split: videos, sessions (views grouped) and the problems."""

    root: Path  # the split folder
    split: str
    videos: list[VideoRecord] = field(default_factory=list)
    sessions: list[SessionRecord] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def drivers(self) -> list[str]:
        return sorted({v.driver for v in self.videos}, key=_driver_order)

    def session(self, key: str) -> SessionRecord:
        for session in self.sessions:
            if session.key == key:
                return session
        raise KeyError(f"no session {key!r} in {self.root} ({len(self.sessions)} sessions)")


def _driver_order(driver: str) -> tuple[int, str]:
    return (int(driver), driver) if driver.isdigit() else (1 << 62, driver)


def _video_order(video: VideoRecord) -> tuple:
    return (_driver_order(video.driver), video.session, taxonomy.VIEWS.index(video.view))


def _child_dir(folder: Path, name: str) -> Path | None:
    """`folder/name` matched case-insensitively (A1 vs a1)."""
    if not folder.is_dir():
        return None
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.lower() == name.lower():
            return child
    return None


def find_split_dir(root: str | Path, split: str) -> Path:
    """The split folder: `root/<split>` if it exists, else `root` itself when it looks like a split folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a folder")
    child = _child_dir(root, split)
    if child is not None:
        return child
    if root.name.lower() == split.lower():
        return root
    if SPLIT_NAME_RE.match(root.name):
        raise FileNotFoundError(f"{root} is the {root.name} folder, but split {split!r} was asked for")
    has_data = any(DRIVER_DIR_RE.match(c.name) for c in root.iterdir() if c.is_dir()) or any(
        c.suffix.lower() == ".mp4" for c in root.iterdir() if c.is_file()
    )
    if has_data:
        return root
    found = sorted(c.name for c in root.iterdir() if c.is_dir())
    raise FileNotFoundError(
        f"no {split}/ folder under {root} and no user_id_* folders in it; sub-folders found: {found}"
    )


def _walk_files(folder: Path) -> list[Path]:
    """Every file under `folder`, sorted. Symlinked folders are followed (teams link driver folders
    into a split, e.g. to hold drivers out; `os.walk` alone would drop them without a word), each
    real folder once, so a link to a folder above cannot loop."""
    files = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames.clear()
            continue
        seen.add(real)
        dirnames.sort()
        files.extend(Path(dirpath) / f for f in sorted(filenames))
    return files


def _scan_videos(split_dir: Path, split: str, issues: list[Issue]) -> dict[VideoName, VideoRecord]:
    videos: dict[VideoName, VideoRecord] = {}
    for path in _walk_files(split_dir):
        if path.suffix.lower() != ".mp4" or path.name.startswith("."):
            continue
        try:
            name = parse_video_name(path.name)
        except ValueError as err:
            issues.append(Issue("warning", str(path), None, f"video not used: {err}"))
            continue
        folder = DRIVER_DIR_RE.match(path.parent.name)
        if folder and str(int(folder.group(1))) != name.driver:
            reason = f"video of driver {name.driver} lies in the folder of driver {folder.group(1)}"
            issues.append(Issue("warning", str(path), None, reason))
        if name in videos:
            reason = f"second file for {name.view} view of session {name.driver}_{name.session} (first: {videos[name].path}); not used"
            issues.append(Issue("error", str(path), None, reason))
            continue
        videos[name] = VideoRecord(
            driver=name.driver, session=name.session, view=name.view, path=path, split=split
        )
    if not videos:
        issues.append(
            Issue("error", str(split_dir), None, "no video files (<View>_user_id_<d>_NoAudio_<n>.MP4) found")
        )
    return videos


def _label_search_dir(split_dir: Path, split: str, labels_dir: Path | None) -> Path:
    if labels_dir is None:
        return split_dir
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"labels folder {labels_dir} does not exist")
    return _child_dir(labels_dir, split) or labels_dir


def _find_label_files(search_dir: Path, issues: list[Issue]) -> dict[str, Path]:
    """driver -> label file; other CSVs in driver folders are reported (they may be misnamed labels).

    A file inside a driver's folder labels that driver, whatever its name says (the 2024 release
    keeps `user_id_79775.csv` in the folder of driver 79755, whose videos it labels); elsewhere the
    file name gives the driver.
    """
    found: dict[str, Path] = {}
    for path in _walk_files(search_dir):
        if path.suffix.lower() != ".csv" or path.name.startswith("."):
            continue
        match = LABEL_FILE_RE.match(path.name)
        folder = DRIVER_DIR_RE.match(path.parent.name)
        if not match:
            if not VIDEO_IDS_RE.match(path.name) and folder:
                issues.append(
                    Issue("warning", str(path), None, "CSV not named user_id_<driver>.csv; not read")
                )
            continue
        driver = str(int(match.group(1)))
        if folder and str(int(folder.group(1))) != driver:
            folder_driver = str(int(folder.group(1)))
            reason = (
                f"file named for driver {driver} lies in the folder of driver {folder_driver}: "
                f"read as driver {folder_driver}'s labels"
            )
            issues.append(Issue("warning", str(path), None, reason))
            driver = folder_driver
        if driver in found:
            reason = f"second label file for driver {driver} (first: {found[driver]}); not read"
            issues.append(Issue("error", str(path), None, reason))
            continue
        found[driver] = path
    return found


def _adopt_misnamed_files(
    foreign: dict[str, Path],
    label_files: dict[str, Path],
    drivers: set[str],
    parsed: dict[Path, LabelFile],
    issues: list[Issue],
) -> None:
    """In a flat labels folder, a file named for a driver without videos whose Filenames all name one
    driver that has videos and no label file of its own labels that driver (the 2024 release's
    `user_id_79775.csv` labels driver 79755): read the same as inside the driver's folder."""
    for named_driver, path in foreign.items():
        label_file = parsed.setdefault(path, read_label_file(path))
        named = {row.video.driver for row in label_file.rows}
        if len(named) != 1:
            continue
        driver = named.pop()
        if driver in drivers and driver not in label_files:
            reason = (
                f"file named for driver {named_driver}, who has no videos here, labels only driver {driver}'s "
                f"videos, and {driver} has no label file of its own: read as driver {driver}'s labels"
            )
            issues.append(Issue("warning", str(path), None, reason))
            del label_files[named_driver]
            label_files[driver] = path


def _expected_name(name: VideoName) -> str:
    return f"{taxonomy.VIEW_FILE_PREFIX[name.view]}_user_id_{name.driver}_NoAudio_{name.session}.MP4"


def _attach_labels(
    label_file: LabelFile,
    driver: str,
    videos: dict[VideoName, VideoRecord],
    labelled: dict,
    issues: list[Issue],
) -> None:
    """Give each video of `driver` the segments of its block; report blocks whose video is not on disk.

    The file labels `driver`'s videos (its folder or name says so): a Filename naming another driver
    is taken as a slip (the 2024 release's user_id_93439.csv names driver 98389 on every row) and
    its rows go to `driver`'s video of the same view and session, with one warning per file.
    """
    file = str(label_file.path)
    stray: dict[str, list[int]] = {}
    for name, rows in label_file.block_rows().items():
        first = rows[0]
        if name.driver != driver:
            stray.setdefault(name.driver, []).extend(r.row for r in rows)
            name = VideoName(view=name.view, driver=driver, session=name.session)
        video = videos.get(name)
        if video is None:
            reason = (
                f"video {first.filename!r} named in labels ({len(rows)} rows) not found on disk "
                f"(expected e.g. {_expected_name(name)})"
            )
            issues.append(Issue("error", file, first.row, reason))
            continue
        if name in labelled:
            reason = f"video {first.filename!r} is labelled again (first in {labelled[name]}); rows not used"
            issues.append(Issue("error", file, first.row, reason))
            continue
        labelled[name] = file
        video.segments = sorted((r.segment for r in rows), key=lambda s: (s.start, s.end))
        video.appearance = next((r.appearance for r in rows if r.appearance), None)
    for other, rows in stray.items():
        reason = (
            f"{format_rows(rows)}: Filenames name driver {other}, but this is driver {driver}'s label file: "
            f"rows used for driver {driver}'s videos of the same view and session"
        )
        issues.append(Issue("warning", file, min(rows), reason))


def _describe_difference(a: list, b: list) -> tuple[str, str]:
    """What differs between two views' segments, and the 'file:row' of the first differing one in `b`."""
    for x, y in zip(a, b):
        if (x.label, x.start, x.end) != (y.label, y.start, y.end):
            text = f"first difference: class {y.label} {y.start:g}-{y.end:g}s vs class {x.label} {x.start:g}-{x.end:g}s"
            return text, y.source
    if len(b) > len(a):
        extra = b[len(a)]
        return (
            f"{len(b)} segments vs {len(a)}: extra from class {extra.label} {extra.start:g}s on",
            extra.source,
        )
    if len(b) < len(a):
        missing = a[len(b)]
        text = f"{len(b)} segments vs {len(a)}: none from class {missing.label} {missing.start:g}s on, after this row"
        return text, b[-1].source
    return "same segments", b[0].source


def _build_sessions(
    videos: list[VideoRecord], split: str, labels_expected: bool, issues: list[Issue]
) -> list[SessionRecord]:
    sessions: dict[tuple[str, int], SessionRecord] = {}
    for video in videos:
        key = (video.driver, video.session)
        session = sessions.setdefault(
            key, SessionRecord(driver=video.driver, session=video.session, split=split)
        )
        session.views[video.view] = video
    for session in sessions.values():
        missing = [v for v in taxonomy.VIEWS if v not in session.views]
        if missing:
            folder = str(next(iter(session.views.values())).path.parent)
            issues.append(
                Issue("warning", folder, None, f"session {session.key} has no {', '.join(missing)} video")
            )
        labelled = [
            session.views[v] for v in taxonomy.VIEWS if v in session.views and session.views[v].segments
        ]
        if not labelled:
            if labels_expected:
                folder = str(next(iter(session.views.values())).path.parent)
                issues.append(Issue("warning", folder, None, f"session {session.key} has no labelled view"))
            continue
        truth = labelled[0]  # dashboard first (VIEWS order), else the first labelled view
        session.segments = list(truth.segments)
        reference = [(s.label, s.start, s.end) for s in truth.segments]
        for other in labelled[1:]:
            if [(s.label, s.start, s.end) for s in other.segments] != reference:
                difference, source = _describe_difference(truth.segments, other.segments)
                reason = (
                    f"labels of the {other.view} view differ from the {truth.view} view used as ground truth of "
                    f"session {session.key}: {difference}"
                )
                file, row = source.rsplit(":", 1)
                issues.append(Issue("warning", file, int(row), reason))
    return sorted(sessions.values(), key=lambda s: (_driver_order(s.driver), s.session))


def _find_video_ids_file(split_dir: Path, root: Path, labels_dir: Path | None, split: str) -> Path | None:
    """In the split folder; for test splits also beside it (root or labels folder, top level)."""
    candidates = [p for p in _walk_files(split_dir) if VIDEO_IDS_RE.match(p.name)]
    for folder in (labels_dir, root) if split != "A1" else ():
        if folder is not None and Path(folder).is_dir() and Path(folder) != split_dir:
            candidates += [
                p for p in sorted(Path(folder).iterdir()) if p.is_file() and VIDEO_IDS_RE.match(p.name)
            ]
            sub = _child_dir(Path(folder), split_dir.name)
            if sub is not None and sub != split_dir:
                candidates += [p for p in sorted(sub.iterdir()) if p.is_file() and VIDEO_IDS_RE.match(p.name)]
    return candidates[0] if candidates else None


def _assign_video_ids(path: Path, sessions: list[SessionRecord], issues: list[Issue]) -> None:
    ids, id_issues = read_video_ids_with_issues(path)
    issues.extend(id_issues)
    by_key = {(s.driver, s.session): s for s in sessions}
    for video_id, views in ids.items():
        names = {parse_video_name(f) for f in views.values()}
        keys = {(n.driver, n.session) for n in names}
        if len(keys) != 1:
            issues.append(
                Issue(
                    "error",
                    str(path),
                    None,
                    f"video id {video_id} names files of different sessions: {sorted(views.values())}",
                )
            )
            continue
        key = keys.pop()
        session = by_key.get(key)
        if session is None:
            issues.append(
                Issue(
                    "error",
                    str(path),
                    None,
                    f"video id {video_id} names session {key[0]}_{key[1]}, which is not on disk",
                )
            )
            continue
        if session.video_id is not None:
            issues.append(
                Issue(
                    "error",
                    str(path),
                    None,
                    f"session {session.key} has two video ids: {session.video_id}, {video_id}",
                )
            )
            continue
        session.video_id = video_id
        for view in views:
            if view not in session.views:
                reason = f"video id {video_id} names a {view} file ({views[view]}) that is not on disk"
                issues.append(Issue("error", str(path), None, reason))
    for session in sessions:
        if session.video_id is None:
            issues.append(Issue("warning", str(path), None, f"session {session.key} has no video id"))


def load_dataset(root: str | Path, split: str = "A1", labels_dir: str | Path | None = None) -> DatasetIndex:
    """Index one split. Raises only when the folders themselves are missing; data problems go to `.issues`."""
    root = Path(root)
    split_dir = find_split_dir(root, split)
    split_name = split.upper()
    issues: list[Issue] = []
    found = _scan_videos(split_dir, split_name, issues)

    label_dir = _label_search_dir(split_dir, split, Path(labels_dir) if labels_dir else None)
    label_files = _find_label_files(label_dir, issues)
    drivers = {name.driver for name in found}
    parsed: dict[Path, LabelFile] = {}
    orphans = {d: p for d, p in label_files.items() if d not in drivers}
    _adopt_misnamed_files(orphans, label_files, drivers, parsed, issues)
    if labels_dir is not None and _child_dir(Path(labels_dir), split) is None:
        # a flat labels folder is shared by the splits: read only the files of this split's drivers
        foreign = sorted((d for d in label_files if d not in drivers), key=_driver_order)
        if foreign:
            reason = (
                f"label files of {len(foreign)} driver(s) without videos in {split_name} not read: {foreign}"
            )
            issues.append(Issue("warning", str(label_dir), None, reason))
        label_files = {d: p for d, p in label_files.items() if d in drivers}
    labels_expected = split_name == "A1" or bool(label_files)
    if split_name == "A1" and not label_files:
        issues.append(Issue("error", str(label_dir), None, "no label files (user_id_<driver>.csv) found"))
    labelled: dict[VideoName, str] = {}
    for driver, path in sorted(label_files.items(), key=lambda kv: _driver_order(kv[0])):
        label_file = parsed.get(path) or read_label_file(path)
        issues.extend(label_file.issues)
        _attach_labels(label_file, driver, found, labelled, issues)

    videos = sorted(found.values(), key=_video_order)
    if labels_expected:
        drivers_with_file = set(label_files)
        for video in videos:
            if video.segments:
                continue
            if video.driver not in drivers_with_file:
                reason = f"no label file user_id_{video.driver}.csv for this video"
            else:
                reason = f"no label rows for this video in user_id_{video.driver}.csv"
            issues.append(Issue("warning", str(video.path), None, reason))

    sessions = _build_sessions(videos, split_name, labels_expected, issues)
    ids_file = _find_video_ids_file(split_dir, root, Path(labels_dir) if labels_dir else None, split_name)
    if ids_file is not None:
        _assign_video_ids(ids_file, sessions, issues)
    elif split_name != "A1":
        issues.append(
            Issue("warning", str(split_dir), None, "no video_ids.csv found: submissions need the video ids")
        )

    index = DatasetIndex(root=split_dir, split=split_name, videos=videos, sessions=sessions, issues=issues)
    log.info(
        "%s: %d videos, %d sessions, %d drivers, %d errors, %d warnings",
        split_dir,
        len(videos),
        len(sessions),
        len(index.drivers),
        len(index.errors),
        len(index.warnings),
    )
    return index
