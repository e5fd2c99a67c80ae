"""`run(cfg)`: decode every video of the clip table once, in order, and write its clips' frames.

Per view, the clip table is built exactly as fine-tuning builds it; each video is decoded from the
first frame to the last clip's end (PyAV, in order: no seeks), and only the frames some clip uses are
converted (swscale from YUV straight to the planned size, then the crop box is sliced out; the same
code path as extraction, so the cached pixels are extraction's). Videos go to a process pool one at a
time; each shard depends only on its video and the settings, so the files are the same whatever
`workers` is. A video that fails to decode is reported and the others go on.

`run_many` builds several caches of the same videos (one per track: other frames, rate or size) in
one pass: each video is decoded once and every cache takes its frames from that pass, as extraction
runs every backbone of a view on one decode. The files equal those of separate builds.
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
    return cache_videos([task])[0]


def cache_videos(tasks: list[VideoTask]) -> list[dict]:
    """The shards of several caches of one video from a single in-order decode (one summary each)."""
    start = time.perf_counter()
    results = [{"path": t.path, "status": "skipped"} for t in tasks]
    todo = [i for i, t in enumerate(tasks) if not is_complete(t)]
    if not todo:
        return results
    path = tasks[todo[0]].path
    try:
        info = probe(path)
        jobs = [shard_job(tasks[i], info) for i in todo]
        frames = decode_wanted(path, [(j.wanted, j.plan) for j in jobs], tasks[todo[0]].threads)
        for i, job, shard in zip(todo, jobs, frames):
            mean = None
            if tasks[i].settings["subtract_video_mean"]:
                from ndar.video.mean import video_mean_frame

                mean = job.plan.crop(video_mean_frame(path, job.plan.scaled)).astype(np.float32)
            write_shard(tasks[i], info, job.grids, job.wanted, shard, mean)
    except (VideoError, OSError, ValueError, RuntimeError) as err:
        for i in todo:
            results[i] = {"path": path, "status": "failed", "reason": str(err)}
        return results
    seconds = round(time.perf_counter() - start, 3)
    for i, job in zip(todo, jobs):
        results[i] = {
            "path": path, "status": "done", "frames": int(len(job.wanted)), "clips": len(tasks[i].rows),
            "seconds": seconds,
        }  # fmt: skip
    return results


@dataclass
class ShardJob:
    grids: list[np.ndarray]  # source frames of each clip
    wanted: np.ndarray  # (N,) their union, sorted: the shard's frames
    plan: GeometryPlan


def shard_job(task: VideoTask, info) -> ShardJob:
    rate, max_frames = task.settings["sampling_rate"], task.settings["max_frames"]
    grids = clip_grids(task.rows, info.fps, info.num_frames, rate, max_frames)
    wanted = np.unique(np.concatenate(grids))
    return ShardJob(grids, wanted, task.geometry.plan((info.height, info.width)))


def decode_wanted(
    path: str, requests: list[tuple[np.ndarray, GeometryPlan]], threads: int
) -> list[np.ndarray]:
    """For each (sorted source indices, plan): those frames at the plan's geometry, (N, S, S, 3),
    from one in-order decode that stops after the last frame any request needs."""
    outs = [np.empty((len(w), p.size, p.size, 3), dtype=np.uint8) for w, p in requests]
    ks = [0] * len(requests)
    last = max(int(w[-1]) for w, _ in requests)
    index = -1
    for index, _, frame in decode_frames(Path(path), threads):
        converted: dict[tuple[int, int], np.ndarray] = {}  # one conversion per decode size
        for r, (wanted, plan) in enumerate(requests):
            if ks[r] < len(wanted) and index == wanted[ks[r]]:
                if plan.scaled not in converted:
                    converted[plan.scaled] = frame_to_rgb(frame, plan.scaled)
                outs[r][ks[r]] = plan.crop(converted[plan.scaled])
                ks[r] += 1
        if index >= last:
            break
    for r, (wanted, _) in enumerate(requests):
        if ks[r] < len(wanted):
            raise VideoError(
                f"{path}: decoding ended at frame {index}, before frame {int(wanted[ks[r]])} a clip needs"
            )
    return outs


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
    check_unique_stems(tasks, clips or cfg.root)
    return tasks, samples, settings, out


def check_unique_stems(tasks: list[VideoTask], source) -> None:
    """Shards are named by the video's file stem and clips keyed by its file name: two videos of one
    name in other folders would overwrite each other's shard (and could swap frames), so refuse."""
    seen: dict[str, str] = {}
    for task in tasks:
        if task.stem in seen:
            raise ValueError(
                f"{source}: videos {seen[task.stem]} and {task.path} share the file name {task.stem!r}; "
                "the clip cache names shards by file name (rename one of them)"
            )
        seen[task.stem] = task.path


def run(cfg: ClipCacheConfig) -> dict:
    """Build (or complete) the cache of every configured view; returns the summary per view."""
    return run_many([cfg])[0]


def run_many(cfgs: list[ClipCacheConfig]) -> list[dict]:
    """Build several caches of the same videos, each video decoded once for all of them; returns
    each cache's summary per view."""
    for cfg in cfgs:
        cfg.validate()
    outs = [Path(cfg.out).resolve() for cfg in cfgs]
    if len(set(outs)) < len(outs):
        raise ValueError(f"two caches of one build name the same folder: {[str(o) for o in outs]}")
    summaries: list[dict] = [{} for _ in cfgs]
    workers = max(cfg.workers for cfg in cfgs)
    for view in dict.fromkeys(v for cfg in cfgs for v in cfg.views):
        members = [c for c, cfg in enumerate(cfgs) if view in cfg.views]
        built = {c: view_tasks(cfgs[c], view) for c in members}
        for c in members:
            out = built[c][3]
            out.mkdir(parents=True, exist_ok=True)
            # the manifest is the commit marker: a build killed midway (shards of mixed settings)
            # must not leave the previous build's manifest vouching for the folder
            (out / MANIFEST).unlink(missing_ok=True)
            # per view: the main job builds a cache's views in separate stages that may run together
            save_config(cfgs[c], out / "config.yaml")
        groups: dict[str, list[tuple[int, VideoTask]]] = {}  # one decode per video
        for c in members:
            for task in built[c][0]:
                groups.setdefault(task.path, []).append((c, task))
        results = run_groups(
            [[t for _, t in g] for g in groups.values()], workers, f"cache {canonical_view(view)}"
        )
        per_cache: dict[int, list[dict]] = {c: [] for c in members}
        for group, group_results in zip(groups.values(), results):
            for (c, _), result in zip(group, group_results):
                per_cache[c].append(result)
        for c in members:
            tasks, samples, settings, out = built[c]
            summaries[c][canonical_view(view)] = finish_view(out, tasks, samples, settings, per_cache[c])
    return summaries


def finish_view(out: Path, tasks: list[VideoTask], samples, settings: dict, results: list[dict]) -> dict:
    """Write the view's manifest (last: the cache is built) and return its summary."""
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
    return {
        "videos": len(tasks),
        "done": sum(r["status"] == "done" for r in results),
        "skipped": sum(r["status"] == "skipped" for r in results),
        "failed": len(failures),
        "frames": sum(r.get("frames", 0) for r in results),
    }


def run_groups(groups: list[list[VideoTask]], workers: int, desc: str) -> list[list[dict]]:
    """Every video's tasks, in a pool of `workers` processes (in this process when 1), with a
    progress bar."""
    if workers <= 1:
        return [cache_videos(g) for g in tqdm(groups, desc=desc, unit="video")]
    ctx = multiprocessing.get_context("spawn")  # no forked decoder or torch thread state
    with ctx.Pool(workers) as pool:
        return list(tqdm(pool.imap(cache_videos, groups), total=len(groups), desc=desc, unit="video"))
