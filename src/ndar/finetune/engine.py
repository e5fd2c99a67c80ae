"""The fine-tuning run: one backbone on the clips of one view, held-out fold validated every epoch.

timm builds the optimizer (AdamW, layer-wise lr decay, no decay on norms/biases), the cosine schedule
with warm-up and mixup/cutmix; DeepSpeed runs the step (ZeRO stage, bf16/fp16/fp32, accumulation,
clipping). Checkpoints are ndar's own (`ndar.finetune.checkpoint`: safetensors + JSON, never a
pickle), with every random stream, so a killed run resumes exactly. The output folder ends up
holding the exported model folder (`model.safetensors` + `model.json`, read by
`ndar.backbones.load_model_folder`), the resolved config, the generated DeepSpeed JSON,
metrics.csv, TensorBoard logs and `checkpoints/`. `best/` beside them is a second model folder, the
weights of the epoch with the highest validation top-1 on the held fold (`best.json` inside says which
epoch and what top-1); extraction uses the final model unless its config selects the best one.
`metrics.json` is written last: its presence marks the run finished.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

from ndar import taxonomy
from ndar.config import config_changes, describe_changes, save_config
from ndar.finetune import checkpoint as ckpt
from ndar.finetune.config import FinetuneConfig
from ndar.finetune.data import ClipDataset, SeededSampler, build_datasets, finetune_spec
from ndar.finetune.distributed import DistInfo, all_gather_objects, barrier, init_distributed
from ndar.finetune.ds_config import build_deepspeed_config
from ndar.utils.device import torch_threads
from ndar.utils.io import read_json, write_json
from ndar.utils.logging import setup_logging
from ndar.utils.runlog import RunLog

log = logging.getLogger(__name__)

DONE_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
BEST_FILE = "best.json"
# the train_epoch columns of metrics.csv that measure time, not training (they differ between runs)
EPOCH_TIMINGS = ("clips_per_s", "data_wait", "first_batch_s", "data_wait_steady")


def is_finished(output: Path) -> bool:
    """A finished run has its summary and its exported model folder."""
    output = Path(output)
    return all((output / name).is_file() for name in (DONE_FILE, "model.safetensors", "model.json"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------- model
def build_model(cfg: FinetuneConfig):
    """(model, spec) for the config: registry defaults, then the config's frames/size/rate/overrides."""
    from ndar.backbones import create_backbone

    m = cfg.model
    overrides = {
        **m.overrides,
        "drop_path_rate": m.drop_path_rate,
        "head_drop_rate": m.head_drop_rate,
        "grad_checkpointing": m.grad_checkpointing,
    }
    spec = finetune_spec(cfg)
    model = create_backbone(
        m.backbone,
        num_classes=taxonomy.NUM_CLASSES,
        num_frames=spec.num_frames,
        img_size=spec.img_size,
        **overrides,
    )
    return model, spec


def load_pretrained(model, cfg: FinetuneConfig, dist: DistInfo) -> None:
    """Load `model.pretrained` (if any) and save the load report beside the run."""
    if cfg.model.pretrained is None:
        log.info("no pretrained checkpoint: training %s from scratch", cfg.model.backbone)
        return
    from ndar.backbones import load_checkpoint

    path = Path(cfg.model.pretrained)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.pretrained: {path} not found (see weights/README.md for the expected files)"
        )
    report = load_checkpoint(model, path, strict_min_fraction=cfg.model.min_loaded_fraction)
    if dist.is_main:
        write_json(cfg.output / "pretrained_report.json", dataclasses.asdict(report))


# ------------------------------------------------------------------------------------------ data
def train_loader(dataset: ClipDataset, cfg: FinetuneConfig, dist: DistInfo) -> DataLoader:
    if dist.world_size > 1:
        order = DistributedSampler(dataset, shuffle=True, seed=cfg.train.seed, drop_last=True)
    else:
        order = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.train.seed))
    # Each clip's augmentation is seeded by (seed, epoch, index), not by a worker's stream, so the
    # workers can persist across epochs and a resumed epoch still augments exactly: restarted each
    # epoch, 14 of them made every epoch wait 1.0-1.4 s for its first batch on a GPU host.
    return DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        sampler=SeededSampler(order, cfg.train.seed),
        drop_last=True,
        num_workers=cfg.data.num_workers,
        persistent_workers=cfg.data.num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


def val_loader(dataset: ClipDataset, cfg: FinetuneConfig, dist: DistInfo) -> DataLoader:
    """This rank's share of the validation rows (rank::world), gathered after the forward passes."""
    shard = Subset(dataset, list(range(dist.rank, len(dataset), dist.world_size)))
    return DataLoader(shard, batch_size=cfg.eval.batch_size, shuffle=False, num_workers=cfg.data.num_workers)


# ------------------------------------------------------------------------------ optimizer & loss
def total_batch(cfg: FinetuneConfig, dist: DistInfo) -> int:
    return cfg.train.batch_size * cfg.train.grad_accum * dist.world_size


def learning_rate(cfg: FinetuneConfig, dist: DistInfo) -> float:
    """optim.lr if given, else base_lr scaled by total batch / 256 (the VideoMAE rule)."""
    if cfg.optim.lr is not None:
        return cfg.optim.lr
    return cfg.optim.base_lr * total_batch(cfg, dist) / 256


def build_optimizer(model, cfg: FinetuneConfig, lr: float):
    from timm.optim import create_optimizer_v2

    o = cfg.optim
    return create_optimizer_v2(
        model,
        opt=o.opt,
        lr=lr,
        weight_decay=o.weight_decay,
        layer_decay=o.layer_decay if o.layer_decay < 1.0 else None,
        betas=tuple(o.betas),
        eps=o.eps,
        filter_bias_and_bn=True,
        **({"fused": True} if o.fused else {}),
    )


def build_engine(model, optimizer, cfg: FinetuneConfig, ds_config: dict):
    """DeepSpeed's engine around the model and optimizer, compiled when `train.compile` asks for it
    (`engine.compile` compiles the wrapped module in place, so state-dict names do not change)."""
    import deepspeed

    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    if cfg.train.compile:
        engine.compile(backend="inductor")
    return engine


def build_scheduler(optimizer, cfg: FinetuneConfig, updates_per_epoch: int):
    from timm.scheduler import create_scheduler_v2

    o = cfg.optim
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched="cosine",
        num_epochs=cfg.train.epochs,
        warmup_epochs=o.warmup_epochs,
        warmup_lr=o.warmup_lr,
        min_lr=o.min_lr,
        step_on_epochs=False,
        updates_per_epoch=updates_per_epoch,
    )
    return scheduler


def build_mixup_and_loss(cfg: FinetuneConfig):
    """(mixup or None, criterion): soft-target CE with mixup/cutmix, else CE with label smoothing."""
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    a = cfg.aug
    if (a.mixup > 0 or a.cutmix > 0) and a.mixup_prob > 0:
        mixup = Mixup(
            mixup_alpha=a.mixup,
            cutmix_alpha=a.cutmix,
            prob=a.mixup_prob,
            switch_prob=a.mixup_switch_prob,
            mode="batch",
            label_smoothing=a.label_smoothing,
            num_classes=taxonomy.NUM_CLASSES,
        )
        return mixup, SoftTargetCrossEntropy()
    return None, torch.nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)


def mix_clips(mixup, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """timm Mixup on clips: (B, 3, T, H, W) is seen as (B, 3T, H, W) so a cutmix box spans all frames."""
    b, c, t, h, w = x.shape
    flat, target = mixup(x.reshape(b, c * t, h, w), y)
    return flat.reshape(b, c, t, h, w), target


# ------------------------------------------------------------------------------- train / eval
def input_dtype(engine) -> torch.dtype:
    if engine.bfloat16_enabled():
        return torch.bfloat16
    if engine.fp16_enabled():
        return torch.float16
    return torch.float32


def train_one_epoch(engine, loader, scheduler, mixup, criterion, cfg, epoch, runlog, dist) -> dict:
    """One pass over the training loader; returns the epoch's mean loss, lr, clips/s and the fraction of
    the epoch spent waiting for the loader (`data_wait`: near 0 when the input pipeline keeps up; the
    step ends with `loss.item()`, which waits for the device, so the two do not overlap). The first
    batch also waits for the workers' start in the first epoch (they persist after it):
    `first_batch_s`; `data_wait_steady` is the fraction after it, the figure a long real epoch approaches."""
    from ndar.utils.progress import progress as tqdm

    engine.train()
    loader.sampler.set_epoch(epoch)
    dtype, device = input_dtype(engine), engine.device
    max_micro = cfg.train.max_steps_per_epoch * cfg.train.grad_accum or len(loader)
    losses, clips, start = [], 0, time.perf_counter()
    waited, ready = 0.0, start  # seconds blocked on the loader; when the last step finished
    first = 0.0  # seconds until the first batch
    # starting an epoch's iteration draws the workers' base seed: from a fork, not the training's stream
    with torch.random.fork_rng(devices=[]):
        batches = iter(loader)
    bar = tqdm(
        batches, total=min(len(loader), max_micro), desc=f"epoch {epoch + 1}", disable=not dist.is_main
    )
    for micro, (x, y) in enumerate(bar):
        if micro >= max_micro:
            break
        waited += time.perf_counter() - ready
        if micro == 0:
            first = time.perf_counter() - start
        scheduler.step_update(num_updates=engine.global_steps)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        target = y
        if mixup is not None:
            x, target = mix_clips(mixup, x, y)
        logits = engine(x.to(dtype))  # (B, 16)
        loss = criterion(logits.float(), target)
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())  # the step's one wait for the device: backward is queued behind forward
        if not math.isfinite(losses[-1]):  # diverged (this step is applied): stop, keep the last checkpoint
            raise FloatingPointError(f"epoch {epoch + 1} step {micro}: loss is {losses[-1]} (lr too high?)")
        clips += x.shape[0]
        lr = max(group["lr"] for group in engine.optimizer.param_groups)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{lr:.2e}")
        update_done = (micro + 1) % cfg.train.grad_accum == 0
        if update_done and engine.global_steps % cfg.train.log_every == 0:
            runlog.add(
                engine.global_steps, {"split": "train", "epoch": epoch + 1, "loss": losses[-1], "lr": lr}
            )
        ready = time.perf_counter()
    seconds = time.perf_counter() - start
    return {
        "loss": float(np.mean(losses)) if losses else float("nan"),
        "lr": lr if losses else float("nan"),
        "clips_per_s": clips * dist.world_size / max(seconds, 1e-9),
        "data_wait": waited / max(seconds, 1e-9),
        "first_batch_s": first,
        "data_wait_steady": (waited - first) / max(seconds - first, 1e-9),
    }


@torch.no_grad()
def predict(engine, loader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probs (N, 16), labels (N,), row indices (N,)) of this rank's validation share."""
    engine.eval()
    dtype, device = input_dtype(engine), engine.device
    probs, labels, rows = [], [], []
    for views, y, index in loader:
        b, v = views.shape[:2]
        logits = engine(views.flatten(0, 1).to(device, dtype))  # (B*V, 16)
        p = logits.float().softmax(-1).view(b, v, -1).mean(1)  # average over segments x crops
        probs.append(p.cpu().numpy())
        labels.append(y.numpy())
        rows.append(index.numpy())
    if not probs:
        return np.zeros((0, taxonomy.NUM_CLASSES), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(rows)


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1, mean per-class accuracy (classes present), per-class accuracy, confusion, NLL."""
    from sklearn.metrics import confusion_matrix

    pred = probs.argmax(1)
    confusion = confusion_matrix(labels, pred, labels=list(range(taxonomy.NUM_CLASSES)))
    support = confusion.sum(1)
    per_class = {
        int(c): float(confusion[c, c] / support[c]) for c in range(taxonomy.NUM_CLASSES) if support[c] > 0
    }
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-8, None)).mean()
    return {
        "top1": float((pred == labels).mean()),
        "mean_class_acc": float(np.mean(list(per_class.values()))),
        "loss": float(nll),
        "per_class_acc": per_class,
        "confusion": confusion.tolist(),
        "num_clips": int(len(labels)),
    }


def evaluate(engine, loader, dist: DistInfo) -> dict | None:
    """Validation metrics over every rank's share (main rank gets them; others None)."""
    shards = all_gather_objects(predict(engine, loader))
    if not dist.is_main:
        return None
    probs = np.concatenate([s[0] for s in shards])
    labels = np.concatenate([s[1] for s in shards])
    return classification_metrics(probs, labels)


# ---------------------------------------------------------------------------- checkpoints
RESUME_IGNORED = ("overwrite", "output", "resume", "data.num_workers")
"""Settings a resumed run may change: where the run lives, how it was asked to start, and how many
loader workers build its batches (each clip's augmentation is seeded by its own key, so the batches
are the same for any number: tested)."""


def check_resume_settings(cfg: FinetuneConfig, folder: Path) -> None:
    """Resume only a checkpoint trained with these settings: one run, one config (never mixed)."""
    changes = config_changes(folder / "config.yaml", cfg, ignore=RESUME_IGNORED)
    if changes:
        raise ValueError(
            f"{folder} was trained with other settings ({describe_changes(changes)}): resume with the "
            "same settings, pass overwrite=true (or resume=none) to start afresh, or choose another output"
        )


def resume_training(engine, folder: Path | None, dist: DistInfo) -> tuple[int, dict | None]:
    """Load checkpoint `folder` (None = fresh); returns (epoch to start from, RNG state to restore)."""
    if folder is None:
        return 0, None
    epoch, rng = ckpt.load_checkpoint(engine, folder, dist.rank, dist.world_size)
    log.info("resumed from %s (epoch %d, %d optimizer steps)", folder, epoch, engine.global_steps)
    return epoch, rng


def sampler_generator(loader: DataLoader) -> torch.Generator | None:
    return getattr(loader.sampler, "generator", None)


def save_training(engine, loader, cfg: FinetuneConfig, ckpt_dir: Path, epoch: int, dist: DistInfo) -> None:
    """Checkpoint `epochNNN` (every rank takes part); older tags beyond `keep_checkpoints` removed."""
    saved = ckpt.save_checkpoint(
        engine, ckpt_dir, epoch, cfg, dist.rank, dist.world_size, sampler_generator(loader), barrier
    )
    if dist.is_main:
        ckpt.prune(ckpt_dir, cfg.train.keep_checkpoints, saved.name)
    barrier()


def fp32_state_dict(engine) -> dict[str, torch.Tensor]:
    """The module's weights in fp32, from the optimizer's master copy where DeepSpeed keeps one
    (ZeRO-1/2 and bf16 hold the module in low precision). Collective: every rank must call it."""
    from deepspeed.utils import safe_get_full_fp32_param

    params = dict(engine.module.named_parameters())
    state = {}
    for name, value in engine.module.state_dict().items():
        full = safe_get_full_fp32_param(params[name]) if name in params else None
        state[name] = (full if full is not None else value).detach().float().cpu()
    return state


def export_model(engine, spec, cfg: FinetuneConfig, dist: DistInfo, folder: Path | None = None) -> None:
    """Write model.safetensors + model.json with fp32 weights (the master copy when one exists) into
    `folder` (default: the run's output). Collective: every rank must call it."""
    state = fp32_state_dict(engine)
    if not dist.is_main:
        return
    from ndar.backbones import save_model_folder

    # building the export model initialises weights from torch's global RNG: fork it, so exporting
    # (the best model mid-training) leaves the training's random stream exactly as it was
    with torch.random.fork_rng(devices=[]):
        export, _ = build_model(cfg)
    export.load_state_dict(state)
    save_model_folder(export.eval(), spec, folder or cfg.output)


def best_so_far(output: Path) -> dict | None:
    """{epoch, top1} of the kept best model, or None. Read from disk so a resumed run keeps
    comparing against the epochs the killed attempt already validated."""
    path = output / BEST_DIR / BEST_FILE
    return read_json(path) if path.is_file() else None


def keep_if_best(engine, spec, cfg: FinetuneConfig, dist: DistInfo, epoch: int, top1: float | None) -> None:
    """Export the model to `best/` when this epoch's validation top-1 beats every earlier one (ties
    keep the earlier epoch). `best.json` is written after the weights, so it never names a model
    folder that is not complete. Collective: `top1` comes from the main rank."""
    top1 = all_gather_objects(top1)[0]
    best = best_so_far(cfg.output) if dist.is_main else None
    better = all_gather_objects(best is None or top1 > best["top1"])[0]
    if not better:
        return
    folder = cfg.output / BEST_DIR
    if dist.is_main:
        (folder / BEST_FILE).unlink(missing_ok=True)
    export_model(engine, spec, cfg, dist, folder)
    if dist.is_main:
        write_json(folder / BEST_FILE, {"epoch": epoch, "top1": float(top1)})
        log.info("epoch %d: new best val top1 %.3f, kept in %s", epoch, top1, folder)
    barrier()


# ----------------------------------------------------------------------------------------- run
def prepare_output(cfg: FinetuneConfig, dist: DistInfo) -> None:
    """Create the folder; with `overwrite`, remove the previous run's marker and checkpoints first;
    with resume=none, forget `latest` so a later auto resume cannot pick up the older run's tags."""
    if dist.is_main:
        cfg.output.mkdir(parents=True, exist_ok=True)
        if cfg.overwrite:
            for name in (DONE_FILE, "metrics.csv"):
                (cfg.output / name).unlink(missing_ok=True)
            for name in (CHECKPOINT_DIR, BEST_DIR):
                shutil.rmtree(cfg.output / name, ignore_errors=True)
        elif cfg.resume == "none":
            (cfg.output / CHECKPOINT_DIR / "latest").unlink(missing_ok=True)
            shutil.rmtree(cfg.output / BEST_DIR, ignore_errors=True)  # the older run's best
        save_config(cfg, cfg.output / "config.yaml")
    barrier()


def check_same_settings(cfg: FinetuneConfig) -> None:
    """A finished output is reused only if it was made with these settings (never silently stale;
    `output` itself may differ: a moved folder holds the same model)."""
    saved = cfg.output / "config.yaml"
    changes = config_changes(saved, cfg, ignore=RESUME_IGNORED) if saved.is_file() else []
    if changes:
        raise ValueError(
            f"{cfg.output} is finished, but with other settings ({describe_changes(changes)}): "
            "pass overwrite=true to train it again with the new ones, or choose another output"
        )


def run(cfg: FinetuneConfig) -> Path:
    """Fine-tune per `cfg`; returns the output folder (skipped when already finished)."""
    cfg.validate()
    cfg.output = Path(cfg.output)
    if is_finished(cfg.output) and not cfg.overwrite:
        check_same_settings(cfg)
        log.info("%s is finished (%s exists): skipping (overwrite=true re-runs it)", cfg.output, DONE_FILE)
        return cfg.output
    resume_from = None if cfg.overwrite else ckpt.resume_folder(cfg.output / CHECKPOINT_DIR, cfg.resume)
    if resume_from is not None:
        check_resume_settings(cfg, resume_from)
    dist = init_distributed(cfg.deepspeed.backend, cfg.deepspeed.cpu_shm_comm)
    prepare_output(cfg, dist)
    if dist.is_main:
        setup_logging(cfg.output / "finetune.log")
    seed_everything(cfg.train.seed + dist.rank)
    with torch_threads(cfg.train.torch_threads):
        model, spec = build_model(cfg)
        load_pretrained(model, cfg, dist)
        train_set, val_set, samples = build_datasets(cfg, spec)
        log.info(
            "view %s fold %d: %d train clips, %d val clips, %d frames x %dpx at rate %d",
            cfg.data.view, cfg.data.fold, len(train_set), len(val_set or []), spec.num_frames, spec.img_size,
            spec.sampling_rate,
        )  # fmt: skip
        return _train(cfg, dist, model, spec, train_set, val_set, resume_from)


def _train(cfg: FinetuneConfig, dist: DistInfo, model, spec, train_set, val_set, resume_from) -> Path:
    loader = train_loader(train_set, cfg, dist)
    updates_per_epoch = max(len(loader) // cfg.train.grad_accum, 1)
    if cfg.train.max_steps_per_epoch:
        updates_per_epoch = min(updates_per_epoch, cfg.train.max_steps_per_epoch)
    lr = learning_rate(cfg, dist)
    optimizer = build_optimizer(model, cfg, lr)
    ds_config = build_deepspeed_config(cfg, dist.world_size)
    if dist.is_main:
        write_json(cfg.output / "deepspeed_config.json", ds_config)
    engine = build_engine(model, optimizer, cfg, ds_config)
    scheduler = build_scheduler(optimizer, cfg, updates_per_epoch)
    mixup, criterion = build_mixup_and_loss(cfg)
    ckpt_dir = cfg.output / CHECKPOINT_DIR
    start_epoch, rng = resume_training(engine, resume_from, dist)
    runlog = RunLog(cfg.output, dist.is_main, start_epoch, int(engine.global_steps))
    vloader = val_loader(val_set, cfg, dist) if val_set is not None else None
    log.info("lr %.3g (total batch %d), %d updates per epoch", lr, total_batch(cfg, dist), updates_per_epoch)
    summary = {"epochs": cfg.train.epochs, "lr": lr, "total_batch": total_batch(cfg, dist)}
    if rng is not None:  # last: nothing above may draw from the streams the next epoch continues
        ckpt.restore_rng_state(rng, sampler_generator(loader))
    for epoch in range(start_epoch, cfg.train.epochs):
        last = epoch + 1 == cfg.train.epochs
        stats = train_one_epoch(engine, loader, scheduler, mixup, criterion, cfg, epoch, runlog, dist)
        runlog.add(engine.global_steps, {"split": "train_epoch", "epoch": epoch + 1, **stats})
        log.info(
            "epoch %d: %.1f clips/s, %.0f%% of it waiting for data (first batch after %.1f s, %.0f%% after it)",
            epoch + 1, stats["clips_per_s"], 100 * stats["data_wait"], stats["first_batch_s"],
            100 * stats["data_wait_steady"],
        )  # fmt: skip
        summary["train"] = stats
        if vloader is not None and ((epoch + 1) % cfg.eval.every == 0 or last):
            metrics = evaluate(engine, vloader, dist)
            keep_if_best(engine, spec, cfg, dist, epoch + 1, metrics["top1"] if metrics else None)
            if metrics is not None:
                scalars = {k: metrics[k] for k in ("top1", "mean_class_acc", "loss")}
                runlog.add(engine.global_steps, {"split": "val", "epoch": epoch + 1, **scalars})
                log.info(
                    "epoch %d: train loss %.4f, val top1 %.3f", epoch + 1, stats["loss"], metrics["top1"]
                )
                summary["val"] = metrics
        if (epoch + 1) % cfg.train.save_every == 0 or last:
            save_training(engine, loader, cfg, ckpt_dir, epoch + 1, dist)
    finish(engine, spec, cfg, dist, summary, runlog)
    return cfg.output


def finish(engine, spec, cfg: FinetuneConfig, dist: DistInfo, summary: dict, runlog: RunLog) -> None:
    """Export the model folder, then write metrics.json (the finished marker) on the main rank."""
    export_model(engine, spec, cfg, dist)
    runlog.close()
    if dist.is_main:
        summary["finished"] = True
        summary["num_updates"] = int(engine.global_steps)
        best = best_so_far(cfg.output)
        if best is not None:
            summary["best"] = {**best, "folder": BEST_DIR}
        if not math.isfinite(summary.get("train", {}).get("loss", 0.0)):
            log.warning("no training step ran in this invocation (already at epoch %d)", cfg.train.epochs)
        write_json(cfg.output / DONE_FILE, summary)
    barrier()
