"""The TIM head behind the plug-in contract: fit / predict / save / load, plus classify_intervals.

Training cuts every video into overlapping windows (`train_window_stride`) and asks each window
its queries: in recognition mode the ground-truth intervals (and the class-0 gaps between them)
clipped to the window plus a few random intervals labelled by the class covering most of them; in
detection mode the pyramid queries laid over the whole video that the window contains, each
labelled from its best-IoU activity. At test time the same windows are laid every `window_stride`
seconds and a query's logits are the mean over every window that contains it.

Batching lives in `batching.py`, proposals and Soft-NMS decoding in `decoding.py`; this module
holds the model, the losses of a batch, the training loop and inference.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3

from ndar.config import to_dict
from ndar.heads.base import FeatureVideo, HeadOutput, register_head
from ndar.heads.io import load_torch_state, save_torch_state
from ndar.heads.logs import TrainLog
from ndar.heads.tim.batching import Batcher, PreparedVideo, prepare_video
from ndar.heads.tim.config import TimConfig
from ndar.heads.tim.decoding import (
    Segment,
    covering_max_curve,
    curve_proposals,
    nms_segments,
    regressed_bounds,
    top_candidate_segments,
)
from ndar.heads.tim.losses import detection_loss, drloc_loss, mix, mixup_pairing, recognition_loss
from ndar.heads.tim.model import TimModel
from ndar.heads.tim.windows import median_feature_gap, second_intervals
from ndar.taxonomy import BACKGROUND, NUM_CLASSES
from ndar.utils.device import cpu_threads, resolve_device
from ndar.utils.progress import progress as tqdm

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


@register_head("tim", TimConfig)
class TimHead:
    """Time Interval Machine on two (or more) aligned feature streams."""

    def __init__(self, cfg: TimConfig, stream_dims: dict[str, int], seed: int = 0) -> None:
        cfg.check()
        self.cfg = cfg
        self.stream_dims = dict(stream_dims)
        self.seed = int(seed)
        self.device = resolve_device(cfg.device, "tim.device")
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
        self.ema = ModelEmaV3(self.model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema_decay > 0 else None

    def inference_model(self) -> torch.nn.Module:
        """The weights that predict: the moving average when `ema_decay` > 0, else the trained ones."""
        return self.ema.module if self.ema is not None else self.model

    # ------------------------------------------------------------------ windows and batches
    @property
    def window_length(self) -> float:
        """Seconds covered by one window: num_feats x feat_stride x feat_gap."""
        if self.feat_gap is None:
            raise RuntimeError("TIM: feat_gap is unknown; call fit() or load() first, or set tim.feat_gap")
        return self.cfg.num_feats * self.cfg.feat_stride * self.feat_gap

    @property
    def batcher(self) -> Batcher:
        """Windows and batches at the current feature gap (known after fit/load or from the config)."""
        return Batcher(self.cfg, self.stream_dims, self.device, self.window_length, self.feat_gap)

    def _threads(self):
        """tim.cpu_threads for the duration of a call; torch's global count is restored after."""
        return cpu_threads(self.device, self.cfg.cpu_threads)

    def _prepare(self, video: FeatureVideo, with_targets: bool) -> PreparedVideo:
        return prepare_video(
            video, self.stream_dims, self.cfg.background_chunk, with_targets, self.cfg.augment_copies
        )

    def _windows(self, video: PreparedVideo, stride: float):
        return self.batcher.windows(video, stride)

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
        if cfg.mode == "recognition":
            parts = {"cls": self._recognition_loss(out, batch, lam, perm)}
        else:
            parts = dict(zip(("cls", "reg"), self._detection_loss(out, batch, lam, perm, ~query_pad)))
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

    def _recognition_loss(self, out: dict, batch: dict, lam: float, perm: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on the queries of both mixed-up rows, weighted by lambda."""
        smoothing = self.cfg.label_smoothing
        loss = lam * recognition_loss(out["logits"], batch["labels"], ~batch["query_pad"], smoothing)
        if lam < 1.0:
            valid_b = ~batch["query_pad"][perm]
            loss = loss + (1 - lam) * recognition_loss(
                out["logits"], batch["labels"][perm], valid_b, smoothing
            )
        return loss

    def _detection_loss(
        self, out: dict, batch: dict, lam: float, perm: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Focal loss on mixed class targets; regression of both rows' offsets, weighted by lambda."""
        cfg = self.cfg
        target = mix(batch["cls"], lam, perm)

        def loss(offsets, positive, mask):
            return detection_loss(
                out["logits"],
                out["offsets"],
                target,
                offsets,
                positive,
                mask,
                cfg.focal_alpha,
                cfg.focal_gamma,
            )

        focal, reg = loss(batch["offsets"], batch["positive"], valid)
        if lam < 1.0:
            _, reg_b = loss(batch["offsets"][perm], batch["positive"][perm], ~batch["query_pad"][perm])
            reg = lam * reg + (1 - lam) * reg_b
        return focal, reg

    # ------------------------------------------------------------------ fit
    def fit(self, train: list[FeatureVideo], val: list[FeatureVideo], out_dir: Path) -> dict:
        """Train on `train` (validate on `val` each `eval_every` epochs); resumable from out_dir/checkpoint.pt."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not train:
            raise ValueError("TIM.fit: no training videos")
        if self.feat_gap is None:
            self.feat_gap = median_feature_gap([v.t_start for v in train])
        self._log_window()
        with self._threads():
            history = self._train(
                [self._prepare(v, with_targets=True) for v in train],
                [self._prepare(v, with_targets=True) for v in val],
                out_dir,
            )
        seconds = [h["epoch_seconds"] for h in history]
        return {
            "epochs": history,  # one row per epoch (train losses, lr, epoch_seconds, val_*)
            "seconds_per_epoch": float(np.mean(seconds)) if seconds else 0.0,
            "feat_gap": self.feat_gap,
            "window_seconds": self.window_length,
        }

    def _log_window(self) -> None:
        cfg = self.cfg
        log.info(
            "TIM %s: window %.1f s (%d feats x stride %d x gap %.3f s)",
            cfg.mode,
            self.window_length,
            cfg.num_feats,
            cfg.feat_stride,
            self.feat_gap,
        )

    def _train(
        self, train_videos: list[PreparedVideo], val_videos: list[PreparedVideo], out_dir: Path
    ) -> list[dict]:
        """The epoch loop: seeded state, optional resume, per-epoch log rows, checkpoints."""
        cfg = self.cfg
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        steps_per_epoch = math.ceil(
            len(self.batcher.training_items(train_videos, np.random.default_rng(0))) / cfg.batch_size
        )
        optimizer, scheduler = self._optimizer(steps_per_epoch)
        ckpt_path = out_dir / CHECKPOINT
        history, start_epoch = self._resume(ckpt_path, optimizer, scheduler, rng, generator)
        with TrainLog(out_dir) as train_log:
            for epoch in range(start_epoch, cfg.epochs):
                tic = time.perf_counter()
                row = {"epoch": epoch + 1}
                row.update(
                    self._train_epoch(
                        epoch, train_videos, optimizer, scheduler, steps_per_epoch, rng, generator
                    )
                )
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
        return history

    def _optimizer(self, steps_per_epoch: int):
        """AdamW with a per-step cosine schedule after a linear warmup (both from 1% of lr)."""
        cfg = self.cfg
        optimizer = create_optimizer_v2(self.model, opt="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = CosineLRScheduler(
            optimizer,
            t_initial=max(1, cfg.epochs * steps_per_epoch),
            lr_min=cfg.lr * 1e-2,
            warmup_t=cfg.warmup_epochs * steps_per_epoch,
            warmup_lr_init=cfg.lr * 1e-2,
            t_in_epochs=False,
        )
        return optimizer, scheduler

    def _resume(self, ckpt_path: Path, optimizer, scheduler, rng, generator) -> tuple[list[dict], int]:
        """Restore model, optimiser, schedule and every random state from the checkpoint, if any."""
        if not ckpt_path.is_file():
            return [], 0
        state = load_torch_state(ckpt_path, self.device)
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if not state.get("ema"):
                raise ValueError(f"{ckpt_path}: written without ema_decay; cannot resume with ema_decay > 0")
            self.ema.module.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["generator"])
        log.info("TIM: resumed from %s at epoch %d", ckpt_path, int(state["epoch"]))
        return list(state["history"]), int(state["epoch"])

    def _train_epoch(
        self,
        epoch: int,
        videos: list[PreparedVideo],
        optimizer,
        scheduler,
        steps_per_epoch: int,
        rng,
        generator,
    ) -> dict[str, float]:
        """One pass over freshly drawn items in random order; returns lr and the mean loss parts."""
        cfg, batcher = self.cfg, self.batcher
        self.model.train()
        items = batcher.training_items(videos, rng)
        order = rng.permutation(len(items))
        sums: dict[str, float] = {}
        batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches = batches[:-1]  # a batch of one cannot be mixed up
        for step, chosen in enumerate(
            tqdm(batches, desc=f"tim epoch {epoch + 1}", leave=False, disable=None)
        ):
            copies_rng = rng if self.cfg.augment_copies else None  # one copy per slot (official TIM)
            parts = self._loss(
                batcher.collate([items[i] for i in chosen], videos, copies_rng), rng, generator
            )
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            optimizer.step()
            updates = epoch * steps_per_epoch + step + 1
            scheduler.step_update(updates)
            if self.ema is not None:
                self.ema.update(self.model, step=updates)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        row = {"lr": optimizer.param_groups[0]["lr"]}
        row.update({f"train_{k}": v / max(1, len(batches)) for k, v in sums.items()})
        return row

    def _write_checkpoint(self, path, optimizer, scheduler, rng, generator, history, epoch) -> None:
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else {},
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
    def _validate(self, videos: list[PreparedVideo]) -> dict[str, float]:
        """Validation loss (no mixup, no random queries); recognition also reports GT accuracy."""
        self.model.eval()
        batcher = self.batcher
        items = batcher.training_items(videos, None)
        total, count = 0.0, 0
        for lo in range(0, len(items), self.cfg.batch_size):
            chunk = items[lo : lo + self.cfg.batch_size]
            total += float(self._loss(batcher.collate(chunk, videos), None, None)["loss"]) * len(chunk)
            count += len(chunk)
        result = {"val_loss": total / max(count, 1)}
        if self.cfg.mode == "recognition":
            result["val_acc"] = self._ground_truth_accuracy(videos)
        self.model.train()
        return result

    def _ground_truth_accuracy(self, videos: list[PreparedVideo]) -> float:
        """Share of ground-truth activity intervals (class >= 1) whose argmax class is right."""
        correct = seen = 0
        for video in videos:
            keep = video.seg_labels != BACKGROUND
            if keep.any():
                probs = self._query_scores(video, video.seg_times[keep])[0]
                correct += int((probs.argmax(1) == video.seg_labels[keep]).sum())
                seen += int(keep.sum())
        return correct / max(seen, 1)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def _query_logits(
        self, video: PreparedVideo, intervals: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (M, C) of global queries, averaged over every window asked; offsets (M, 2) in detection."""
        self.inference_model().eval()
        detection = self.cfg.mode == "detection"
        intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
        num = len(intervals)
        logit_sum, offset_sum, counts = np.zeros((num, NUM_CLASSES)), np.zeros((num, 2)), np.zeros(num)
        if num == 0:
            return logit_sum, (offset_sum if detection else None)
        batcher = self.batcher
        items = batcher.query_items(video, intervals)
        for lo in range(0, len(items), self.cfg.batch_size):
            chunk = items[lo : lo + self.cfg.batch_size]
            logits, offsets = self._forward(batcher.collate(chunk, [video]))
            for b, it in enumerate(chunk):
                q = len(it.query_ids)
                np.add.at(logit_sum, it.query_ids, logits[b, :q])
                if offsets is not None:
                    np.add.at(offset_sum, it.query_ids, offsets[b, :q])
                np.add.at(counts, it.query_ids, 1.0)
        counts = np.maximum(counts, 1.0)[:, None]
        return logit_sum / counts, (offset_sum / counts if detection else None)

    def _forward(self, batch: dict) -> tuple[np.ndarray, np.ndarray | None]:
        """Model outputs of a batch as float numpy: logits (B, Q, C), offsets (B, Q, 2) or None."""
        model = self.inference_model()
        with self._autocast():
            feat_time = model.encode_intervals(batch["feat_iv"])
            query_time = model.encode_intervals(batch["query_iv"])
            out = model(batch["feats"], feat_time, query_time, batch["feat_pad"], batch["query_pad"])
        logits = out["logits"].float().cpu().numpy()
        offsets = out["offsets"].float().cpu().numpy() if "offsets" in out else None
        return logits, offsets

    def _query_scores(
        self, video: PreparedVideo, intervals: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
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
        with self._threads():
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
        with self._threads():
            for video in tqdm(videos, desc="tim predict", leave=False, disable=None):
                prepared = self._prepare(video, with_targets=False)
                out[video.key] = self._predict_video(prepared)
        return out

    def _predict_video(self, video: PreparedVideo) -> HeadOutput:
        duration = video.source.duration
        seconds = second_intervals(video.source.num_seconds)
        pyramid = self.batcher.pyramid(duration)
        if self.cfg.mode == "recognition" and self.cfg.recognition_proposals == "curve":
            curve, _ = self._query_scores(video, seconds)
            return HeadOutput(curve=curve.astype(np.float32), segments=self._curve_segments(video, curve))
        if self.cfg.mode == "recognition":
            scores, _ = self._query_scores(video, np.concatenate([seconds, pyramid]))
            curve = scores[: len(seconds)]
            cand_scores, bounds = scores[len(seconds) :], pyramid
        else:
            cand_scores, offsets = self._query_scores(video, pyramid)
            bounds = regressed_bounds(pyramid, offsets, duration)
            curve = covering_max_curve(pyramid, bounds, cand_scores, len(seconds))
        segments = top_candidate_segments(self.cfg, bounds, cand_scores)
        return HeadOutput(curve=curve.astype(np.float32), segments=segments)

    def _curve_segments(self, video: PreparedVideo, curve: np.ndarray) -> list[Segment]:
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
        return nms_segments(cfg, bounds, scores, labels)

    def _require_gap(self) -> None:
        if self.feat_gap is None:
            raise RuntimeError("TIM: the model is not trained; call fit() or load() before predicting")

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path) -> None:
        """Inference weights (the average when `ema_decay` > 0) plus what rebuilding needs (stream
        dims, feature gap, config), atomically."""
        state = {
            "model": self.inference_model().state_dict(),
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
        if self.ema is not None:
            self.ema.module.load_state_dict(state["model"])
        self.feat_gap = state["feat_gap"]


__all__ = ["CHECKPOINT", "TimHead"]
