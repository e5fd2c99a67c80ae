"""Merge the feature folders of fold models into one feature folder: `python -m ndar merge-features`.

Why: with one backbone fine-tuned on all of A1, the A1 features the heads and the ensemble tuner
learn from are in-sample for the backbone (over-confident), while A2 features are not, so whatever
is fitted on A1 trusts the backbone too much on A2. With k fold models per track and view (model f
fine-tuned without the drivers of fold f) and each extracted with `held_out_fold: f`, every A1 video
appears in exactly one fold folder, made by the model that never saw its driver (honest, like A2),
and every A2 video appears in all k folders. The merged folder has the usual layout
(`<track>/<view>/<stem>.npz + .json`, docs/interfaces.md):

- a file present in one source is copied unchanged (the A1 videos);
- a file present in several is averaged: `probs` is the mean of the fold models' probabilities (a
  fold ensemble); `features` is the mean too, but embeddings of separately trained models do not
  share a space, so a head fed merged folders should read `probs` (heads config `inputs: probs`).
  The sidecar JSON lists the fold models (`fold_models`, `checkpoints`) and a combined hash.

Why `--probs entropy-matched` (the main job's default): the mean of k models' probabilities is
flatter than any one of them wherever they disagree (on the synthetic A2, mean window entropy 1.22
nats against 1.04-1.07 for each fold model alone). Everything downstream (the heads, the ensemble's
thresholds) is fitted on the A1 videos, which come from one model each, so it would meet flatter
inputs on A2 than it learned on. The entropy-matched mean keeps the fold ensemble's ranking of the
classes and sharpens it, softmax(log(mean) / T), with the one temperature T per video at which its
mean window entropy equals the fold models' own mean entropy on that video. It uses no label, only
the fold models' outputs on the same video. `--probs mean` keeps the plain mean.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from ndar.extract.outputs import read_features, write_features
from ndar.utils.io import atomic_path, read_json, sha256_file, write_json

log = logging.getLogger(__name__)


def complete_files(root: Path) -> dict[str, Path]:
    """'<track>/<view>/<stem>' -> npz path for every complete pair (npz + json) under `root`."""
    out = {}
    for npz in sorted(Path(root).glob("*/*/*.npz")):
        if npz.name.startswith(".") or not npz.with_suffix(".json").is_file():
            continue
        out[str(npz.relative_to(root).with_suffix(""))] = npz
    return out


def merged_sha256(paths: list[Path], probs_rule: str = "mean") -> str:
    """The checkpoint hash a merged file records: the source's own, or one hash of all fold models'
    and of the rule that merged their probabilities (so a merge with another rule is redone)."""
    shas = [read_json(p.with_suffix(".json")).get("checkpoint_sha256", "") for p in paths]
    if len(shas) == 1:
        return shas[0]
    rule = "" if probs_rule == "mean" else f"|{probs_rule}"
    return hashlib.sha256(("+".join(shas) + rule).encode()).hexdigest()


def is_merged(paths: list[Path], target: Path, probs_rule: str = "mean") -> bool:
    """True when `target` was already merged from the same fold models with the same rule and its
    npz is the one its json describes (resume: nothing to redo)."""
    meta_path = target.with_suffix(".json")
    if not (target.is_file() and meta_path.is_file()):
        return False
    meta = read_json(meta_path)
    return meta.get("checkpoint_sha256") == merged_sha256(paths, probs_rule) and meta.get(
        "npz_sha256"
    ) == sha256_file(target)


def copy_pair(npz: Path, target: Path) -> None:
    """Copy an npz + json pair atomically, json last (as `write_features` writes): a stale json is
    removed first, so a killed copy never leaves a pair that looks complete."""
    target.with_suffix(".json").unlink(missing_ok=True)
    for src, dst in ((npz, target), (npz.with_suffix(".json"), target.with_suffix(".json"))):
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


PROBS_RULES = ("mean", "entropy-matched")


def mean_entropy(probs: np.ndarray) -> float:
    """Mean over windows of the entropy (nats) of (N, C) probabilities."""
    p = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    return float(-(p * np.log(p)).sum(axis=1).mean())


def sharpen(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(probs) / T) per window: T < 1 sharpens, the order of the classes is kept."""
    logits = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def entropy_matched_mean(fold_probs: list[np.ndarray], steps: int = 40) -> tuple[np.ndarray, float]:
    """The fold models' mean probabilities sharpened to their own mean entropy; returns (probs, T).

    Bisection on T in (0, 1]: entropy falls monotonically as T falls. A mean that is not flatter
    than the models (they agree) is returned unchanged with T = 1."""
    mean = np.mean(fold_probs, axis=0)
    target = float(np.mean([mean_entropy(p) for p in fold_probs]))
    if mean_entropy(mean) <= target:
        return mean, 1.0
    low, high = 1e-3, 1.0
    for _ in range(steps):
        mid = 0.5 * (low + high)
        if mean_entropy(sharpen(mean, mid)) > target:
            high = mid
        else:
            low = mid
    temperature = 0.5 * (low + high)
    return sharpen(mean, temperature).astype(np.float32), temperature


def average_files(paths: list[Path], out_npz: Path, probs_rule: str = "mean") -> None:
    """Mean probabilities and features of the same video from several fold models, written to
    out_npz; `probs_rule` "entropy-matched" sharpens the mean probabilities (module docstring)."""
    arrays = [read_features(p) for p in paths]
    metas = [read_json(p.with_suffix(".json")) for p in paths]
    first = arrays[0]
    for path, a in zip(paths[1:], arrays[1:]):
        if a["probs"].shape != first["probs"].shape or not np.allclose(a["t_start"], first["t_start"]):
            raise ValueError(f"{path} and {paths[0]} cover different windows; cannot average them")
    if probs_rule == "entropy-matched":
        probs, temperature = entropy_matched_mean([a["probs"] for a in arrays])
    else:
        probs, temperature = np.mean([a["probs"] for a in arrays], axis=0), 1.0
    meta = {
        **metas[0],
        "checkpoint": [m.get("checkpoint") for m in metas],
        "checkpoint_sha256": merged_sha256(paths, probs_rule),
        "fold_models": [str(p.parents[2]) for p in paths],
        "merged": "probs and features averaged over the fold models (features do not share a space)",
        "probs_rule": probs_rule,
        "probs_temperature": round(temperature, 6),
    }
    out_npz.with_suffix(".json").unlink(missing_ok=True)  # never a stale json beside a new npz
    write_features(
        out_npz,
        out_npz.with_suffix(".json"),
        np.mean([a["features"].astype(np.float32) for a in arrays], axis=0),
        probs,
        first["t_start"],
        first["t_end"],
        meta,
    )


def merge_fold_features(sources: list[Path], out: Path, probs_rule: str = "mean") -> dict:
    """Merge fold feature folders `sources` into `out`; returns counts {copied, averaged, skipped}.

    A target already merged from the same fold models with the same rule is skipped, so re-running
    resumes."""
    if probs_rule not in PROBS_RULES:
        raise ValueError(f"probs rule {probs_rule!r}: expected one of {PROBS_RULES}")
    if len(sources) < 2:
        raise ValueError(f"merge needs at least two fold folders, got {sources}")
    found: dict[str, list[Path]] = defaultdict(list)
    for source in sources:
        files = complete_files(Path(source))
        if not files:
            raise FileNotFoundError(f"{source}: no complete feature files (run `ndar extract` first)")
        for name, path in files.items():
            found[name].append(path)
    counts = {"copied": 0, "averaged": 0, "skipped": 0}
    for name, paths in sorted(found.items()):
        target = Path(out) / f"{name}.npz"
        target.parent.mkdir(parents=True, exist_ok=True)
        if is_merged(paths, target, probs_rule):
            counts["skipped"] += 1
        elif len(paths) == 1:
            copy_pair(paths[0], target)
            counts["copied"] += 1
        else:
            average_files(paths, target, probs_rule)
            counts["averaged"] += 1
    summary = {"sources": [str(s) for s in sources], "probs_rule": probs_rule, **counts}
    write_json(Path(out) / "merge.json", summary)
    log.info("merged %d fold folders into %s: %s", len(sources), out, counts)
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="merged feature folder")
    parser.add_argument(
        "--probs",
        choices=PROBS_RULES,
        default="mean",
        help="how the fold models' probabilities of a video are merged (module docstring)",
    )
    parser.add_argument("sources", nargs="+", help="feature folders of the fold models")


def main(args: argparse.Namespace) -> int:
    from ndar.utils.logging import setup_logging

    setup_logging()
    counts = merge_fold_features([Path(s) for s in args.sources], Path(args.out), args.probs)
    print(
        f"merge-features: {counts['copied']} copied, {counts['averaged']} averaged, "
        f"{counts['skipped']} already merged -> {args.out}"
    )
    return 0
