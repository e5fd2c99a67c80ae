"""`run(cfg)`: list the videos, shard them across ranks, stream each once through all its backbones.

Work items are (video, view) pairs sorted by (view, split, file stem); rank r of a torchrun world of
size W takes items r, r + W, ... Every item's output depends only on the item, so the files are the
same whatever the number of ranks. A bad video becomes a failure record (file + reason); the others
go on, and the command exits non-zero at the end.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import ndar
from ndar.config import save_config
from ndar.extract.augment import augment_meta, embed_copies, make_augment
from ndar.extract.config import ExtractConfig
from ndar.extract.models import Backbone, embed, plan_backbones, preprocess_clips
from ndar.extract.outputs import feature_paths, is_complete, write_features
from ndar.extract.stream import WindowStream
from ndar.taxonomy import canonical_view
from ndar.utils.device import resolve_device
from ndar.utils.io import TEMP_SUFFIX, write_json
from ndar.utils.progress import progress as tqdm
from ndar.video import VideoError, VideoInfo, native_mean_frame, probe, resize_mean

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoJob:
    split: str
    session: str  # session key "<driver>_<session>"
    view: str  # canonical view
    path: Path
    stem: str


@dataclass
class JobResult:
    status: str  # "done" | "skipped" | "failed"
    windows: int = 0
    frames: int = 0
    reason: str = ""
    load_s: float = 0.0  # loading model weights (once per view)
    extract_s: float = 0.0  # decoding, models and writing


def failure_record(job: VideoJob | None, reason: str, **where: str) -> dict:
    if job is not None:
        where = {
            "split": job.split,
            "session": job.session,
            "view": job.view,
            "video": job.stem,
            "path": str(job.path),
        }
    return {**where, "reason": reason}


def list_jobs(cfg: ExtractConfig) -> tuple[list[VideoJob], list[dict]]:
    """Every (video, view) to extract, and a failure record for each selected view a session lacks."""
    from ndar.data.discover import load_dataset

    views = [canonical_view(v) for v in cfg.views]
    jobs: list[VideoJob] = []
    failures: list[dict] = []
    for split in cfg.splits:
        index = load_dataset(cfg.data_root, split, cfg.labels_dir)
        for issue in index.errors:
            log.warning("dataset %s: %s", split, issue)
        sessions = index.sessions[: cfg.limit] if cfg.limit is not None else index.sessions
        if cfg.held_out_fold is not None and split.upper() == "A1":
            sessions = held_out_sessions(index, sessions, cfg)
        for session in sessions:
            for view in views:
                record = session.views.get(view)
                if record is None:
                    reason = f"missing view: session {session.key} has no {view} video"
                    failures.append(failure_record(None, reason, split=split, session=session.key, view=view))
                else:
                    jobs.append(VideoJob(split, session.key, view, Path(record.path), record.stem))
    jobs.sort(key=lambda j: (views.index(j.view), j.split, j.stem))
    return jobs, failures


def held_out_sessions(index, sessions: list, cfg: ExtractConfig) -> list:
    """The sessions whose driver is in fold `cfg.held_out_fold`.

    Folds come from `assign_folds` over the labelled A1 drivers, exactly as the fine-tuning assigns
    them (`ndar.finetune.data.load_clip_samples`), so fold f here is the fold model f held out.
    """
    from ndar.data.folds import assign_folds

    drivers = sorted({v.driver for v in index.videos if v.segments})
    folds = assign_folds(drivers, cfg.folds, cfg.fold_seed)
    if not 0 <= cfg.held_out_fold < cfg.folds:
        raise ValueError(f"held_out_fold={cfg.held_out_fold} is not a fold of k={cfg.folds}")
    return [s for s in sessions if folds.get(s.driver) == cfg.held_out_fold]


def view_mismatches(jobs: list[VideoJob]) -> list[str]:
    """One line per session whose views differ in frame rate.

    The heads align a session's views window by window and refuse such a session; saying so here,
    before hours of extraction, lets the user re-encode or drop the odd view first. Headers only; a
    video that cannot be probed is left to its own failure record. Sizes may differ (each view has
    its own model and crop; the 2024 cameras differ in size in every session).
    """
    by_session: dict[tuple[str, str], list[tuple[VideoJob, VideoInfo]]] = {}
    for job in jobs:
        try:
            info = probe(job.path)
        except VideoError:
            continue
        by_session.setdefault((job.split, job.session), []).append((job, info))
    lines = []
    for (split, session), views in sorted(by_session.items()):
        rates = {round(info.fps, 3) for _, info in views}
        if len(rates) > 1:
            described = ", ".join(
                f"{job.view} {info.fps:g} fps {info.width}x{info.height}" for job, info in views
            )
            lines.append(f"{split} session {session}: views differ in frame rate ({described})")
    return lines


def shard(jobs: list[VideoJob], rank: int, world: int) -> list[VideoJob]:
    """Rank r takes jobs r, r + world, ... of the sorted list (deterministic, balanced by count)."""
    return jobs[rank::world]


def convert_threads(cfg: ExtractConfig, device: torch.device) -> int:
    """The config's frame-conversion threads, or the automatic choice (see `ExtractConfig`)."""
    if cfg.convert_threads is not None:
        return cfg.convert_threads
    return min(8, (os.cpu_count() or 2) // 2) if device.type == "cuda" else 0


def resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for plain float32."""
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    table = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise ValueError(f"extract.dtype: expected one of {['auto', *table]}, got {name!r}")
    return table[name]


def init_distributed(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether we created the process group) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), True


def gather(obj: object, world: int) -> list:
    if world <= 1:
        return [obj]
    items: list = [None] * world
    dist.all_gather_object(items, obj)
    return items


def check_video(info: VideoInfo, cfg: ExtractConfig, path: Path) -> None:
    if info.num_frames <= 0:
        raise VideoError(f"{path}: zero frames in the container header")
    if cfg.expected_fps is not None and abs(info.fps - cfg.expected_fps) > cfg.fps_tolerance:
        raise VideoError(
            f"{path}: unexpected frame rate {info.fps:.3f} fps (expected {cfg.expected_fps} fps)"
        )


def check_decoded(stream: WindowStream, info: VideoInfo, todo: list[Backbone], path: Path) -> None:
    """A decode that stops early (truncated file) or gives no window is a failure, not a short video."""
    decoded = stream.stats.frames
    if decoded == 0:
        raise VideoError(f"{path}: no frame could be decoded")
    missing = info.num_frames - decoded
    if missing > max(2, int(0.01 * info.num_frames)):
        raise VideoError(f"{path}: truncated: decoded {decoded} of {info.num_frames} frames in the header")
    for backbone, count in zip(todo, stream.stats.windows):
        if count == 0:
            raise VideoError(
                f"{path}: {decoded} frames, shorter than one window of {backbone.track} "
                f"({backbone.window.window_len} frames)"
            )


def pad_batch(clips: np.ndarray, batch_size: int) -> np.ndarray:
    """Repeat the last clip up to `batch_size`, so a compiled model never sees a new batch shape."""
    missing = batch_size - len(clips)
    if missing <= 0:
        return clips
    return np.concatenate([clips, np.repeat(clips[-1:], missing, axis=0)])


def decode_size(backbone: Backbone, cfg: ExtractConfig) -> tuple[int, int] | None:
    """The size the frame is decoded at for `backbone`: its crop box becomes img_size x img_size."""
    if cfg.resize_on_decode:
        return backbone.plan.scaled
    if not backbone.plan.is_whole_frame:
        raise ValueError(
            f"{backbone.folder}: resize_on_decode=false supports whole-frame models only "
            f"(this one crops {backbone.plan}); set resize_on_decode=true"
        )
    return None


def crop_plan(backbone: Backbone, cfg: ExtractConfig):
    """The crop applied to each decoded frame of `backbone` (None: the frame is used whole)."""
    return backbone.plan if cfg.resize_on_decode and not backbone.plan.is_whole_frame else None


def mean_frames(path: Path, backbones: list[Backbone], cfg: ExtractConfig) -> list[np.ndarray | None]:
    """The video's mean frame at each backbone's decode size, for backbones trained on residual frames
    (averaged once per video at the native size, then resized per backbone)."""
    if not any(b.spec.subtract_video_mean for b in backbones):
        return [None] * len(backbones)
    native = native_mean_frame(path)
    means = []
    for b in backbones:
        mean = resize_mean(native, decode_size(b, cfg)) if b.spec.subtract_video_mean else None
        plan = crop_plan(b, cfg)
        means.append(plan.crop(mean) if mean is not None and plan is not None else mean)
    return means


def output_meta(
    job: VideoJob,
    backbone: Backbone,
    info: VideoInfo,
    stream: WindowStream,
    feats: np.ndarray,
    cfg: ExtractConfig,
) -> dict:
    spec = backbone.spec
    return {
        "backbone": spec.name,
        "track": backbone.track,
        "view": job.view,
        "video": job.stem,
        "session": job.session,
        "split": job.split,
        "path": str(job.path),
        "checkpoint": str(backbone.folder),
        "checkpoint_sha256": backbone.sha256,
        "window": backbone.window.to_dict(),
        "img_size": backbone.img_size,
        "normalize": bool(spec.normalize),
        "subtract_video_mean": bool(spec.subtract_video_mean),
        "mean": list(spec.mean),
        "std": list(spec.std),
        "resize": resize_record(cfg),
        "crop_box": list(spec.crop_box),
        "resize_rule": backbone.geometry.resize,
        "decoded_size": list(backbone.plan.scaled),
        "fps": info.fps,
        "num_frames": stream.stats.frames,
        "header_frames": info.num_frames,
        "width": info.width,
        "height": info.height,
        "num_windows": int(feats.shape[0]),
        "feature_dim": int(feats.shape[1]),
        "ndar_version": ndar.__version__,
    } | augment_record(cfg)


def resize_record(cfg: ExtractConfig) -> str:
    """The sidecar's "resize" entry: how frames were brought to the model's size."""
    return "decode-swscale-bilinear" if cfg.resize_on_decode else "torch-bilinear-antialias"


def augment_record(cfg: ExtractConfig) -> dict:
    """The sidecar's "augment" entry; absent without copies, so those files are unchanged."""
    aug = augment_meta(cfg.augment_copies, cfg.augment_spec, cfg.augment_seed)
    return {"augment": aug} if aug is not None else {}


def extract_job(
    job: VideoJob, backbones: list[Backbone], cfg: ExtractConfig, device: torch.device, amp, show: bool
) -> JobResult:
    """Decode `job` once and write the outputs of every backbone whose outputs are not complete."""
    paths = [feature_paths(cfg.out, b.track, job.view, job.stem) for b in backbones]
    aug_meta = augment_meta(cfg.augment_copies, cfg.augment_spec, cfg.augment_seed)
    todo = [
        i
        for i, b in enumerate(backbones)
        if cfg.overwrite
        or not is_complete(*paths[i], b.sha256, b.window.to_dict(), aug_meta, resize_record(cfg))
    ]
    if not todo:
        return JobResult("skipped")
    models = [backbones[i] for i in todo]
    info = probe(job.path)
    check_video(info, cfg, job.path)
    for backbone in models:
        backbone.plan_for((info.height, info.width))
    start = time.perf_counter()
    for backbone in models:
        backbone.load(device, cfg.compile)
    loaded = time.perf_counter()
    stream = WindowStream(
        job.path,
        [b.window for b in models],
        [decode_size(b, cfg) for b in models],
        cfg.batch_size,
        cfg.prefetch,
        cfg.num_workers,
        mean_frames(job.path, models, cfg),
        convert_threads(cfg, device),
        [crop_plan(b, cfg) for b in models],
    )
    outs: list[dict[str, list]] = [
        {"feats": [], "probs": [], "t0": [], "t1": [], "feats_aug": [], "probs_aug": []} for _ in models
    ]
    augments = [make_augment(cfg.augment_spec, b) for b in models] if cfg.augment_copies > 0 else []
    with tqdm(
        total=info.num_frames, desc=f"{job.view}/{job.stem}", unit="frame", leave=False, disable=not show
    ) as bar:
        for batch in stream:
            backbone = models[batch.model]
            clips = pad_batch(batch.clips, cfg.batch_size) if cfg.compile else batch.clips
            x = preprocess_clips(clips, backbone.spec, device)  # (B, 3, T, S, S)
            feats, probs = embed(backbone.net, x, amp)
            feats, probs = feats[: len(batch.t_start)], probs[: len(batch.t_start)]
            out = outs[batch.model]
            if augments:
                fa, pa = embed_copies(
                    batch.clips,
                    backbone,
                    augments[batch.model],
                    cfg.augment_copies,
                    cfg.augment_seed,
                    job.stem,
                    len(out["t0"]),
                    device,
                    amp,
                )  # (K, B, D), (K, B, C)
                out["feats_aug"].append(fa)
                out["probs_aug"].append(pa)
            out["feats"].append(feats)
            out["probs"].append(probs)
            out["t0"].extend(batch.t_start)
            out["t1"].extend(batch.t_end)
            bar.update(stream.stats.frames - bar.n)
    check_decoded(stream, info, models, job.path)
    for k, (i, backbone) in enumerate(zip(todo, models)):
        feats = torch.cat(outs[k]["feats"]).cpu().numpy()  # (N, D)
        meta = output_meta(job, backbone, info, stream, feats, cfg)
        write_features(
            *paths[i],
            feats,
            torch.cat(outs[k]["probs"]).cpu().numpy(),  # (N, C)
            np.array(outs[k]["t0"]),
            np.array(outs[k]["t1"]),
            meta,
            *aug_arrays(outs[k]),
        )
    return JobResult(
        "done",
        windows=sum(stream.stats.windows),
        frames=stream.stats.frames,
        load_s=loaded - start,
        extract_s=time.perf_counter() - loaded,
    )


def aug_arrays(out: dict[str, list]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The collected augmented copies as (K, N, D) and (K, N, C) arrays, or (None, None) without copies."""
    if not out["feats_aug"]:
        return None, None
    return torch.cat(out["feats_aug"], 1).cpu().numpy(), torch.cat(out["probs_aug"], 1).cpu().numpy()


def remove_stale_temporaries(out: Path) -> None:
    """Delete temporary files a killed run left behind (never a finished file)."""
    for tmp in out.glob(f"*/*/.*{TEMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)


def run_jobs(
    jobs: list[VideoJob], cfg: ExtractConfig, device: torch.device, amp, show: bool
) -> tuple[dict, list[dict]]:
    counts = {
        "done": 0,
        "skipped": 0,
        "failed": 0,
        "windows": 0,
        "frames": 0,
        "load_s": 0.0,
        "extract_s": 0.0,
    }
    failures: list[dict] = []
    backbones: list[Backbone] = []
    loaded_view = None
    for job in tqdm(jobs, desc="videos", unit="video", disable=not show):
        if job.view != loaded_view:
            backbones = []
            gc.collect()
            backbones = plan_backbones(cfg, job.view)
            loaded_view = job.view
        try:
            result = extract_job(job, backbones, cfg, device, amp, show)
        except (VideoError, OSError) as err:
            log.error("%s: %s", job.path, err)
            failures.append(failure_record(job, str(err)))
            result = JobResult("failed", reason=str(err))
        counts[result.status] += 1
        counts["windows"] += result.windows
        counts["frames"] += result.frames
        counts["load_s"] += result.load_s
        counts["extract_s"] += result.extract_s
    return counts, failures


def limit_heap_growth() -> None:
    """Serve every allocation over 128 KiB with mmap, so freed frames and clips go back to the OS.

    glibc raises its mmap threshold after the first large free and then serves the per-batch
    buffers (decoded clips, float copies, activations) from the heap, which fragments: measured here,
    peak RSS grew by about 2 MB per batch without this (500 MB over a 10-minute video) and stays flat
    with it. Setting the threshold explicitly turns the dynamic adjustment off. No-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 128 * 1024)


def run(cfg: ExtractConfig) -> dict:
    """Extract every configured feature set; returns the summary (also written to <out>/metrics.json)."""
    if not cfg.models:
        raise ValueError("extract: no models configured (models: [{track: ..., folder: ...}])")
    limit_heap_growth()
    device = resolve_device(cfg.device, "extract.device", local_rank=True)
    amp = resolve_amp(cfg.dtype, device)
    rank, world, created = init_distributed(device)
    out = Path(cfg.out)
    start = time.perf_counter()
    try:
        jobs, missing = list_jobs(cfg)
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
            remove_stale_temporaries(out)
            for line in view_mismatches(jobs):
                log.warning("%s", line)
        if world > 1:
            dist.barrier()
        mine = shard(jobs, rank, world)
        log.info(
            "rank %d/%d: %d of %d videos on %s (autocast %s)", rank, world, len(mine), len(jobs), device, amp
        )
        counts, failures = run_jobs(mine, cfg, device, amp, show=rank == 0)
        all_counts = gather(counts, world)
        all_failures = [f for part in gather(failures, world) for f in part]
    finally:
        if created:
            dist.destroy_process_group()
    wall = time.perf_counter() - start
    summary = summarise(all_counts, missing + all_failures, len(jobs), world, wall)
    if rank == 0:
        write_json(out / "failures.json", missing + all_failures)
        write_json(out / "metrics.json", summary)
        print(
            f"extract: {summary['done']} videos extracted, {summary['skipped']} skipped, {summary['failed']} failed; "
            f"{summary['windows']} windows in {wall:.1f} s ({summary['windows_per_s']:.2f} windows/s)"
        )
    return summary


def summarise(counts: list[dict], failures: list[dict], num_jobs: int, world: int, wall: float) -> dict:
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    return {
        **total,
        "failed": len(failures),  # failed videos plus missing views
        "videos": num_jobs,
        "world_size": world,
        "wall_s": round(wall, 3),
        "windows_per_s": total["windows"] / wall if wall > 0 else 0.0,
        "failures": [f"{f.get('path', f.get('session'))}: {f['reason']}" for f in failures],
    }
