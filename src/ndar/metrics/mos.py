"""The official AI City Track 3 score (2023/2024): mean overlap score, mOS.

For each ground-truth activity g, in order of start time, the match is the unmatched prediction p of
the same video and class whose start lies in [gs - 10, gs + 10] and whose end lies in
[ge - 10, ge + 10], with the highest overlap

    os(p, g) = max(min(ge, pe) - max(gs, ps), 0) / (max(ge, pe) - min(gs, ps)).

score = sum(os of matched pairs) / (number of predictions + number of unmatched ground truths).

Decisions where the published text is silent (tested in tests/metrics/test_mos.py):
- class 0 (normal driving) is dropped from both sides before anything else;
- ground truths are visited by start time; equal starts keep their input order (stable sort);
- among candidates with the same overlap, the earliest start wins, then the first in input order;
- a candidate inside both tolerance windows matches even when its overlap is 0 (the text takes the
  best candidate, it does not require a positive overlap): the pair scores 0, but the ground truth
  is then not "unmatched";
- 0/0 (both segments zero-length at the same instant) is a perfect overlap of 1; a zero-length
  segment inside a longer one overlaps 0;
- the tolerance borders are inclusive: exactly 10 s away is in, anything further is out;
- no ground truth and no prediction at all scores 1.0 (nothing to find and nothing wrongly found);
  per-class rows with neither side present are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ndar.metrics.frames import as_segment_frame
from ndar.taxonomy import BACKGROUND, CLASSES

TOLERANCE_S = 10.0


@dataclass
class MosResult:
    """The score and its parts; `per_class` has one row per class present on either side."""

    mos: float
    n_pred: int
    n_gt: int
    n_matched: int
    per_class: pd.DataFrame  # label, name, n_gt, n_pred, n_matched, sum_os, mos
    per_video: pd.DataFrame  # video, n_gt, n_pred, n_matched, sum_os, mos
    matches: pd.DataFrame  # video, label, gt_index, pred_index, os, gt_start, gt_end, pred_start, pred_end

    def to_dict(self) -> dict:
        """JSON-ready summary (what `python -m ndar score --json` prints)."""
        return {
            "mOS": self.mos,
            "n_pred": self.n_pred,
            "n_gt": self.n_gt,
            "n_matched": self.n_matched,
            "per_class": _records(self.per_class),
            "per_video": _records(self.per_video),
        }


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()})
    return out


def overlap_score(gs: float, ge: float, ps: float, pe: float) -> float:
    """os(p, g); identical zero-length segments score 1 (the 0/0 case)."""
    union = max(ge, pe) - min(gs, ps)
    if union <= 0.0:
        return 1.0
    return max(min(ge, pe) - max(gs, ps), 0.0) / union


def _match_group(gt: pd.DataFrame, pred: pd.DataFrame, tolerance: float) -> list[tuple[int, int, float]]:
    """Greedy matching of one (video, class) group; returns (gt_index, pred_index, os)."""
    gt_order = np.argsort(gt["start"].to_numpy(), kind="stable")
    p_start = pred["start"].to_numpy()
    p_end = pred["end"].to_numpy()
    taken = np.zeros(len(pred), dtype=bool)
    matches = []
    for g in gt_order:
        gs, ge = float(gt["start"].iloc[g]), float(gt["end"].iloc[g])
        inside = (
            ~taken
            & (p_start >= gs - tolerance)
            & (p_start <= gs + tolerance)
            & (p_end >= ge - tolerance)
            & (p_end <= ge + tolerance)
        )
        best, best_key = -1, None
        for p in np.flatnonzero(inside):
            key = (-overlap_score(gs, ge, p_start[p], p_end[p]), p_start[p], p)
            if best_key is None or key < best_key:
                best, best_key = int(p), key
        if best >= 0:
            taken[best] = True
            matches.append((int(gt.index[g]), int(pred.index[best]), -best_key[0]))
    return matches


def _summary(
    keys: list, n_gt: pd.Series, n_pred: pd.Series, matched: pd.Series, sums: pd.Series
) -> pd.DataFrame:
    frame = pd.DataFrame({"n_gt": n_gt, "n_pred": n_pred, "n_matched": matched, "sum_os": sums})
    frame = frame.reindex(keys).fillna(0)
    for column in ("n_gt", "n_pred", "n_matched"):
        frame[column] = frame[column].astype(int)
    frame["sum_os"] = frame["sum_os"].astype(float)
    denominator = frame["n_pred"] + frame["n_gt"] - frame["n_matched"]
    frame["mos"] = np.where(denominator > 0, frame["sum_os"] / denominator.where(denominator > 0, 1), np.nan)
    return frame


def mos(gt: pd.DataFrame, pred: pd.DataFrame, tolerance: float = TOLERANCE_S) -> MosResult:
    """Score `pred` against `gt` (both with columns video, label, start, end) with the official mOS."""
    gt = as_segment_frame(gt, "ground truth")
    pred = as_segment_frame(pred, "prediction")
    gt = gt[gt["label"] != BACKGROUND]
    pred = pred[pred["label"] != BACKGROUND]
    matches: list[tuple[int, int, float]] = []
    pred_groups = dict(tuple(pred.groupby(["video", "label"], sort=False)))
    for key, gt_group in gt.groupby(["video", "label"], sort=False):
        if key in pred_groups:
            matches.extend(_match_group(gt_group, pred_groups[key], tolerance))
    match_frame = pd.DataFrame(matches, columns=["gt_index", "pred_index", "os"])
    match_frame["video"] = gt.loc[match_frame["gt_index"], "video"].to_numpy()
    match_frame["label"] = gt.loc[match_frame["gt_index"], "label"].to_numpy()
    match_frame["gt_start"] = gt.loc[match_frame["gt_index"], "start"].to_numpy()
    match_frame["gt_end"] = gt.loc[match_frame["gt_index"], "end"].to_numpy()
    match_frame["pred_start"] = pred.loc[match_frame["pred_index"], "start"].to_numpy()
    match_frame["pred_end"] = pred.loc[match_frame["pred_index"], "end"].to_numpy()
    match_frame = match_frame[
        ["video", "label", "gt_index", "pred_index", "os", "gt_start", "gt_end", "pred_start", "pred_end"]
    ]

    n_pred, n_gt, n_matched = len(pred), len(gt), len(match_frame)
    denominator = n_pred + n_gt - n_matched
    score = float(match_frame["os"].sum() / denominator) if denominator > 0 else 1.0

    labels = sorted(set(gt["label"]) | set(pred["label"]))
    per_class = _summary(
        labels,
        gt.groupby("label").size(),
        pred.groupby("label").size(),
        match_frame.groupby("label").size(),
        match_frame.groupby("label")["os"].sum(),
    )
    per_class.index.name = "label"
    per_class = per_class.reset_index()
    per_class.insert(1, "name", [CLASSES[c] if 0 <= c < len(CLASSES) else "?" for c in per_class["label"]])

    videos = sorted(set(gt["video"]) | set(pred["video"]), key=_video_sort_key)
    per_video = _summary(
        videos,
        gt.groupby("video").size(),
        pred.groupby("video").size(),
        match_frame.groupby("video").size(),
        match_frame.groupby("video")["os"].sum(),
    )
    per_video.index.name = "video"
    per_video = per_video.reset_index()
    return MosResult(score, n_pred, n_gt, n_matched, per_class, per_video, match_frame.reset_index(drop=True))


def _video_sort_key(video: str) -> tuple:
    """Numeric ids sort as numbers, others as text."""
    return (0, int(video), "") if video.isdigit() else (1, 0, video)
