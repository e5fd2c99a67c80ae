"""Helpers for the data tests: tiny on-disk datasets with empty placeholder videos and hand-written label CSVs."""

from __future__ import annotations

from pathlib import Path

HEADER_2023 = "Filename,Camera View,Activity Type,Start Time,End Time,Label (Primary),Appearance Block"
FILE_VIEWS = {"dashboard": "Dashboard", "rear": "Rear_view", "right": "Right_side_window"}

# (label, start s, end s) of a session timeline; the second session of a driver shifts it by 2 s.
TIMELINE = [(3, 9, 26), (1, 40, 43), (7, 70, 75), (15, 100, 118)]


def fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def label_csv_2023(
    driver: str, sessions: dict[int, list[tuple[int, float, float]]], views=tuple(FILE_VIEWS)
) -> str:
    """A 2023/2024-format label file: Filename only on the first row of each block (no NoAudio)."""
    lines = [HEADER_2023]
    for session, timeline in sessions.items():
        for view in views:
            for i, (label, start, end) in enumerate(timeline):
                name = f"{FILE_VIEWS[view]}_user_id_{driver}_{session}" if i == 0 else ""
                appearance = "None" if session % 2 else "Sunglasses"
                lines.append(
                    f"{name},{FILE_VIEWS[view]},Distracted,{fmt_time(start)},{fmt_time(end)},Class {label},{appearance}"
                )
    return "\n".join(lines) + "\n"


def make_split(
    root: Path,
    split: str,
    drivers: list[str],
    sessions: tuple[int, ...] = (1, 2),
    labels: bool = True,
    views=tuple(FILE_VIEWS),
) -> Path:
    """`root/<split>/user_id_<d>/` with placeholder videos of every view and (optionally) the label CSV."""
    split_dir = root / split
    for driver in drivers:
        folder = split_dir / f"user_id_{driver}"
        folder.mkdir(parents=True, exist_ok=True)
        for session in sessions:
            for view in views:
                (folder / f"{FILE_VIEWS[view]}_user_id_{driver}_NoAudio_{session}.MP4").write_bytes(b"")
        if labels:
            timelines = {s: [(c, a + 2 * (s - 1), b + 2 * (s - 1)) for c, a, b in TIMELINE] for s in sessions}
            (folder / f"user_id_{driver}.csv").write_text(label_csv_2023(driver, timelines, views))
    return split_dir
