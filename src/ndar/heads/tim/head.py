"""The TIM head behind the plug-in contract: fit / predict / save / load, plus classify_intervals.

Training cuts every video into overlapping windows (`train_window_stride`) and asks each window
its queries: in recognition mode the ground-truth intervals (and the class-0 gaps between them)
clipped to the window plus a few random intervals labelled by the class covering most of them; in
detection mode the pyramid queries laid over the whole video that the window contains, each
labelled from its best-IoU activity. At test time the same windows are laid every `window_stride`
seconds and a query's logits are the mean over every window that contains it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler

from ndar.config import to_dict
from ndar.heads.base import FeatureVideo, HeadOutput, register_head
from ndar.heads.io import load_torch_state, save_torch_state
from ndar.heads.logs import TrainLog
from ndar.heads.softnms import batched_soft_nms
from ndar.heads.tim.augment import augmented_streams, slot_features
from ndar.heads.tim.config import TimConfig
from ndar.heads.tim.losses import detection_loss, drloc_loss, mix, mixup_pairing, recognition_loss
from ndar.heads.tim.model import TimModel
from ndar.heads.tim.windows import (
    Window,
    assign_queries,
    clipped_queries,
    coverage_labels,
    detection_targets,
    feature_intervals,
    median_feature_gap,
    normalise,
    plan_windows,
    pyramid_intervals,
    random_intervals,
    second_intervals,
    with_background,
)
from ndar.postprocess.simple import runs_above
from ndar.taxonomy import BACKGROUND, NUM_CLASSES
from ndar.utils.progress import progress as tqdm

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


@dataclass
class _Item:
    """One window of one video with the queries it is asked (normalised) and their targets."""

    video: int
    window: Window
    queries: np.ndarray  # (Q, 2) normalised to the window
    query_ids: np.ndarray | None = None  # (Q,) ids into the video's global query list (prediction)
    labels: np.ndarray | None = None  # (Q,) recognition class ids
    cls: np.ndarray | None = None  # (Q, C) detection targets
    offsets: np.ndarray | None = None  # (Q, 2) detection offset targets
    positive: np.ndarray | None = None  # (Q,) detection positives


@dataclass
class _Video:
    """A FeatureVideo as tensors, with what training needs precomputed."""

    source: FeatureVideo
    streams: dict[str, torch.Tensor]  # (N, D) float32 on CPU
    t_start: np.ndarray
    t_end: np.ndarray
    seg_times: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    seg_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    aug: dict[str, torch.Tensor] = field(default_factory=dict)  # (K, N, D) copies, training only


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"tim.device must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    return torch.device(name)


@register_head("tim", TimConfig)
class TimHead:
    """Time Interval Machine on two (or more) aligned feature streams."""

    def __init__(self, cfg: TimConfig, stream_dims: dict[str, int], seed: int = 0) -> None:
        cfg.check()
        self.cfg = cfg
        self.stream_dims = dict(stream_dims)
        self.seed = int(seed)
        self.device = resolve_device(cfg.device)
        if cfg.cpu_threads > 0 and self.device.type == "cpu":
            torch.set_num_threads(cfg.cpu_threads)
        self.feat_gap: float | None = cfg.feat_gap if cfg.feat_gap > 0 else None
        torch.manual_seed(self.seed)
        self.model = TimModel(
            self.stream_dims,
            NUM_CLASSES,
            d_model=cfg.d_model,
            num_heads=cfg.num_heads,
            num_layers=cfg.num_layers,
            feedforward_scale=cfg.feedforward_scale,
            dropout=cfg.dropout,
            feat_dropout=cfg.feat_dropout,
            seq_dropout=cfg.seq_dropout,
            regression=cfg.mode == "detection",
        ).to(self.device)

    # ------------------------------------------------------------------ windows and batches
    @property
    def window_length(self) -> float:
        """Seconds covered by one window: num_feats x feat_stride x feat_gap."""
        if self.feat_gap is None:
            raise RuntimeError("TIM: feat_gap is unknown; call fit() or load() first, or set tim.feat_gap")
        return self.cfg.num_feats * self.cfg.feat_stride * self.feat_gap

    def _prepare(self, video: FeatureVideo, with_targets: bool) -> _Video:
        video.check()
        missing = [name for name in self.stream_dims if name not in video.streams]
        if missing:
            raise ValueError(
                f"video {video.key}: missing feature stream(s) {missing}; the model was built for {list(self.stream_dims)}"
            )
        streams = {}
        for name, dim in self.stream_dims.items():
            arr = np.asarray(video.streams[name], dtype=np.float32)
            if arr.shape[1] != dim:
                raise ValueError(
                    f"video {video.key}: stream {name!r} has {arr.shape[1]} dims, expected {dim}"
                )
            streams[name] = torch.from_numpy(arr)
        prepared = _Video(
            video, streams, np.asarray(video.t_start, np.float64), np.asarray(video.t_end, np.float64)
        )
        if with_targets:
            prepared.seg_times, prepared.seg_labels = with_background(
                video.segments, video.duration, self.cfg.background_chunk
            )
            if self.cfg.augment_copies:
                prepared.aug = augmented_streams(video, self.stream_dims)
        return prepared

    def _windows(self, video: _Video, stride: float) -> list[Window]:
        return plan_windows(
            video.t_start, video.t_end, self.cfg.num_feats, self.cfg.feat_stride, self.window_length, stride
        )

    def _pyramid(self, duration: float) -> np.ndarray:
        cfg = self.cfg
        return pyramid_intervals(
            duration, self.window_length, cfg.pyramid_base, cfg.pyramid_levels, cfg.pyramid_overlap
        )

    def _collate(
        self, items: list[_Item], videos: list[_Video], rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Stack items into padded tensors (on the model's device); with `rng`, each feature slot
        takes a random one of the video's copies (`ndar.heads.tim.augment`)."""
        batch, num_feats = len(items), self.cfg.num_feats
        num_queries = max(1, max(len(it.queries) for it in items))
        feats = {name: torch.zeros(batch, num_feats, dim) for name, dim in self.stream_dims.items()}
        feat_iv = np.zeros((batch, num_feats, 2), np.float32)
        query_iv = np.zeros((batch, num_queries, 2), np.float32)
        query_pad = np.ones((batch, num_queries), bool)
        labels = np.full((batch, num_queries), -1, np.int64)
        cls = np.zeros((batch, num_queries, NUM_CLASSES), np.float32)
        offsets = np.zeros((batch, num_queries, 2), np.float32)
        positive = np.zeros((batch, num_queries), bool)
        feat_pad = np.stack([it.window.index < 0 for it in items])  # (B, T)
        for b, it in enumerate(items):
            video = videos[it.video]
            valid = it.window.index >= 0
            rows = torch.from_numpy(it.window.index[valid])
            for name in self.stream_dims:
                feats[name][b, torch.from_numpy(valid)] = slot_features(
                    video.streams[name], video.aug.get(name), rows, rng
                )
            feat_iv[b] = feature_intervals(video.t_start, video.t_end, it.window)
            q = len(it.queries)
            query_iv[b, :q] = it.queries
            query_pad[b, :q] = False
            if it.labels is not None:
                labels[b, :q] = it.labels
            if it.cls is not None:
                cls[b, :q], offsets[b, :q], positive[b, :q] = it.cls, it.offsets, it.positive
        to = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        return {
            "feats": {k: v.to(self.device) for k, v in feats.items()},
            "feat_iv": to(feat_iv),
            "feat_pad": to(feat_pad),
            "query_iv": to(query_iv),
            "query_pad": to(query_pad),
            "labels": to(labels),
            "cls": to(cls),
            "offsets": to(offsets),
            "positive": to(positive),
        }

    def _chunks(
        self, video: int, window: Window, ids: np.ndarray, norm: np.ndarray, **targets
    ) -> list[_Item]:
        """Split a window's queries into items of at most max_queries (queries are independent)."""
        size = self.cfg.max_queries
        out = []
        for lo in range(0, max(len(ids), 1), size):
            part = slice(lo, lo + size)
            out.append(
                _Item(
                    video,
                    window,
                    norm[part],
                    query_ids=ids[part],
                    **{k: (v[part] if v is not None else None) for k, v in targets.items()},
                )
            )
        return out

    # ------------------------------------------------------------------ training items
    def _detection_items(self, videos: list[_Video], stride: float) -> list[_Item]:
        items = []
        for v, video in enumerate(videos):
            intervals = self._pyramid(video.source.duration)
            cls, offsets, positive = detection_targets(
                intervals, video.source.segments, NUM_CLASSES, self.cfg.iou_threshold
            )
            windows = self._windows(video, stride)
            for window, (ids, norm) in zip(windows, assign_queries(windows, intervals)):
                if len(ids):
                    items += self._chunks(
                        v, window, ids, norm, cls=cls[ids], offsets=offsets[ids], positive=positive[ids]
                    )
        return items

    def _recognition_items(
        self, videos: list[_Video], stride: float, rng: np.random.Generator | None
    ) -> list[_Item]:
        """Clipped ground-truth queries per window, plus random ones when `rng` is given (training)."""
        items = []
        for v, video in enumerate(videos):
            for window in self._windows(video, stride):
                times, labels = clipped_queries(video.seg_times, video.seg_labels, window, self.cfg.min_query)
                if rng is not None and self.cfg.random_queries > 0:
                    extra = random_intervals(rng, window, self.cfg.random_queries, self.feat_gap)
                    times = np.concatenate([times, extra])
                    labels = np.concatenate(
                        [labels, coverage_labels(extra, video.seg_times, video.seg_labels)]
                    )
                if len(times):
                    ids = np.arange(len(times))
                    items += self._chunks(v, window, ids, normalise(times, window), labels=labels)
        return items

    def _train_items(self, videos: list[_Video], rng: np.random.Generator) -> list[_Item]:
        if self.cfg.mode == "detection":
            return self._detection_items(videos, self.cfg.train_window_stride)
        return self._recognition_items(videos, self.cfg.train_window_stride, rng)

    # ------------------------------------------------------------------ losses
    def _autocast(self):
        enabled = self.cfg.amp and self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _loss(
        self, batch: dict, rng: np.random.Generator | None, generator: torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        """Total loss of a batch and its parts; mixup when `rng` is given and mixup_alpha > 0."""
        cfg, model = self.cfg, self.model
        size = batch["feat_iv"].shape[0]
        lam, perm = (
            mixup_pairing(size, cfg.mixup_alpha, rng) if rng is not None else (1.0, torch.arange(size))
        )
        perm = perm.to(self.device)
        with self._autocast():
            feat_time = mix(model.encode_intervals(batch["feat_iv"]), lam, perm)
            query_time = mix(model.encode_intervals(batch["query_iv"]), lam, perm)
            feats = {k: mix(v, lam, perm) for k, v in batch["feats"].items()}
            feat_pad = batch["feat_pad"] & batch["feat_pad"][perm]
            query_pad = batch["query_pad"] & batch["query_pad"][perm]
            out = model(feats, feat_time, query_time, feat_pad, query_pad)
        valid_a, valid_b = ~batch["query_pad"], ~batch["query_pad"][perm]
        parts: dict[str, torch.Tensor] = {}
        if cfg.mode == "recognition":
            cls_loss = lam * recognition_loss(out["logits"], batch["labels"], valid_a, cfg.label_smoothing)
            if lam < 1.0:
                cls_loss = cls_loss + (1 - lam) * recognition_loss(
                    out["logits"], batch["labels"][perm], valid_b, cfg.label_smoothing
                )
            parts["cls"] = cls_loss
        else:
            target = mix(batch["cls"], lam, perm)
            focal, reg = detection_loss(
                out["logits"],
                out["offsets"],
                target,
                batch["offsets"],
                batch["positive"],
                ~query_pad,
                cfg.focal_alpha,
                cfg.focal_gamma,
            )
            if lam < 1.0:
                _, reg_b = detection_loss(
                    out["logits"],
                    out["offsets"],
                    target,
                    batch["offsets"][perm],
                    batch["positive"][perm],
                    valid_b,
                    cfg.focal_alpha,
                    cfg.focal_gamma,
                )
                reg = lam * reg + (1 - lam) * reg_b
            parts["cls"], parts["reg"] = focal, reg
        if cfg.lambda_drloc > 0:
            streams = len(self.stream_dims)
            centres = batch["feat_iv"].mean(-1).repeat(1, streams)  # (B, S*T)
            valid = (~feat_pad).repeat(1, streams)
            parts["drloc"] = drloc_loss(model, out["feature_tokens"], centres, valid, cfg.m_drloc, generator)
        total = (
            parts["cls"] + cfg.lambda_reg * parts.get("reg", 0.0) + cfg.lambda_drloc * parts.get("drloc", 0.0)
        )
        parts["loss"] = total
        return parts

    # ------------------------------------------------------------------ fit
    def fit(self, train: list[FeatureVideo], val: list[FeatureVideo], out_dir: Path) -> dict:
        """Train on `train` (validate on `val` each `eval_every` epochs); resumable from out_dir/checkpoint.pt."""
        cfg = self.cfg
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not train:
            raise ValueError("TIM.fit: no training videos")
        if self.feat_gap is None:
            self.feat_gap = median_feature_gap([v.t_start for v in train])
        log.info(
            "TIM %s: window %.1f s (%d feats x stride %d x gap %.3f s)",
            cfg.mode,
            self.window_length,
            cfg.num_feats,
            cfg.feat_stride,
            self.feat_gap,
        )
        train_videos = [self._prepare(v, with_targets=True) for v in train]
        val_videos = [self._prepare(v, with_targets=True) for v in val]
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        steps_per_epoch = math.ceil(
            len(self._train_items(train_videos, np.random.default_rng(0))) / cfg.batch_size
        )

        optimizer = create_optimizer_v2(self.model, opt="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = CosineLRScheduler(
            optimizer,
            t_initial=max(1, cfg.epochs * steps_per_epoch),
            lr_min=cfg.lr * 1e-2,
            warmup_t=cfg.warmup_epochs * steps_per_epoch,
            warmup_lr_init=cfg.lr * 1e-2,
            t_in_epochs=False,
        )
        history: list[dict] = []
        start_epoch = 0
        ckpt_path = out_dir / CHECKPOINT
        if ckpt_path.is_file():
            state = load_torch_state(ckpt_path, self.device)
            self.model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
            generator.set_state(state["generator"])
            history, start_epoch = list(state["history"]), int(state["epoch"])
            log.info("TIM: resumed from %s at epoch %d", ckpt_path, start_epoch)

        with TrainLog(out_dir) as train_log:
            for epoch in range(start_epoch, cfg.epochs):
                tic = time.perf_counter()
                self.model.train()
                items = self._train_items(train_videos, rng)
                order = rng.permutation(len(items))
                sums: dict[str, float] = {}
                batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
                if len(batches) > 1 and len(batches[-1]) < 2:
                    batches = batches[:-1]  # a batch of one cannot be mixed up
                for step, chosen in enumerate(
                    tqdm(batches, desc=f"tim epoch {epoch + 1}", leave=False, disable=None)
                ):
                    batch = self._collate(
                        [items[i] for i in chosen], train_videos, rng if cfg.augment_copies else None
                    )
                    parts = self._loss(batch, rng, generator)
                    optimizer.zero_grad(set_to_none=True)
                    parts["loss"].backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                    optimizer.step()
                    scheduler.step_update(epoch * steps_per_epoch + step + 1)
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + float(v.detach())
                row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
                row.update({f"train_{k}": v / max(1, len(batches)) for k, v in sums.items()})
                row["epoch_seconds"] = time.perf_counter() - tic
                last = epoch + 1 == cfg.epochs
                if val_videos and (last or (cfg.eval_every > 0 and (epoch + 1) % cfg.eval_every == 0)):
                    row.update(self._validate(val_videos))
                history.append(row)
                train_log.log(epoch + 1, **{k: v for k, v in row.items() if k != "epoch"})
                log.info(
                    "TIM epoch %d/%d %s",
                    epoch + 1,
                    cfg.epochs,
                    " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"),
                )
                if last or (cfg.checkpoint_every > 0 and (epoch + 1) % cfg.checkpoint_every == 0):
                    self._write_checkpoint(
                        ckpt_path, optimizer, scheduler, rng, generator, history, epoch + 1
                    )
        seconds = [h["epoch_seconds"] for h in history]
        return {
            "epochs": history,  # one row per epoch (train losses, lr, epoch_seconds, val_*)
            "seconds_per_epoch": float(np.mean(seconds)) if seconds else 0.0,
            "feat_gap": self.feat_gap,
            "window_seconds": self.window_length,
        }

    def _write_checkpoint(self, path, optimizer, scheduler, rng, generator, history, epoch) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "generator": generator.get_state(),
            "history": history,
            "epoch": epoch,
            "feat_gap": self.feat_gap,
        }
        save_torch_state(state, path)

    @torch.no_grad()
    def _validate(self, videos: list[_Video]) -> dict[str, float]:
        """Validation loss (no mixup, no random queries); recognition also reports GT accuracy."""
        self.model.eval()
        if self.cfg.mode == "detection":
            items = self._detection_items(videos, self.cfg.train_window_stride)
        else:
            items = self._recognition_items(videos, self.cfg.train_window_stride, None)
        total, count = 0.0, 0
        for lo in range(0, len(items), self.cfg.batch_size):
            chunk = items[lo : lo + self.cfg.batch_size]
            total += float(self._loss(self._collate(chunk, videos), None, None)["loss"]) * len(chunk)
            count += len(chunk)
        result = {"val_loss": total / max(count, 1)}
        if self.cfg.mode == "recognition":
            correct = seen = 0
            for video in videos:
                keep = video.seg_labels != BACKGROUND
                if keep.any():
                    probs = self._query_scores(video, video.seg_times[keep])[0]
                    correct += int((probs.argmax(1) == video.seg_labels[keep]).sum())
                    seen += int(keep.sum())
            result["val_acc"] = correct / max(seen, 1)
        self.model.train()
        return result

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def _query_logits(self, video: _Video, intervals: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (M, C) of global queries, averaged over every window asked; offsets (M, 2) in detection."""
        self.model.eval()
        intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
        num = len(intervals)
        logit_sum = np.zeros((num, NUM_CLASSES))
        offset_sum = np.zeros((num, 2))
        counts = np.zeros(num)
        if num == 0:
            return logit_sum, (offset_sum if self.cfg.mode == "detection" else None)
        windows = self._windows(video, self.cfg.window_stride)
        items: list[_Item] = []
        for window, (ids, norm) in zip(windows, assign_queries(windows, intervals)):
            if len(ids):
                items += self._chunks(0, window, ids, norm)
        for lo in range(0, len(items), self.cfg.batch_size):
            chunk = items[lo : lo + self.cfg.batch_size]
            batch = self._collate(chunk, [video])
            with self._autocast():
                feat_time = self.model.encode_intervals(batch["feat_iv"])
                query_time = self.model.encode_intervals(batch["query_iv"])
                out = self.model(batch["feats"], feat_time, query_time, batch["feat_pad"], batch["query_pad"])
            logits = out["logits"].float().cpu().numpy()
            offsets = out["offsets"].float().cpu().numpy() if "offsets" in out else None
            for b, it in enumerate(chunk):
                q = len(it.query_ids)
                np.add.at(logit_sum, it.query_ids, logits[b, :q])
                if offsets is not None:
                    np.add.at(offset_sum, it.query_ids, offsets[b, :q])
                np.add.at(counts, it.query_ids, 1.0)
        counts = np.maximum(counts, 1.0)[:, None]
        return logit_sum / counts, (offset_sum / counts if self.cfg.mode == "detection" else None)

    def _query_scores(self, video: _Video, intervals: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class scores (M, 16): softmax in recognition mode, per-class sigmoid in detection mode."""
        logits, offsets = self._query_logits(video, intervals)
        t = torch.from_numpy(logits)
        scores = torch.softmax(t, dim=1) if self.cfg.mode == "recognition" else torch.sigmoid(t)
        return scores.numpy(), offsets

    def classify_intervals(
        self, videos: list[FeatureVideo], intervals: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Score given intervals (ground truth or another head's proposals): key -> (M, 16) scores.

        `intervals[key]` is (M, 2) [start, end] seconds. Recognition mode returns softmax
        probabilities, detection mode per-class sigmoid scores.
        """
        self._require_gap()
        out = {}
        for video in videos:
            if video.key not in intervals:
                continue
            prepared = self._prepare(video, with_targets=False)
            out[video.key] = self._query_scores(prepared, intervals[video.key])[0].astype(np.float32)
        return out

    def predict(self, videos: list[FeatureVideo]) -> dict[str, HeadOutput]:
        """Per video: the per-second curve (S, 16) and Soft-NMS'd scored segments."""
        self._require_gap()
        out = {}
        for video in tqdm(videos, desc="tim predict", leave=False, disable=None):
            prepared = self._prepare(video, with_targets=False)
            out[video.key] = self._predict_video(prepared)
        return out

    def _predict_video(self, video: _Video) -> HeadOutput:
        duration = video.source.duration
        seconds = second_intervals(video.source.num_seconds)
        pyramid = self._pyramid(duration)
        if self.cfg.mode == "recognition" and self.cfg.recognition_proposals == "curve":
            curve, _ = self._query_scores(video, seconds)
            return HeadOutput(curve=curve.astype(np.float32), segments=self._curve_segments(video, curve))
        if self.cfg.mode == "recognition":
            scores, _ = self._query_scores(video, np.concatenate([seconds, pyramid]))
            curve = scores[: len(seconds)]
            cand_scores, bounds = scores[len(seconds) :], pyramid
        else:
            cand_scores, offsets = self._query_scores(video, pyramid)
            length = (pyramid[:, 1] - pyramid[:, 0])[:, None]
            bounds = np.clip(pyramid + offsets * length, 0.0, duration)
            bounds[:, 1] = np.maximum(bounds[:, 1], bounds[:, 0])
            curve = covering_max_curve(pyramid, bounds, cand_scores, len(seconds))
        return HeadOutput(curve=curve.astype(np.float32), segments=self._segments(bounds, cand_scores))

    def _curve_segments(self, video: _Video, curve: np.ndarray) -> list[tuple[int, float, float, float]]:
        """Recognition: the runs of each class column above each proposal threshold are proposals;
        TIM classifies each proposal interval; score = its probability of the run's class (times the
        run's mean curve value with proposal_score "prob_x_curve"); per-class Soft-NMS."""
        cfg = self.cfg
        bounds, labels, run_mean = curve_proposals(curve, cfg.proposal_thresholds, cfg.proposal_min_len)
        if not len(bounds):
            return []
        probs, _ = self._query_scores(video, bounds)
        scores = probs[np.arange(len(labels)), labels]  # (P,)
        if cfg.proposal_score == "prob_x_curve":
            scores = scores * run_mean
        segs, kept, labs = batched_soft_nms(
            bounds,
            scores,
            labels,
            sigma=cfg.nms_sigma,
            min_score=cfg.nms_min_score,
            max_keep=cfg.max_segments,
        )
        return [(int(c), float(a), float(b), float(p)) for (a, b), p, c in zip(segs, kept, labs)]

    def _segments(self, bounds: np.ndarray, scores: np.ndarray) -> list[tuple[int, float, float, float]]:
        """Every (query, class >= 1) is a candidate; the best pre_nms_topk go through per-class Soft-NMS."""
        cfg = self.cfg
        flat = scores[:, 1:].reshape(-1)  # (M * 15,)
        order = np.argsort(-flat, kind="stable")[: cfg.pre_nms_topk]
        order = order[flat[order] >= cfg.nms_min_score]
        query, label = np.divmod(order, NUM_CLASSES - 1)
        segs, kept, labels = batched_soft_nms(
            bounds[query],
            flat[order],
            label + 1,
            sigma=cfg.nms_sigma,
            min_score=cfg.nms_min_score,
            max_keep=cfg.max_segments,
        )
        return [(int(c), float(s), float(e), float(p)) for (s, e), p, c in zip(segs, kept, labels)]

    def _require_gap(self) -> None:
        if self.feat_gap is None:
            raise RuntimeError("TIM: the model is not trained; call fit() or load() before predicting")

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path) -> None:
        """Weights plus what rebuilding needs (stream dims, feature gap, config), atomically."""
        state = {
            "model": self.model.state_dict(),
            "stream_dims": self.stream_dims,
            "feat_gap": self.feat_gap,
            "config": to_dict(self.cfg),
        }
        save_torch_state(state, path)

    def load(self, path: Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"TIM model file not found: {path}")
        state = load_torch_state(path, self.device)
        if dict(state["stream_dims"]) != self.stream_dims:
            raise ValueError(
                f"{path}: saved for streams {dict(state['stream_dims'])}, this head has {self.stream_dims}"
            )
        self.model.load_state_dict(state["model"])
        self.feat_gap = state["feat_gap"]


def curve_proposals(
    curve: np.ndarray, thresholds: list[float], min_len: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs [start, stop) seconds of every class column (1..15) at or above each threshold,
    at least `min_len` long, without duplicates. Returns (bounds (P, 2), labels (P,), mean value (P,))."""
    seen: set[tuple[int, int, int]] = set()
    rows = []
    for label in range(1, curve.shape[1]):
        column = curve[:, label]
        for threshold in thresholds:
            for start, stop in runs_above(column, threshold):
                if stop - start >= min_len and (label, start, stop) not in seen:
                    seen.add((label, start, stop))
                    rows.append((start, stop, label, float(column[start:stop].mean())))
    if not rows:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0)
    arr = np.array(rows, dtype=np.float64)
    return arr[:, :2], arr[:, 2].astype(np.int64), arr[:, 3]


def covering_max_curve(
    queries: np.ndarray, regressed: np.ndarray, scores: np.ndarray, num_seconds: int
) -> np.ndarray:
    """Per-second curve from detection query scores, normalised to sum 1 per second.

    Row s, class c >= 1 = max score over the queries whose *regressed* interval covers the centre
    of second s; class 0 (normal driving, never regressed) uses the queries' own intervals. Seconds
    that no interval covers take the nearest query.
    """
    centres = np.arange(num_seconds) + 0.5

    def covering(intervals: np.ndarray) -> np.ndarray:  # (S, M)
        return (intervals[None, :, 0] <= centres[:, None]) & (intervals[None, :, 1] >= centres[:, None])

    curve = np.zeros((num_seconds, scores.shape[1]))
    cover_q, cover_r = covering(queries), covering(regressed)
    for c in range(scores.shape[1]):
        cover = cover_q if c == BACKGROUND else cover_r
        curve[:, c] = np.where(cover, scores[None, :, c], 0.0).max(axis=1)
    empty = ~cover_q.any(axis=1)
    if empty.any():
        mids = queries.mean(axis=1)
        curve[empty] = scores[np.abs(mids[None] - centres[empty, None]).argmin(axis=1)]
    return curve / np.maximum(curve.sum(axis=1, keepdims=True), 1e-8)
