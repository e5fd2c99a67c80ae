"""`python -m ndar prepare`: index the dataset, split drivers into folds, write clip samples per view.

Outputs (each written atomically) in `out/`:
- `videos.csv`    one row per video file (both splits with split=all), with fold, duration, fps, frames
- `sessions.csv`  one row per session: views present, video id (A2), number of ground-truth segments
- `segments.csv`  the ground truth of each A1 session (dashboard labels, see `ndar.data.discover`)
- `folds.json`    {"k", "seed", "drivers": {driver: fold}} (A1 drivers)
- `clips_<view>.csv` the fine-tuning samples of each view (`ndar.data.clips.COLUMNS`)
- `issues.json`   every problem found (level, file, row, reason), `summary.json` counts, `config.yaml`
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import pandas as pd

from ndar import taxonomy
from ndar.config import ConfigError, load_config, save_config
from ndar.data.cli import splits_to_load, summarise
from ndar.data.clips import build_clip_samples
from ndar.data.config import PrepareConfig
from ndar.data.discover import DatasetIndex, load_dataset
from ndar.data.folds import assign_folds, write_folds
from ndar.data.video_check import VideoCheck, check_index_videos, usable_for_clips
from ndar.utils.io import atomic_path, write_json
from ndar.utils.logging import setup_logging
from ndar.utils.progress import progress as tqdm

log = logging.getLogger(__name__)


def _check_all(
    indexes: list[DatasetIndex], full: bool
) -> tuple[dict[str, dict[str, float]], dict[str, VideoCheck]]:
    """Open every video (`ndar.data.video_check`): the header facts of each readable one (path ->
    duration, fps, frames) and every result; problems go to the indexes' issues."""
    probed: dict[str, dict[str, float]] = {}
    results: dict[str, VideoCheck] = {}
    for index in indexes:
        found = check_index_videos(
            index, full=full, progress=lambda v: tqdm(v, desc="check videos", unit="video", leave=False)
        )
        results.update(found)
        for path, result in found.items():
            if result.info is not None:
                info = result.info
                probed[path] = {"duration": info.duration, "fps": info.fps, "frames": float(info.num_frames)}
    return probed, results


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _video_table(indexes: list[DatasetIndex], folds: dict[str, int], probed: dict) -> pd.DataFrame:
    ids = {(s.split, s.key): s.video_id for i in indexes for s in i.sessions}
    rows = []
    for index in indexes:
        for v in index.videos:
            meta = probed.get(str(v.path), {})
            rows.append(
                {
                    "split": v.split,
                    "session_key": v.session_key,
                    "driver": v.driver,
                    "session": v.session,
                    "view": v.view,
                    "path": str(v.path.resolve()),
                    "stem": v.stem,
                    "appearance": v.appearance or "",
                    "n_segments": len(v.segments),
                    "fold": folds.get(v.driver, -1) if v.split == "A1" else -1,
                    "video_id": ids.get((v.split, v.session_key)),
                    "duration": meta.get("duration", math.nan),
                    "fps": meta.get("fps", math.nan),
                    "frames": meta.get("frames", math.nan),
                }
            )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["video_id"] = frame["video_id"].astype("Int64")
    return frame


def _session_tables(indexes: list[DatasetIndex], folds: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    sessions, segments = [], []
    for index in indexes:
        for s in index.sessions:
            sessions.append(
                {
                    "split": s.split,
                    "session_key": s.key,
                    "driver": s.driver,
                    "session": s.session,
                    "video_id": s.video_id,
                    "views": ";".join(v for v in taxonomy.VIEWS if v in s.views),
                    "n_segments": len(s.segments),
                    "fold": folds.get(s.driver, -1) if s.split == "A1" else -1,
                }
            )
            for seg in s.segments:
                segments.append(
                    {
                        "split": s.split,
                        "session_key": s.key,
                        "label": seg.label,
                        "start": seg.start,
                        "end": seg.end,
                    }
                )
    session_frame = pd.DataFrame(sessions)
    if not session_frame.empty:
        session_frame["video_id"] = session_frame["video_id"].astype("Int64")
    segment_frame = pd.DataFrame(segments, columns=["split", "session_key", "label", "start", "end"])
    return session_frame, segment_frame


def run(cfg: PrepareConfig) -> Path:
    """Index, fold and sample; returns the output folder."""
    if cfg.split not in ("A1", "A2", "all"):
        raise ValueError(f"split must be 'A1', 'A2' or 'all', got {cfg.split!r}")
    views = [taxonomy.canonical_view(v) for v in cfg.views]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = splits_to_load(str(cfg.root), cfg.split)
    if not splits:
        raise FileNotFoundError(f"no A1/ or A2/ folder (or user_id_* folders) found under {cfg.root}")
    indexes = [load_dataset(cfg.root, split, labels_dir=cfg.labels_dir) for split in splits]
    probed, results = _check_all(indexes, full=cfg.check_videos) if cfg.probe else ({}, {})
    issues = [issue for index in indexes for issue in index.issues]
    n_errors = sum(1 for i in issues if i.level == "error")
    if n_errors:
        log.warning(
            "%d data error(s) found; see %s (run `python -m ndar check-data` for the report)",
            n_errors,
            out / "issues.json",
        )
        if cfg.strict:
            write_json(out / "issues.json", [i.to_dict() for i in issues])
            raise ValueError(f"{n_errors} data error(s) with strict=true; see {out / 'issues.json'}")

    train = next((i for i in indexes if i.split == "A1"), None)
    labelled = [v for v in train.videos if v.segments] if train else []
    folds: dict[str, int] = {}
    if labelled:
        # folds from every labelled driver, so a broken video does not reshuffle the others' folds
        folds = assign_folds(sorted({v.driver for v in labelled}), cfg.k, cfg.seed)
        write_folds(out / "folds.json", folds, cfg.k, cfg.seed)
        durations = {
            path: meta["duration"] for path, meta in probed.items() if not math.isnan(meta["duration"])
        }
        for view in views:
            clips = build_clip_samples(
                usable_for_clips(labelled, results),
                view,
                folds,
                background_per_video=cfg.background_per_video,
                min_seconds=cfg.min_seconds,
                seed=cfg.seed,
                background_seconds=cfg.background_seconds,
                margin=cfg.margin,
                min_activity_seconds=cfg.min_activity_seconds,
                durations=durations,
            )
            clips["path"] = [str(Path(p).resolve()) for p in clips["path"]]
            _write_csv(clips, out / f"clips_{view}.csv")
            log.info(
                "clips_%s.csv: %d samples (%d class 0)", view, len(clips), int((clips["label"] == 0).sum())
            )
    else:
        log.warning("no labelled A1 videos: folds.json and clips_<view>.csv are not written")

    _write_csv(_video_table(indexes, folds, probed), out / "videos.csv")
    sessions, segments = _session_tables(indexes, folds)
    _write_csv(sessions, out / "sessions.csv")
    _write_csv(segments, out / "segments.csv")
    write_json(out / "issues.json", [i.to_dict() for i in issues])
    summary = {
        "splits": [summarise(i) for i in indexes],
        "issues": {"errors": n_errors, "total": len(issues)},
    }
    write_json(out / "summary.json", summary)
    save_config(cfg, out / "config.yaml")
    log.info("prepare: wrote %s", out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=None, help="YAML file of PrepareConfig (e.g. configs/prepare/default.yaml)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="dotted key=value overrides, e.g. root=data/synthetic k=3"
    )


def main(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(PrepareConfig, args.config, args.overrides)
    except ConfigError as err:
        print(f"prepare: {err}", file=sys.stderr)
        return 2
    setup_logging(Path(cfg.out) / "prepare.log")
    try:
        run(cfg)
    except (FileNotFoundError, ValueError) as err:  # a data problem: say what, not a traceback
        log.error("prepare failed: %s", err)
        return 1
    return 0
