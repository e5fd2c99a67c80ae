"""`run(cfg)`: train the per-second baseline on A1, predict A2, write a scored submission.

Steps: per session, per-second features of the chosen views (concatenated); labels per second from
the A1 segments; a standardised scikit-learn classifier; per-second class probabilities on A2;
`ndar.postprocess.one_segment_per_class`; `ndar.submission.write_submission`; `ndar.metrics.mos`.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ndar.baseline.config import BaselineConfig
from ndar.baseline.features import add_context, per_second_features, read_grey_thumbnails
from ndar.config import check_limits, save_config, to_dict
from ndar.data.records import SessionRecord
from ndar.resume import saved_settings, should_skip
from ndar.taxonomy import NUM_CLASSES
from ndar.utils.io import read_json, write_json
from ndar.utils.progress import progress as tqdm

log = logging.getLogger(__name__)

# settings that do not change the results: where they go, how many processes decode
RESUME_IGNORED = ("overwrite", "out", "workers")


def session_features(session: SessionRecord, cfg: BaselineConfig) -> dict[str, np.ndarray]:
    """{view: (S, D)} per-second features of one session's chosen views, cut to the shortest view."""
    parts = {}
    for view in cfg.views:
        record = session.views.get(view)
        if record is None:
            raise ValueError(
                f"session {session.key} ({session.split}) has no {view!r} video; views: {sorted(session.views)}"
            )
        frames, fps = read_grey_thumbnails(record.path, cfg.thumb_width, cfg.thumb_height)
        parts[view] = per_second_features(frames, fps, cfg.normalise_per_video)
    seconds = min(len(p) for p in parts.values())
    return {view: p[:seconds] for view, p in parts.items()}


def view_groups(cfg: BaselineConfig) -> list[list[str]]:
    """Late fusion: one classifier per view; early fusion: one classifier on all views side by side."""
    if cfg.fusion == "late":
        return [[view] for view in cfg.views]
    if cfg.fusion == "early":
        return [list(cfg.views)]
    raise ValueError(f"baseline: fusion must be 'late' or 'early', got {cfg.fusion!r}")


def group_features(per_view: dict[str, np.ndarray], group: list[str], context: int) -> np.ndarray:
    """(S, D) the group's views concatenated, with the +-context mean appended."""
    return add_context(np.concatenate([per_view[v] for v in group], axis=1), context)


def _features_of(sessions: list[SessionRecord], cfg: BaselineConfig) -> dict[str, dict[str, np.ndarray]]:
    """Features of every session, `cfg.workers` processes in parallel (order-independent results)."""
    keys = [s.key for s in sessions]
    if cfg.workers <= 1 or len(sessions) < 2:
        feats = [session_features(s, cfg) for s in tqdm(sessions, desc="baseline features", unit="session")]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=context) as pool:
            jobs = pool.map(session_features, sessions, [cfg] * len(sessions))
            feats = list(tqdm(jobs, total=len(sessions), desc="baseline features", unit="session"))
    return dict(zip(keys, feats))


def labels_per_second(session: SessionRecord, seconds: int) -> np.ndarray:
    """(S,) class of each second [s, s+1): the segment containing its centre, else 0."""
    labels = np.zeros(seconds, dtype=np.int64)
    centres = np.arange(seconds) + 0.5
    for seg in session.segments:
        labels[(centres >= seg.start) & (centres < seg.end)] = seg.label
    return labels


def make_classifier(cfg: BaselineConfig):
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if cfg.classifier == "logreg":
        return make_pipeline(
            StandardScaler(),
            PCA(n_components=cfg.pca, random_state=cfg.seed),
            LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, random_state=cfg.seed),
        )
    if cfg.classifier == "random_forest":
        return RandomForestClassifier(
            n_estimators=cfg.n_estimators, min_samples_leaf=2, n_jobs=1, random_state=cfg.seed
        )
    raise ValueError(f"baseline: classifier must be 'logreg' or 'random_forest', got {cfg.classifier!r}")


def full_curve(model, features: np.ndarray) -> np.ndarray:
    """(S, 16) probabilities, with zero columns for classes the training set lacked."""
    probs = model.predict_proba(features)
    curve = np.zeros((len(features), NUM_CLASSES), dtype=np.float32)
    curve[:, model.classes_] = probs
    return curve


def _load(root: Path, split: str):
    from ndar.data.discover import load_dataset

    index = load_dataset(root, split)
    if index.errors:
        raise ValueError(
            f"{root} {split}: dataset has errors:\n" + "\n".join(str(i) for i in index.errors[:20])
        )
    if not index.sessions:
        raise ValueError(f"{root} {split}: no sessions found")
    return index.sessions


def run(cfg: BaselineConfig) -> dict:
    """Train, predict, write `submission.txt`, `metrics.json`, `config.yaml`, `curves.npz` into cfg.out."""
    from ndar.metrics import mos
    from ndar.postprocess import one_segment_per_class
    from ndar.submission import read_submission, write_submission

    check_limits(cfg, "baseline")  # before the settings are recorded: a typo must not stick to `out`
    out = Path(cfg.out)
    metrics_path = out / "metrics.json"
    saved = saved_settings(out / "config.yaml")
    if should_skip("baseline", out, cfg, saved, metrics_path.is_file(), cfg.overwrite, RESUME_IGNORED):
        return read_json(metrics_path)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    timings: dict[str, float] = {}

    start = time.perf_counter()
    train_sessions = _load(Path(cfg.data_root), "A1")
    test_sessions = _load(Path(cfg.data_root), "A2")
    all_feats = _features_of(train_sessions + test_sessions, cfg)
    train_y = [labels_per_second(s, len(next(iter(all_feats[s.key].values())))) for s in train_sessions]
    timings["features_s"] = time.perf_counter() - start

    start = time.perf_counter()
    curves: dict[str, np.ndarray] = {}
    groups = view_groups(cfg)
    # One BLAS thread: on a small, busy CPU, threaded BLAS made the fit 10x slower (docs/baseline.md).
    with threadpool_limits(limits=1):
        models = fit_groups(cfg, groups, [all_feats[s.key] for s in train_sessions], train_y)
        for s in test_sessions:
            curves[s.key] = fused_curve(cfg, models, groups, all_feats[s.key])
    timings["fit_predict_s"] = time.perf_counter() - start
    oof = None
    if cfg.oof_folds:
        start = time.perf_counter()
        oof = out_of_fold_mos(cfg, train_sessions, all_feats, train_y, groups)
        timings["oof_s"] = time.perf_counter() - start

    rows = []
    for session in test_sessions:
        if session.video_id is None:
            raise ValueError(f"A2 session {session.key} has no video id (is it listed in A2/video_ids.csv?)")
        for label, seg_start, seg_end, _score in one_segment_per_class(
            curves[session.key], cfg.threshold, cfg.smooth, cfg.min_len
        ):
            rows.append((session.video_id, label, seg_start, seg_end))
    submission = write_submission(out / "submission.txt", rows)
    np.savez_compressed(out / "curves.npz", **curves)

    gt_path = Path(cfg.ground_truth) if cfg.ground_truth else Path(cfg.data_root) / "A2_ground_truth.txt"
    metrics: dict = {
        "config": to_dict(cfg),
        "n_train_seconds": int(sum(len(y) for y in train_y)),
        "timings": timings,
    }
    if oof is not None:
        metrics["oof"] = oof
        log.info("baseline: A1 out-of-fold mOS %.4f (%d folds by driver)", oof["mOS"], cfg.oof_folds)
    if gt_path.is_file():
        result = mos(read_submission(gt_path), read_submission(submission))
        metrics |= result.to_dict()
        truth_rows = read_submission(gt_path)
        metrics["a2_second_accuracy"] = _second_accuracy(truth_rows, test_sessions, curves)
        log.info(
            "baseline: mOS %.4f on %d A2 sessions (%s, %s fusion)",
            result.mos,
            len(test_sessions),
            "+".join(cfg.views),
            cfg.fusion,
        )
    else:
        log.warning("baseline: no ground truth at %s; submission written unscored", gt_path)
        metrics["mOS"] = None
    write_json(metrics_path, metrics)
    return metrics


def fit_groups(cfg: BaselineConfig, groups, feats: list[dict], labels: list[np.ndarray]) -> list:
    """One classifier per view group, trained on the given sessions' seconds."""
    models = []
    for group in groups:
        model = make_classifier(cfg)
        model.fit(
            np.concatenate([group_features(f, group, cfg.context_s) for f in feats]), np.concatenate(labels)
        )
        models.append(model)
    return models


def fused_curve(cfg: BaselineConfig, models: list, groups, feats: dict) -> np.ndarray:
    """(S, 16) late fusion: the mean of the view groups' class probabilities."""
    curves = [full_curve(m, group_features(feats, g, cfg.context_s)) for m, g in zip(models, groups)]
    return sum(curves) / len(curves)


def out_of_fold_mos(
    cfg: BaselineConfig, sessions: list[SessionRecord], all_feats: dict, labels: list[np.ndarray], groups
) -> dict:
    """A1 mOS with every session predicted by the fold model that never saw its driver.

    The folds are the heads' (`ndar.data.folds.assign_folds` with `oof_folds` and `fold_seed`), so
    the baseline's A1 score sits beside the heads' out-of-fold scores on the same 16 sessions, a
    larger sample than A2's four."""
    from ndar.data.folds import assign_folds
    from ndar.metrics import mos
    from ndar.postprocess import one_segment_per_class

    folds = assign_folds([s.driver for s in sessions], cfg.oof_folds, cfg.fold_seed)
    truth, pred, per_fold = [], [], {}
    with threadpool_limits(limits=1):
        for fold in range(cfg.oof_folds):
            train = [i for i, s in enumerate(sessions) if folds[s.driver] != fold]
            held = [s for s in sessions if folds[s.driver] == fold]
            if not train or not held:
                raise ValueError(
                    f"baseline: fold {fold} of {cfg.oof_folds} has no training or held-out driver"
                )
            models = fit_groups(
                cfg, groups, [all_feats[sessions[i].key] for i in train], [labels[i] for i in train]
            )
            fold_truth, fold_pred = [], []
            for s in held:
                curve = fused_curve(cfg, models, groups, all_feats[s.key])  # (S, 16)
                fold_truth += [(s.key, seg.label, seg.start, seg.end) for seg in s.segments if seg.label != 0]
                fold_pred += [
                    (s.key, label, a, b)
                    for label, a, b, _ in one_segment_per_class(curve, cfg.threshold, cfg.smooth, cfg.min_len)
                ]
            per_fold[str(fold)] = mos(_frame(fold_truth), _frame(fold_pred)).mos  # str: as JSON reads back
            truth += fold_truth
            pred += fold_pred
    return {"mOS": mos(_frame(truth), _frame(pred)).mos, "per_fold": per_fold, "sessions": len(sessions)}


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video", "label", "start", "end"])


def _second_accuracy(truth, sessions: list[SessionRecord], curves: dict[str, np.ndarray]) -> float:
    """Fraction of A2 seconds whose arg-max class equals the ground truth (class 0 between activities)."""
    hits = total = 0
    for session in sessions:
        curve = curves[session.key]
        labels = np.zeros(len(curve), dtype=np.int64)
        rows = truth[truth["video"] == session.video_id]
        centres = np.arange(len(curve)) + 0.5
        for label, start, end in zip(rows["label"], rows["start"], rows["end"]):
            labels[(centres >= start) & (centres < end)] = label
        hits += int((curve.argmax(1) == labels).sum())
        total += len(labels)
    return hits / max(1, total) if total else math.nan
