"""Synthetic prediction sources with known ground truth, for tests, benchmarks and the notebook.

Each session draws every class 1..15 once in random order with random durations and gaps (like the
real timelines). Each source sees the truth through its own noise: a per-source set of classes it
barely sees (their probability mass goes to a random other class), shifted boundaries, Gaussian
noise on the logits. Different sources are weak on different classes, so fusing them helps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ndar.taxonomy import NUM_CLASSES, SCORED_CLASSES
from ndar.utils.io import atomic_write_text


def synthetic_timeline(rng: np.random.Generator, min_dur=2, max_dur=10, min_gap=3, max_gap=8):
    """[(label, start, end)] covering every class once, and the duration in seconds."""
    t = float(rng.integers(min_gap, max_gap + 1))
    segments = []
    for label in rng.permutation(SCORED_CLASSES):
        duration = float(rng.integers(min_dur, max_dur + 1))
        segments.append((int(label), t, t + duration))
        t += duration + float(rng.integers(min_gap, max_gap + 1))
    return segments, t


def noisy_curve(rng, segments, duration, weak: set[int], noise: float, shift: int) -> np.ndarray:
    """(S, 16) softmax curve seen through one source's noise."""
    seconds = int(np.ceil(duration))
    logits = np.zeros((seconds, NUM_CLASSES))
    logits[:, 0] = 2.0
    for label, start, end in segments:
        offset = int(rng.integers(-shift, shift + 1))
        a, b = max(0, int(start) + offset), min(seconds, int(end) + offset)
        target = int(rng.choice([c for c in SCORED_CLASSES if c != label])) if label in weak else label
        logits[a:b, target] += 4.0
    logits += rng.normal(0.0, noise, size=logits.shape)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def make_sources(n_drivers=4, n_sources=3, n_test_drivers=2, seed=0, noise=1.0, weak_per_source=4):
    """(sources {name: {"oof"/"test": {key: curve}}}, oof ground truth, test ground truth).

    Ground truth: {session key: [(label, start, end)]}; keys "<driver>_<session>", 2 sessions each.
    """
    rng = np.random.default_rng(seed)
    truth = {"oof": {}, "test": {}}
    durations = {}
    for split, drivers in (
        ("oof", range(1001, 1001 + n_drivers)),
        ("test", range(2001, 2001 + n_test_drivers)),
    ):
        for driver in drivers:
            for session in (1, 2):
                segments, duration = synthetic_timeline(rng)
                truth[split][f"{driver}_{session}"] = segments
                durations[f"{driver}_{session}"] = duration
    sources = {}
    for s in range(n_sources):
        weak = set(int(c) for c in rng.choice(SCORED_CLASSES, size=weak_per_source, replace=False))
        sources[f"src{s}"] = {
            split: {
                key: noisy_curve(rng, segs, durations[key], weak, noise, shift=2)
                for key, segs in truth[split].items()
            }
            for split in ("oof", "test")
        }
    return sources, truth["oof"], truth["test"]


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def write_dataset_stub(root: str | Path, oof_truth, test_truth) -> dict[str, int]:
    """A dataset root in the official layout with empty video files, A1 label CSVs (2023/2024
    format), A2/video_ids.csv and A2_ground_truth.txt: enough for `load_dataset` and the ensemble,
    without rendering videos. Returns {A2 session key: video id}."""
    from ndar.submission import write_submission

    root = Path(root)
    views = {"Dashboard": "Dashboard", "Rear_view": "Rearview", "Right_side_window": "Right"}
    header = "Filename,Camera View,Activity Type,Start Time,End Time,Label (Primary),Appearance Block\n"
    by_driver: dict[str, list[str]] = {}
    for split, truth in (("A1", oof_truth), ("A2", test_truth)):
        for key in truth:
            driver, session = key.rsplit("_", 1)
            folder = root / split / f"user_id_{driver}"
            folder.mkdir(parents=True, exist_ok=True)
            for view in views:
                (folder / f"{view}_user_id_{driver}_NoAudio_{session}.MP4").write_bytes(b"")
            if split == "A1":
                rows = by_driver.setdefault(driver, [])
                for view, csv_view in views.items():
                    for i, (label, start, end) in enumerate(sorted(truth[key], key=lambda r: r[1])):
                        name = f"{view}_user_id_{driver}_{session}" if i == 0 else ""
                        rows.append(
                            f"{name},{csv_view},Distracted,{_hms(start)},{_hms(end)},Class {label},None\n"
                        )
    for driver, rows in by_driver.items():
        atomic_write_text(root / "A1" / f"user_id_{driver}" / f"user_id_{driver}.csv", header + "".join(rows))
    ids = {key: i + 1 for i, key in enumerate(sorted(test_truth))}
    lines = ["video_id,video_files1,video_files2,video_files3\n"]
    for key, video_id in ids.items():
        driver, session = key.rsplit("_", 1)
        names = ",".join(f"'{v}_user_id_{driver}_NoAudio_{session}.MP4'" for v in views)
        lines.append(f"{video_id},{names}\n")
    atomic_write_text(root / "A2" / "video_ids.csv", "".join(lines))
    write_submission(
        root / "A2_ground_truth.txt", [(ids[k], *seg) for k, segs in test_truth.items() for seg in segs]
    )
    return ids


def write_source_folders(out: str | Path, sources, threshold: float = 0.3) -> dict[str, Path]:
    """Write each synthetic source as a prediction source folder; returns {name: folder}."""
    from ndar.formats.predictions import segments_frame, write_predictions
    from ndar.postprocess import one_segment_per_class

    folders = {}
    for name, splits in sources.items():
        folder = Path(out) / name
        for split, curves in splits.items():
            segments = segments_frame(
                {k: one_segment_per_class(c, threshold=threshold) for k, c in curves.items()}
            )
            write_predictions(folder, split, curves, segments)
        folders[name] = folder
    return folders
