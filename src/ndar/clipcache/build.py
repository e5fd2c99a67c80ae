"""`run(cfg)`: decode every video of the clip table once, in order, and write its clips' frames.

Per view, the clip table is built exactly as fine-tuning builds it; each video is decoded from the
first frame to the last clip's end (PyAV, in order: no seeks), and only the frames some clip uses are
converted (swscale from YUV straight to the planned size, then the crop box is sliced out; the same
code path as extraction, so the cached pixels are extraction's). Videos go to a process pool one at a
time; each shard depends only on its video and the settings, so the files are the same whatever
`workers` is. A video that fails to decode is reported and the others go on.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ndar.clipcache.config import ClipCacheConfig
from ndar.clipcache.store import MANIFEST, cache_settings, clips_sha256
from ndar.config import save_config
from ndar.taxonomy import canonical_view
from ndar.utils.io import atomic_path, read_json, write_json
from ndar.video.geometry import Geometry, GeometryPlan, resolve_crop_box
from ndar.video.probe import VideoError, probe
from ndar.video.reader import decode_frames, frame_to_rgb

log = logging.getLogger(__name__)


@dataclass
class VideoTask:
    path: str
    stem: str
    rows: list[dict]  # the clip rows of this video: label, start, end
    out: Path
    settings: dict
    geometry: Geometry  # planned per video: "pad" depends on the frame's size
    threads: int
    overwrite: bool


def clip_grids(rows: list[dict], fps: float, num_frames: int, rate: int, max_frames: int) -> list[np.ndarray]:
    """Source frame indices of each clip: fine-tuning's `frame_grid` rule, so reads line up."""
    from ndar.finetune.data import VideoMeta, frame_grid

    meta = VideoMeta(fps=fps, num_frames=num_frames, height=0, width=0)
    return [frame_grid(r["start"], r["end"], meta, rate, max_frames) for r in rows]


def is_complete(task: VideoTask) -> bool:
    meta_path = task.out / f"{task.stem}.json"
    if task.overwrite or not meta_path.is_file() or not (task.out / f"{task.stem}.npy").is_file():
        return False
    meta = read_json(meta_path)
    wanted = sorted((r["label"], r["start"], r["end"]) for r in task.rows)
    have = sorted((c["label"], c["start"], c["end"]) for c in meta.get("clips", []))
    return meta.get("settings") == task.settings and wanted == have


def cache_video(task: VideoTask) -> dict:
    """Decode one video in order and write its shard; returns a summary (or the failure reason)."""
    start = time.perf_counter()
    if is_complete(task):
        return {"path": task.path, "status": "skipped"}
    try:
        info = probe(task.path)
        grids = clip_grids(
            task.rows, info.fps, info.num_frames, task.settings["sampling_rate"], task.settings["max_frames"]
        )
        wanted = np.unique(np.concatenate(grids))  # (N,) source frames, sorted
        plan = task.geometry.plan((info.height, info.width))
        frames = decode_wanted(task.path, wanted, plan, task.threads)  # (N, S, S, 3)
        mean = None
        if task.settings["subtract_video_mean"]:
            from ndar.video.mean import video_mean_frame

            mean = plan.crop(video_mean_frame(task.path, plan.scaled)).astype(np.float32)
        write_shard(task, info, grids, wanted, frames, mean)
    except (VideoError, OSError, ValueError, RuntimeError) as err:
        return {"path": task.path, "status": "failed", "reason": str(err)}
    return {
        "path": task.path,
        "status": "done",
        "frames": int(len(wanted)),
        "clips": len(task.rows),
        "seconds": round(time.perf_counter() - start, 3),
    }


def decode_wanted(path: str, wanted: np.ndarray, plan: GeometryPlan, threads: int) -> np.ndarray:
    """Frames `wanted` (sorted source indices) at the plan's geometry; decoding stops after the last."""
    size = plan.size
    out = np.empty((len(wanted), size, size, 3), dtype=np.uint8)
    k = 0
    last = int(wanted[-1])
    for index, _, frame in decode_frames(Path(path), threads):
        if index == wanted[k]:
            out[k] = plan.crop(frame_to_rgb(frame, plan.scaled))
            k += 1
            if k == len(wanted):
                break
        if index >= last:
            break
    if k < len(wanted):
        raise VideoError(
            f"{path}: decoding ended at frame {index}, before frame {int(wanted[k])} a clip needs"
        )
    return out


def write_shard(task: VideoTask, info, grids: list[np.ndarray], wanted: np.ndarray, frames, mean) -> None:
    """`.npy` (and `.mean.npy`) first, then the `.json` that marks the shard complete (all atomic)."""
    task.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(task.out / f"{task.stem}.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, frames)
    if mean is not None:
        with atomic_path(task.out / f"{task.stem}.mean.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, mean)
    clips = [
        {
            "label": r["label"],
            "start": r["start"],
            "end": r["end"],
            "positions": np.searchsorted(wanted, grid).tolist(),
        }
        for r, grid in zip(task.rows, grids)
    ]
    meta = {
        "video": task.path,
        "settings": task.settings,
        "fps": info.fps,
        "header_frames": info.num_frames,
        "source_frames": wanted.tolist(),
        "clips": clips,
    }
    write_json(task.out / f"{task.stem}.json", meta)


def view_tasks(cfg: ClipCacheConfig, view: str) -> tuple[list[VideoTask], pd.DataFrame, dict, Path]:
    from ndar.finetune.data import load_clip_samples

    clips = Path(str(cfg.clips).format(view=view)) if cfg.clips is not None else None
    samples = load_clip_samples(
        cfg.root, clips, view, cfg.split, cfg.k, cfg.fold_seed, cfg.background_per_video
    )
    box = resolve_crop_box(cfg.crop, view)
    settings = cache_settings(
        cfg.num_frames,
        cfg.sampling_rate,
        cfg.img_size,
        box,
        cfg.resize,
        cfg.subtract_video_mean,
        cfg.max_frames,
    )
    geometry = Geometry(cfg.img_size, box, cfg.resize)
    out = Path(cfg.out) / canonical_view(view)
    tasks = []
    for path, rows in samples.groupby("path", sort=True):
        records = [
            {"label": int(r.label), "start": float(r.start), "end": float(r.end)}
            for r in rows.sort_values(["start", "end", "label"]).itertuples()
        ]
        tasks.append(
            VideoTask(
                str(path), Path(str(path)).stem, records, out, settings, geometry, cfg.threads, cfg.overwrite
            )
        )
    return tasks, samples, settings, out


def run(cfg: ClipCacheConfig) -> dict:
    """Build (or complete) the cache of every configured view; returns the summary per view."""
    cfg.validate()
    summary = {}
    for view in cfg.views:
        tasks, samples, settings, out = view_tasks(cfg, view)
        out.mkdir(parents=True, exist_ok=True)
        # per view: the main job builds a track's views in separate stages that may run together
        save_config(cfg, out / "config.yaml")
        results = run_tasks(tasks, cfg.workers, f"cache {canonical_view(view)}")
        failures = [{"path": r["path"], "reason": r["reason"]} for r in results if r["status"] == "failed"]
        for failure in failures:
            log.error("cache-clips: %s: %s", failure["path"], failure["reason"])
        manifest = {
            "settings": settings,
            "clips_sha256": clips_sha256(samples),
            "videos": len(tasks),
            "clips": int(len(samples)),
            "failures": failures,
        }
        write_json(out / MANIFEST, manifest)
        summary[canonical_view(view)] = {
            "videos": len(tasks),
            "done": sum(r["status"] == "done" for r in results),
            "skipped": sum(r["status"] == "skipped" for r in results),
            "failed": len(failures),
            "frames": sum(r.get("frames", 0) for r in results),
        }
    return summary


def run_tasks(tasks: list[VideoTask], workers: int, desc: str) -> list[dict]:
    """Every task, in a pool of `workers` processes (in this process when 1), with a progress bar."""
    if workers <= 1:
        return [cache_video(t) for t in tqdm(tasks, desc=desc, unit="video")]
    ctx = multiprocessing.get_context("spawn")  # no forked decoder or torch thread state
    with ctx.Pool(workers) as pool:
        return list(tqdm(pool.imap(cache_video, tasks), total=len(tasks), desc=desc, unit="video"))
