"""The k-fold loop of the temporal heads, writing a prediction source (docs/interfaces.md).

Per fold (folds by driver, `ndar.data.folds.assign_folds`): fit the head on the other folds, predict
the held-out fold (out-of-fold, OOF) and A2 (test). Every A1 session is predicted exactly once, by
the one model that never saw its driver; A2 curves are averaged over the fold models and their
segments pooled and merged by per-class Soft-NMS. A finished fold (model + predictions on disk) is
skipped when the run is started again.

Output folder (`cfg.out`):
    config.yaml, heads.log, metrics.json, metrics.csv   resolved config, log, fold + overall metrics
    oof/{curves.npz,segments.csv}, test/...              the prediction source
    folds/fold_<k>/{model.pt, fold.json, metrics.csv, tb/, oof/, test/}   per-fold model and outputs
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ndar.config import describe_changes, dict_changes, save_config, to_dict
from ndar.data.folds import assign_folds
from ndar.formats.predictions import read_predictions, segments_frame, write_predictions
from ndar.heads.base import FeatureVideo, HeadOutput, build_head, check_output
from ndar.heads.config import HeadsConfig, head_config
from ndar.postprocess.softnms import batched_soft_nms
from ndar.resume import SettingsChanged, refuse_other_settings, saved_settings
from ndar.utils.io import read_json, write_json
from ndar.utils.logging import setup_logging
from ndar.utils.progress import progress as tqdm

log = logging.getLogger(__name__)


def resolved(cfg: HeadsConfig) -> dict:
    """The run config with the head's section filled with every default (what config.yaml holds)."""
    data = to_dict(cfg)
    data[cfg.head] = to_dict(head_config(cfg))
    return data


# ----------------------------------------------------------------------------------------- data


def load_videos(cfg: HeadsConfig) -> tuple[list[FeatureVideo], list[FeatureVideo]]:
    from ndar.heads.data import load_feature_videos

    a1 = load_feature_videos(
        cfg.data_root,
        cfg.features_root,
        cfg.feature_sets,
        "A1",
        cfg.labels_dir,
        cfg.trim_mismatch,
        cfg.inputs,
    )
    a2: list[FeatureVideo] = []
    if cfg.predict_test:
        a2 = load_feature_videos(
            cfg.data_root,
            cfg.features_root,
            cfg.feature_sets,
            "A2",
            cfg.labels_dir,
            cfg.trim_mismatch,
            cfg.inputs,
        )
    return a1, a2


def extra_train_sets(cfg: HeadsConfig) -> list[list[str]]:
    """`feature_sets` with their track replaced by each of `extra_train_tracks` (the own track skipped)."""
    from ndar.formats.features import parse_feature_set

    if not cfg.extra_train_tracks:
        return []
    parsed = [parse_feature_set(s) for s in cfg.feature_sets]
    own = {track for track, _ in parsed}
    if len(own) != 1:
        raise ValueError(f"extra_train_tracks needs feature_sets of one track; got {list(cfg.feature_sets)}")
    if cfg.inputs == "features":
        raise ValueError(
            "extra_train_tracks needs inputs: probs or log_probs (the embeddings of different backbones "
            "do not share a space)"
        )
    return [[f"{track}/{view}" for _, view in parsed] for track in cfg.extra_train_tracks if track not in own]


def load_extra_train_videos(cfg: HeadsConfig) -> list[FeatureVideo]:
    """The A1 sessions as each extra track sees them, streams named as the main sets' streams (the
    head takes them as the same inputs), keys `<session>+<track>`."""
    from ndar.formats.features import parse_feature_set, stream_names
    from ndar.heads.data import load_feature_videos

    main_names = list(stream_names(list(cfg.feature_sets)).values())
    extra: list[FeatureVideo] = []
    for sets in extra_train_sets(cfg):
        names = list(stream_names(sets).values())
        rename = dict(zip(names, main_names))
        videos = load_feature_videos(
            cfg.data_root, cfg.features_root, sets, "A1", cfg.labels_dir, cfg.trim_mismatch, cfg.inputs
        )
        track = parse_feature_set(sets[0])[0]
        for video in videos:
            video.streams = {rename[name]: arr for name, arr in video.streams.items()}
            video.key = f"{video.key}+{track}"
        extra += videos
    return extra


def extra_for(extra: list[FeatureVideo], train: list[FeatureVideo]) -> list[FeatureVideo]:
    """The extra sequences of the sessions in `train` (never those of a held-out session)."""
    keys = {v.key for v in train}
    return [v for v in extra if v.key.rsplit("+", 1)[0] in keys]


def split_folds(videos: list[FeatureVideo], k: int, seed: int) -> dict[int, list[FeatureVideo]]:
    """fold -> held-out videos, by driver."""
    folds = assign_folds([v.driver for v in videos], k, seed)
    held: dict[int, list[FeatureVideo]] = {f: [] for f in range(k)}
    for video in videos:
        held[folds[video.driver]].append(video)
    return held


def stream_dims(videos: list[FeatureVideo]) -> dict[str, int]:
    """Stream name -> feature dimension, checked to agree across videos."""
    dims: dict[str, int] = {}
    for video in videos:
        for name, arr in video.streams.items():
            if dims.setdefault(name, arr.shape[1]) != arr.shape[1]:
                raise ValueError(
                    f"video {video.key}: stream {name!r} has dim {arr.shape[1]}, others {dims[name]}"
                )
    return dims


# -------------------------------------------------------------------------------------- metrics


def ground_truth_frame(videos: list[FeatureVideo]) -> pd.DataFrame:
    rows = [(v.key, s.label, s.start, s.end) for v in videos for s in v.segments if s.label != 0]
    return pd.DataFrame(rows, columns=["video", "label", "start", "end"])


def best_segment_per_class(segments: pd.DataFrame) -> pd.DataFrame:
    """The highest-scoring segment of each (video, class): every class occurs once per video."""
    if segments.empty:
        return segments
    order = segments.sort_values("score", ascending=False, kind="stable")
    return order.drop_duplicates(["video", "label"]).sort_values(["video", "start"], kind="stable")


def curve_segments(curves: dict[str, np.ndarray], cfg: HeadsConfig) -> pd.DataFrame:
    """The simple one-segment-per-class rule (`ndar.postprocess`) applied to every curve."""
    from ndar.postprocess import one_segment_per_class

    return segments_frame(
        {
            key: one_segment_per_class(c, threshold=cfg.curve_threshold, smooth=cfg.curve_smooth)
            for key, c in curves.items()
        }
    )


def score_predictions(
    cfg: HeadsConfig, videos: list[FeatureVideo], curves: dict[str, np.ndarray], segments: pd.DataFrame
) -> dict:
    """mAP@tIoU of the head's segments; mOS of the curves after the one-segment-per-class rule
    (`mOS`) and of the head's best segment per class (`mOS_segments`)."""
    from ndar.metrics.mos import mos
    from ndar.metrics.tmap import temporal_map

    gt = ground_truth_frame(videos)
    keys = {v.key for v in videos}
    pred = segments[segments["video"].isin(keys)]
    tmap = temporal_map(gt, pred, tious=tuple(cfg.tious))
    result: dict[str, Any] = {k: v for k, v in tmap.items() if k.startswith("mAP")}
    result["mOS"] = float(mos(gt, curve_segments({k: curves[k] for k in keys}, cfg)).mos)
    result["mOS_segments"] = float(mos(gt, best_segment_per_class(pred)).mos)
    result["per_class_ap"] = {label: float(np.mean(aps)) for label, aps in tmap["per_class"].items()}
    result["n_videos"] = len(videos)
    return result


# ------------------------------------------------------------------------------------ one fold


def fold_dir(cfg: HeadsConfig, fold: int) -> Path:
    return Path(cfg.out) / "folds" / f"fold_{fold}"


def features_digest(cfg: HeadsConfig) -> str:
    """One hash of the feature files of every set the head reads (`feature_files_digest`): it
    changes when the features are re-extracted or re-merged with the same settings."""
    from ndar.formats.features import feature_files_digest

    sets = list(cfg.feature_sets) + [s for extra in extra_train_sets(cfg) for s in extra]
    return feature_files_digest([Path(cfg.features_root) / s for s in sets])


def fold_done(cfg: HeadsConfig, fold: int) -> bool:
    """The fold's model and predictions are there (`discard_stale_fold` first removes a fold made
    from other feature files)."""
    folder = fold_dir(cfg, fold)
    needed = [folder / "fold.json", folder / "model.pt", folder / "oof" / "segments.csv"]
    if cfg.predict_test:
        needed.append(folder / "test" / "segments.csv")
    return all(p.exists() for p in needed)


def discard_stale_fold(cfg: HeadsConfig, fold: int) -> None:
    """Remove a finished fold trained on other feature files (its model, its checkpoints, its
    predictions), so it is trained again from scratch rather than resumed from the old model."""
    info = fold_dir(cfg, fold) / "fold.json"
    if info.is_file() and read_json(info).get("features_sha256") != features_digest(cfg):
        log.info("fold %d: the feature files changed since it was trained; training it again", fold)
        shutil.rmtree(fold_dir(cfg, fold))


def outputs_to_source(outputs: dict[str, HeadOutput]) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    curves = {key: out.curve for key, out in outputs.items()}
    return curves, segments_frame({key: out.segments for key, out in outputs.items()})


def predict_checked(head: Any, videos: list[FeatureVideo]) -> dict[str, HeadOutput]:
    if not videos:
        return {}
    outputs = head.predict(videos)
    for video in videos:
        if video.key not in outputs:
            raise RuntimeError(f"head returned no prediction for video {video.key}")
        check_output(video.key, outputs[video.key], video.duration)
    return outputs


def train_fold(
    cfg: HeadsConfig, fold: int, train: list[FeatureVideo], held: list[FeatureVideo], test: list[FeatureVideo]
) -> dict:
    """Fit one fold's model, save it, write its OOF and test predictions and fold.json."""
    folder = fold_dir(cfg, fold)
    folder.mkdir(parents=True, exist_ok=True)
    features_sha256 = features_digest(cfg)  # what it is trained on, recorded for the resume
    started = time.time()
    head = build_head(cfg.head, head_config(cfg), stream_dims(train), cfg.seed + fold)
    history = head.fit(train, held, folder)
    head.save(folder / "model.pt")
    fit_s = time.time() - started
    predict_fold(cfg, fold, head, held, test)
    info = {
        "fold": fold,
        "train": sorted(v.key for v in train),
        "held_out": sorted(v.key for v in held),
        "fit_seconds": fit_s,
        "history": history,
        "features_sha256": features_sha256,
    }
    write_json(folder / "fold.json", info)
    return info


def predict_fold(
    cfg: HeadsConfig, fold: int, head: Any, held: list[FeatureVideo], test: list[FeatureVideo]
) -> None:
    folder = fold_dir(cfg, fold)
    write_predictions(folder, "oof", *outputs_to_source(predict_checked(head, held)))
    if cfg.predict_test:
        write_predictions(folder, "test", *outputs_to_source(predict_checked(head, test)))


def load_fold_head(cfg: HeadsConfig, fold: int, videos: list[FeatureVideo]) -> Any:
    path = fold_dir(cfg, fold) / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"fold {fold} has no trained model at {path}; run `heads train` first")
    head = build_head(cfg.head, head_config(cfg), stream_dims(videos), cfg.seed + fold)
    head.load(path)
    return head


# ------------------------------------------------------------------------------- combine folds


def merge_test(cfg: HeadsConfig, folds: list[int]) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Average the fold models' A2 curves; pool their segments and merge them by per-class Soft-NMS."""
    curves: dict[str, list[np.ndarray]] = {}
    pooled = []
    for fold in folds:
        fold_curves, fold_segments = read_predictions(fold_dir(cfg, fold), "test")
        for key, curve in fold_curves.items():
            curves.setdefault(key, []).append(curve)
        pooled.append(fold_segments)
    mean_curves = {key: np.mean(stack, axis=0).astype(np.float32) for key, stack in curves.items()}
    segments = pd.concat(pooled, ignore_index=True) if pooled else pd.DataFrame()
    merged: dict[str, list[tuple[int, float, float, float]]] = {key: [] for key in mean_curves}
    for key, group in segments.groupby("video", sort=True) if len(segments) else []:
        segs, scores, labels = batched_soft_nms(
            group[["start", "end"]].to_numpy(),
            group["score"].to_numpy(),
            group["label"].to_numpy(),
            sigma=cfg.merge_sigma,
            max_keep=cfg.max_segments,
        )
        merged[key] = [
            (int(lab), float(s), float(e), float(sc)) for (s, e), sc, lab in zip(segs, scores, labels)
        ]
    return mean_curves, segments_frame(merged)


def merge_oof(
    cfg: HeadsConfig, folds: list[int], a1: list[FeatureVideo]
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Concatenate the folds' OOF predictions; every A1 session must appear exactly once."""
    curves: dict[str, np.ndarray] = {}
    frames = []
    for fold in folds:
        fold_curves, fold_segments = read_predictions(fold_dir(cfg, fold), "oof")
        twice = sorted(set(curves) & set(fold_curves))
        if twice:
            raise RuntimeError(f"OOF: sessions {twice} predicted by more than one fold")
        curves.update(fold_curves)
        frames.append(fold_segments)
    missing = sorted({v.key for v in a1} - set(curves))
    if missing:
        raise RuntimeError(f"OOF: sessions {missing} were predicted by no fold")
    return curves, pd.concat(frames, ignore_index=True)


def write_source(
    cfg: HeadsConfig,
    a1: list[FeatureVideo],
    held: dict[int, list[FeatureVideo]],
    folds: list[int],
    fit_seconds: dict,
) -> dict:
    """Write oof/, test/ and the metrics of every fold and overall."""
    out = Path(cfg.out)
    metrics: dict[str, Any] = {"head": cfg.head, "feature_sets": list(cfg.feature_sets), "folds": {}}
    rows = []
    for fold in folds:
        fold_curves, fold_segments = read_predictions(fold_dir(cfg, fold), "oof")
        fold_metrics = score_predictions(cfg, held[fold], fold_curves, fold_segments)
        fold_metrics["fit_seconds"] = fit_seconds.get(fold)
        metrics["folds"][str(fold)] = fold_metrics
        rows.append({"fold": str(fold), **{k: v for k, v in fold_metrics.items() if not isinstance(v, dict)}})
    if sorted(folds) == list(range(cfg.folds)):
        curves, segments = merge_oof(cfg, folds, a1)
        write_predictions(out, "oof", curves, segments)
        metrics["overall"] = score_predictions(cfg, a1, curves, segments)
        rows.append(
            {"fold": "overall", **{k: v for k, v in metrics["overall"].items() if not isinstance(v, dict)}}
        )
    else:
        log.warning("only folds %s were run: no OOF prediction source written", folds)
    if cfg.predict_test and folds:
        write_predictions(out, "test", *merge_test(cfg, folds))
    write_json(out / "metrics.json", metrics)
    pd.DataFrame(rows).to_csv(out / "metrics.csv", index=False)
    return metrics


# ----------------------------------------------------------------------------------- commands


def check_same_settings(cfg: HeadsConfig) -> None:
    """Fold models already in `out` are reused only if they were trained with these settings
    (`only_folds` may differ: several processes may share one `out`, each with its own folds; `out`
    itself may differ: a moved folder holds the same models); `overwrite` removes them all first."""
    saved, folds = Path(cfg.out) / "config.yaml", Path(cfg.out) / "folds"
    if not saved.is_file() or not folds.is_dir() or not any(folds.iterdir()):
        return
    refuse_other_settings(
        "heads",
        cfg.out,
        resolved(cfg),
        saved_settings(saved),
        cfg.overwrite,
        RESUME_IGNORED,
    )
    if cfg.overwrite:
        log.info("heads: overwrite=true: removing the fold models in %s", folds)
        shutil.rmtree(folds)


# Keys left out when finished fold models are compared with the settings of a new run. `trim_mismatch`
# too: with it off a run finishes only if no session's views differ in length, and then it on gives
# the same models, so turning it on (as the main job does) must not refuse finished folds.
RESUME_IGNORED = ("only_folds", "out", "overwrite", "trim_mismatch")
# Keys that only shape how the fold models' outputs are pooled and scored: predict may change them.
PREDICT_ONLY_KEYS = (
    "predict_test",
    "merge_sigma",
    "max_segments",
    "tious",
    "curve_threshold",
    "curve_smooth",
)


def check_trained_settings(cfg: HeadsConfig) -> None:
    """`heads predict` reuses the fold models as they are, so it takes the settings they were trained
    with (config.yaml): with others (say another fold_seed, which would let a model predict drivers
    it trained on) it would write predictions they do not describe and record those settings as the
    models', so a later `heads train` would resume them as if trained that way."""
    saved = saved_settings(Path(cfg.out) / "config.yaml")
    if saved is None:
        return
    changes = dict_changes(saved, resolved(cfg), (*RESUME_IGNORED, *PREDICT_ONLY_KEYS))
    if changes:
        raise SettingsChanged(
            f"heads predict: the fold models in {cfg.out} were trained with other settings "
            f"({describe_changes(changes)}): predict with those, or train again (heads train overwrite=true)"
        )


def start_run(cfg: HeadsConfig) -> None:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out / "heads.log")
    save_config(resolved(cfg), out / "config.yaml")


def folds_to_run(cfg: HeadsConfig) -> list[int]:
    bad = [f for f in cfg.only_folds if not 0 <= f < cfg.folds]
    if bad:
        raise ValueError(f"only_folds {bad} outside 0..{cfg.folds - 1}")
    return sorted(cfg.only_folds) if cfg.only_folds else list(range(cfg.folds))


def run_folds(
    cfg: HeadsConfig,
    a1: list[FeatureVideo],
    a2: list[FeatureVideo],
    retrain: bool = True,
    extra: list[FeatureVideo] | None = None,
) -> dict:
    """Fit (or, with retrain=False, only reload) every fold, then write the prediction source.

    `extra`: more training sequences (`load_extra_train_videos`); a fold uses those of its training
    sessions."""
    held = split_folds(a1, cfg.folds, cfg.fold_seed)
    folds = folds_to_run(cfg)
    fit_seconds: dict[int, float] = {}
    for fold in tqdm(folds, desc=f"{cfg.head} folds", unit="fold"):
        own = [v for f, vs in held.items() if f != fold for v in vs]
        train = own + extra_for(extra or [], own)
        info_path = fold_dir(cfg, fold) / "fold.json"
        if retrain:
            discard_stale_fold(cfg, fold)
        if retrain and not fold_done(cfg, fold):
            log.info(
                "fold %d: training on %d sessions (+%d extra sequences), holding out %d",
                fold, len(own), len(train) - len(own), len(held[fold]),
            )  # fmt: skip
            fit_seconds[fold] = train_fold(cfg, fold, train, held[fold], a2)["fit_seconds"]
            continue
        if retrain:
            log.info("fold %d: already finished (%s); skipped", fold, info_path)
        else:
            predict_fold(cfg, fold, load_fold_head(cfg, fold, a1), held[fold], a2)
        if info_path.is_file():
            fit_seconds[fold] = read_json(info_path).get("fit_seconds")
    metrics = write_source(cfg, a1, held, folds, fit_seconds)
    if "overall" in metrics:
        overall = metrics["overall"]
        log.info("%s OOF: mAP %.4f, mOS %.4f", cfg.head, overall["mAP"], overall["mOS"])
    return metrics


def run_train(cfg: HeadsConfig) -> dict:
    """`heads train`: fit every fold not yet finished, predict OOF and A2, write the prediction source."""
    check_same_settings(cfg)
    start_run(cfg)
    extra = load_extra_train_videos(cfg)  # first: its config errors come before any loading
    a1, a2 = load_videos(cfg)
    return run_folds(cfg, a1, a2, retrain=True, extra=extra)


def run_predict(cfg: HeadsConfig) -> dict:
    """`heads predict`: reload the trained fold models and rewrite the predictions (e.g. new A2 features)."""
    check_trained_settings(cfg)
    start_run(cfg)
    a1, a2 = load_videos(cfg)
    return run_folds(cfg, a1, a2, retrain=False)


def run(cfg: HeadsConfig) -> dict:
    return run_train(cfg)
