"""`generate(cfg)`: plan drivers and sessions, render every video, write labels and metadata.

Planning is sequential and cheap (one seeded generator); rendering runs one session per task in a
process pool. Every random choice of a session is seeded from (seed, driver, session, view), never
from the order in which workers finish, so the same settings give the same bytes.
"""

from __future__ import annotations

import csv
import io
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ndar import __version__, taxonomy
from ndar.config import to_dict
from ndar.resume import should_skip
from ndar.synth.body import animate, make_driver
from ndar.synth.config import SynthConfig
from ndar.synth.encode import write_video
from ndar.synth.render import make_look, render_view
from ndar.synth.timeline import Timeline, make_timeline, perturb_timeline
from ndar.utils.io import atomic_write_text, read_json, write_json
from ndar.utils.progress import progress as tqdm

log = logging.getLogger(__name__)

# 2: label CSVs spelled as the 2023/2024 releases (views, Activity Type, one Class 0 row, `User`)
GENERATOR_VERSION = 2
CSV_HEADER = [
    "Filename",
    "Camera View",
    "Activity Type",
    "Start Time",
    "End Time",
    "Label (Primary)",
    "Appearance Block",
]
STARTED_NAME = "synth.started.json"  # the settings of a run still rendering (or killed while it did)
# The Camera View and Activity Type cells as the 2024 release writes them (2,169 of its 2,201 rear
# rows say "Rearview"; every row says "Distracted Behavior", whatever the class)
CSV_VIEW_NAME = {"dashboard": "Dashboard", "rear": "Rearview", "right": "Rightside Window"}
CSV_ACTIVITY_TYPE = "Distracted Behavior"


@dataclass(frozen=True)
class SessionPlan:
    """One recording session to render: who, which split, which timeline, which look."""

    split: str
    driver: str
    session: int
    appearance: str
    timeline: Timeline
    video_id: int | None  # A2 only


def video_name(view: str, driver: str, session: int) -> str:
    """Official file name, e.g. 'Rear_view_user_id_12345_NoAudio_3.MP4'."""
    return f"{taxonomy.VIEW_FILE_PREFIX[view]}_user_id_{driver}_NoAudio_{session}.MP4"


def label_filename(view: str, driver: str, session: int) -> str:
    """How the label CSV names a video: no 'NoAudio', no extension, and the dashboard's `User` in
    capitals, as in the 2023 file and part of the 2024 release (the video file says `user`)."""
    user = "User" if view == "dashboard" else "user"
    return f"{taxonomy.VIEW_FILE_PREFIX[view]}_{user}_id_{driver}_{session}"


def format_time(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def plan_sessions(cfg: SynthConfig) -> list[SessionPlan]:
    """Driver ids, session numbers, appearance blocks and timelines for every session."""
    rng = np.random.default_rng(cfg.seed)
    n_train, n_test = cfg.drivers, cfg.n_test_drivers
    ids = rng.choice(np.arange(10000, 100000), size=n_train + n_test, replace=False)
    plans: list[SessionPlan] = []
    video_id = 1
    for index, driver_id in enumerate(ids.tolist()):
        split = "A1" if index < n_train else "A2"
        numbers = sorted(int(v) for v in rng.choice(np.arange(1, 10), size=2, replace=False))
        base = make_timeline(rng, cfg.time_scale, cfg.min_activity_s, cfg.min_gap_s)
        second = perturb_timeline(
            rng, base, max(1, int(round(2 * cfg.time_scale))), cfg.min_activity_s, cfg.min_gap_s
        )
        block = str(rng.choice(["Hat", "Sunglasses"]))
        for number, timeline, appearance in ((numbers[0], base, "None"), (numbers[1], second, block)):
            vid = video_id if split == "A2" else None
            video_id += split == "A2"
            plans.append(SessionPlan(split, str(driver_id), number, appearance, timeline, vid))
    return plans


def _session_rng(cfg: SynthConfig, plan: SessionPlan, *extra: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, int(plan.driver), *extra]))


def render_session(cfg: SynthConfig, plan: SessionPlan, resume: bool = False) -> dict:
    """Render and encode every view of one session (one worker task); returns its frame count.

    With `resume` (an unfinished run of the same settings), a video already in place is kept: it
    was renamed there only once complete, and the same settings give the same bytes."""
    driver = make_driver(_session_rng(cfg, plan, 0), (cfg.amp_low, cfg.amp_high))
    rng = _session_rng(cfg, plan, plan.session, 1)
    activities = [(a.label, a.start, a.end) for a in plan.timeline.activities]
    pose = animate(rng, driver, activities, plan.timeline.duration, cfg.fps, cfg.distractor_rate)
    difficulty = {
        "noise": cfg.noise,
        "lighting": cfg.lighting,
        "occlusion_rate": cfg.occlusion_rate,
        "camera_jitter": cfg.camera_jitter,
        "shake_px": cfg.shake_px,
    }
    look = make_look(_session_rng(cfg, plan, 0, 2), plan.appearance, difficulty)
    folder = Path(cfg.out) / plan.split / f"user_id_{plan.driver}"
    frames = 0
    for view in cfg.views:
        path = folder / video_name(view, plan.driver, plan.session)
        if resume and path.is_file():
            frames = int(round(plan.timeline.duration * cfg.fps))  # as `animate` counts them
            continue
        view_rng = _session_rng(cfg, plan, plan.session, 3, taxonomy.VIEWS.index(view))
        images = render_view(view_rng, view, driver, look, pose, cfg.fps, cfg.width, cfg.height)
        frames = write_video(path, images, cfg.fps, cfg.width, cfg.height, cfg.crf, cfg.gop, cfg.preset)
    return {"driver": plan.driver, "session": plan.session, "frames": frames}


def label_csv_text(plans: list[SessionPlan], views: list[str]) -> str:
    """One driver's label file in the 2023/2024 format (Filename only on a video's first row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for plan in sorted(plans, key=lambda p: p.session):
        for view in views:
            for row, act in enumerate(labelled_pieces(plan.timeline)):
                writer.writerow(
                    [
                        label_filename(view, plan.driver, plan.session) if row == 0 else "",
                        CSV_VIEW_NAME[view],
                        CSV_ACTIVITY_TYPE,
                        format_time(act.start),
                        format_time(act.end),
                        f"Class {act.label}",
                        plan.appearance,
                    ]
                )
    return buffer.getvalue()


def labelled_pieces(timeline: Timeline) -> list:
    """The activities and one Class 0 row, its longest stretch of normal driving (the earliest of
    equals), in time order. Why one: the releases label normal driving once per video, as a staged
    activity of its own, and leave the other gaps unlabelled; readers take background from the gaps."""
    normal = [p for p in timeline.with_background() if p.label == taxonomy.BACKGROUND]
    pieces = list(timeline.activities)
    if normal:
        pieces.append(max(normal, key=lambda p: (p.end - p.start, -p.start)))
    return sorted(pieces, key=lambda p: p.start)


def video_ids_text(plans: list[SessionPlan], views: list[str]) -> str:
    """A2/video_ids.csv in the 2024 form, file names in single quotes."""
    lines = ["video_id," + ",".join(f"video_files{i + 1}" for i in range(len(views)))]
    for plan in sorted((p for p in plans if p.video_id is not None), key=lambda p: p.video_id):
        names = [f"'{video_name(v, plan.driver, plan.session)}'" for v in views]
        lines.append(f"{plan.video_id}," + ",".join(names))
    return "\n".join(lines) + "\n"


def ground_truth_rows(plans: list[SessionPlan]) -> list[tuple[int, int, int, int]]:
    return [
        (plan.video_id, act.label, act.start, act.end)
        for plan in plans
        if plan.video_id is not None
        for act in plan.timeline.activities
    ]


def _write_text_files(cfg: SynthConfig, plans: list[SessionPlan]) -> None:
    from ndar.submission import write_submission

    out = Path(cfg.out)
    by_driver: dict[str, list[SessionPlan]] = {}
    for plan in plans:
        if plan.split == "A1":
            by_driver.setdefault(plan.driver, []).append(plan)
    for driver, driver_plans in by_driver.items():
        path = out / "A1" / f"user_id_{driver}" / f"user_id_{driver}.csv"
        atomic_write_text(path, label_csv_text(driver_plans, cfg.views))
    atomic_write_text(out / "A2" / "video_ids.csv", video_ids_text(plans, cfg.views))
    write_submission(out / "A2_ground_truth.txt", ground_truth_rows(plans))


def _metadata(cfg: SynthConfig, plans: list[SessionPlan], frames: dict[tuple[str, int], int]) -> dict:
    return {
        "generator": "ndar.synth",
        "generator_version": GENERATOR_VERSION,
        "ndar_version": __version__,
        # what the bytes depend on: not where they go, how many processes write them, or overwrite
        "config": {k: v for k, v in to_dict(cfg).items() if k != "overwrite"}
        | {"out": None, "workers": None},
        "sessions": [
            {
                "split": p.split,
                "driver": p.driver,
                "session": p.session,
                "video_id": p.video_id,
                "appearance": p.appearance,
                "duration_s": p.timeline.duration,
                "frames": frames.get((p.driver, p.session)),
                "activities": [asdict(a) for a in p.timeline.activities],
            }
            for p in plans
        ],
    }


def remove_dataset(out: Path) -> None:
    """Delete what `generate` wrote in `out` (nothing else in the folder)."""
    import shutil

    for split in ("A1", "A2"):
        shutil.rmtree(out / split, ignore_errors=True)
    for name in ("A2_ground_truth.txt", "synth.json", STARTED_NAME):
        (out / name).unlink(missing_ok=True)


def saved_settings(out: Path) -> tuple[dict | None, bool]:
    """(settings the dataset in `out` was made with, complete?): from `synth.json` when it was
    finished, else from the marker an unfinished run wrote before rendering (None: no dataset).

    Why the marker: without it, a run killed before `synth.json` left videos that a run of other
    settings would neither refuse nor remove, and mix into its own dataset."""
    for name, complete in (("synth.json", True), (STARTED_NAME, False)):
        if (out / name).is_file():
            done = read_json(out / name)
            return {**done.get("config", {}), "generator_version": done.get("generator_version")}, complete
    return None, False


def generate(cfg: SynthConfig) -> Path:
    """Write the whole dataset under `cfg.out`; returns it. A finished identical dataset is kept, another
    one is refused (`overwrite` replaces it): `ndar.resume`."""
    cfg.validate()
    out = Path(cfg.out)
    plans = plan_sessions(cfg)
    wanted = _metadata(cfg, plans, {})
    saved, complete = saved_settings(out)
    settings = {**wanted["config"], "generator_version": GENERATOR_VERSION}
    if should_skip("synth", out, settings, saved, complete=complete, overwrite=cfg.overwrite):
        return out
    resume = saved is not None and not complete and not cfg.overwrite  # same settings, unfinished
    if saved is not None and not resume:  # overwrite: nothing of the other dataset may stay behind
        remove_dataset(out)
    if resume:
        log.info("synth: resuming the unfinished dataset in %s (videos already written are kept)", out)
    write_json(out / STARTED_NAME, wanted)
    frames: dict[tuple[str, int], int] = {}
    workers = max(1, min(cfg.workers, len(plans)))
    log.info("synth: rendering %d sessions x %d views with %d worker(s)", len(plans), len(cfg.views), workers)
    if workers == 1:
        results = (render_session(cfg, p, resume) for p in plans)
        for res in tqdm(results, total=len(plans), desc="synth", unit="session"):
            frames[(res["driver"], res["session"])] = res["frames"]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = pool.map(render_session, [cfg] * len(plans), plans, [resume] * len(plans))
            for res in tqdm(results, total=len(plans), desc="synth", unit="session"):
                frames[(res["driver"], res["session"])] = res["frames"]
    _write_text_files(cfg, plans)
    write_json(out / "synth.json", _metadata(cfg, plans, frames))
    (out / STARTED_NAME).unlink()
    return out
