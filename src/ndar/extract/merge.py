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


def merged_sha256(paths: list[Path]) -> str:
    """The checkpoint hash a merged file records: the source's own, or one hash of all fold models'."""
    shas = [read_json(p.with_suffix(".json")).get("checkpoint_sha256", "") for p in paths]
    return shas[0] if len(shas) == 1 else hashlib.sha256("+".join(shas).encode()).hexdigest()


def is_merged(paths: list[Path], target: Path) -> bool:
    """True when `target` was already merged from the same fold models and its npz is the one its
    json describes (resume: nothing to redo)."""
    meta_path = target.with_suffix(".json")
    if not (target.is_file() and meta_path.is_file()):
        return False
    meta = read_json(meta_path)
    return meta.get("checkpoint_sha256") == merged_sha256(paths) and meta.get("npz_sha256") == sha256_file(
        target
    )


def copy_pair(npz: Path, target: Path) -> None:
    """Copy an npz + json pair atomically, json last (as `write_features` writes): a stale json is
    removed first, so a killed copy never leaves a pair that looks complete."""
    target.with_suffix(".json").unlink(missing_ok=True)
    for src, dst in ((npz, target), (npz.with_suffix(".json"), target.with_suffix(".json"))):
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def average_files(paths: list[Path], out_npz: Path) -> None:
    """Mean probabilities and features of the same video from several fold models, written to out_npz."""
    arrays = [read_features(p) for p in paths]
    metas = [read_json(p.with_suffix(".json")) for p in paths]
    first = arrays[0]
    for path, a in zip(paths[1:], arrays[1:]):
        if a["probs"].shape != first["probs"].shape or not np.allclose(a["t_start"], first["t_start"]):
            raise ValueError(f"{path} and {paths[0]} cover different windows; cannot average them")
    meta = {
        **metas[0],
        "checkpoint": [m.get("checkpoint") for m in metas],
        "checkpoint_sha256": merged_sha256(paths),
        "fold_models": [str(p.parents[2]) for p in paths],
        "merged": "probs and features averaged over the fold models (features do not share a space)",
    }
    out_npz.with_suffix(".json").unlink(missing_ok=True)  # never a stale json beside a new npz
    write_features(
        out_npz,
        out_npz.with_suffix(".json"),
        np.mean([a["features"].astype(np.float32) for a in arrays], axis=0),
        np.mean([a["probs"] for a in arrays], axis=0),
        first["t_start"],
        first["t_end"],
        meta,
    )


def merge_fold_features(sources: list[Path], out: Path) -> dict:
    """Merge fold feature folders `sources` into `out`; returns counts {copied, averaged, skipped}.

    A target already merged from the same fold models is skipped, so re-running resumes."""
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
        if is_merged(paths, target):
            counts["skipped"] += 1
        elif len(paths) == 1:
            copy_pair(paths[0], target)
            counts["copied"] += 1
        else:
            average_files(paths, target)
            counts["averaged"] += 1
    write_json(Path(out) / "merge.json", {"sources": [str(s) for s in sources], **counts})
    log.info("merged %d fold folders into %s: %s", len(sources), out, counts)
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="merged feature folder")
    parser.add_argument("sources", nargs="+", help="feature folders of the fold models")


def main(args: argparse.Namespace) -> int:
    from ndar.utils.logging import setup_logging

    setup_logging()
    counts = merge_fold_features([Path(s) for s in args.sources], Path(args.out))
    print(
        f"merge-features: {counts['copied']} copied, {counts['averaged']} averaged, "
        f"{counts['skipped']} already merged -> {args.out}"
    )
    return 0
