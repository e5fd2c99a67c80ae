"""ActivityNet-style temporal mAP, used to compare the heads (the challenge itself scores mOS).

Per class and tIoU threshold: predictions sorted by score (highest first, ties in input order); each
one is a true positive if its best-overlapping still-unmatched ground truth of the same video and
class has tIoU >= threshold (ground truths tried in order of decreasing tIoU, as ActivityNet does),
otherwise a false positive. AP is the area under the precision envelope (precision made
non-increasing from the right) over recall. Classes without any ground truth are left out of the
mean (their AP is undefined); class 0 is ignored on both sides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ndar.metrics.frames import as_segment_frame
from ndar.taxonomy import BACKGROUND

DEFAULT_TIOUS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)


def segment_tiou(start: float, end: float, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """tIoU of one segment with many; identical zero-length segments have tIoU 1."""
    inter = np.clip(np.minimum(end, ends) - np.maximum(start, starts), 0.0, None)
    union = (end - start) + (ends - starts) - inter
    same_point = (union <= 0) & (starts == start) & (ends == end)
    with np.errstate(divide="ignore", invalid="ignore"):
        tiou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.where(same_point, 1.0, tiou)


def interpolated_ap(tp: np.ndarray, n_positive: int) -> float:
    """Area under the interpolated precision-recall curve of a ranked list of hits (1) and misses (0)."""
    tp = np.asarray(tp, dtype=float)
    if n_positive == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    tp_cum = np.cumsum(tp)
    fp_cum = np.cumsum(1.0 - tp)
    recall = np.concatenate([[0.0], tp_cum / n_positive, [1.0]])
    precision = np.concatenate([[0.0], tp_cum / (tp_cum + fp_cum), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def _class_hits(gt: pd.DataFrame, pred: pd.DataFrame, tiou: float) -> np.ndarray:
    """1/0 per prediction of one class (in score order) at one threshold."""
    by_video = {v: g for v, g in gt.groupby("video", sort=False)}
    used = {v: np.zeros(len(g), dtype=bool) for v, g in by_video.items()}
    hits = np.zeros(len(pred), dtype=int)
    for i, row in enumerate(pred.itertuples(index=False)):
        group = by_video.get(row.video)
        if group is None:
            continue
        ious = segment_tiou(row.start, row.end, group["start"].to_numpy(), group["end"].to_numpy())
        for j in np.argsort(-ious, kind="stable"):
            if ious[j] < tiou:
                break
            if used[row.video][j]:
                continue
            used[row.video][j] = True
            hits[i] = 1
            break
    return hits


def temporal_map(
    gt: pd.DataFrame, pred_with_score: pd.DataFrame, tious: tuple[float, ...] | list[float] = DEFAULT_TIOUS
) -> dict:
    """{"mAP": mean over tIoUs, "mAP@<t>": mean over classes, "per_class": {label: [AP per tIoU]}, "tious"}."""
    gt = as_segment_frame(gt, "ground truth")
    pred = as_segment_frame(pred_with_score, "prediction", with_score=True)
    gt = gt[gt["label"] != BACKGROUND]
    pred = pred[pred["label"] != BACKGROUND]
    labels = sorted(set(gt["label"]))
    per_class: dict[str, list[float]] = {}
    for label in labels:
        class_gt = gt[gt["label"] == label]
        class_pred = pred[pred["label"] == label]
        class_pred = class_pred.iloc[np.argsort(-class_pred["score"].to_numpy(), kind="stable")]
        per_class[str(label)] = [
            interpolated_ap(_class_hits(class_gt, class_pred, t), len(class_gt)) for t in tious
        ]
    result: dict = {"tious": [float(t) for t in tious]}
    for k, t in enumerate(tious):
        values = [aps[k] for aps in per_class.values()]
        result[f"mAP@{t:g}"] = float(np.mean(values)) if values else 0.0
    result["mAP"] = float(np.mean([result[f"mAP@{t:g}"] for t in tious])) if len(tious) else 0.0
    result["per_class"] = per_class
    return result
