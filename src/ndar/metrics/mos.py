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

from ndar.metrics.frames import as_segment_frame, video_name
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


def _match_group(
    gt_idx: list[int], pred_idx: list[int], starts: tuple, ends: tuple, tolerance: float
) -> list[tuple[int, int, float]]:
    """Greedy matching of one (video, class) group; returns (gt_index, pred_index, os).

    `gt_idx`/`pred_idx` index into (`starts`, `ends`) = ((gt starts, pred starts), (gt ends, pred ends)).
    """
    gs_all, ps_all = starts
    ge_all, pe_all = ends
    taken: set[int] = set()
    matches = []
    for g in sorted(gt_idx, key=lambda i: gs_all[i]):  # stable: equal starts keep input order
        gs, ge = gs_all[g], ge_all[g]
        best, best_key = -1, None
        for p in pred_idx:
            if p in taken:
                continue
            ps, pe = ps_all[p], pe_all[p]
            if not (gs - tolerance <= ps <= gs + tolerance and ge - tolerance <= pe <= ge + tolerance):
                continue
            key = (-overlap_score(gs, ge, ps, pe), ps, p)
            if best_key is None or key < best_key:
                best, best_key = p, key
        if best >= 0:
            taken.add(best)
            matches.append((g, best, -best_key[0]))
    return matches


def _groups(frame: pd.DataFrame) -> dict[tuple[str, int], list[int]]:
    groups: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(zip(frame["video"].tolist(), frame["label"].tolist())):
        groups.setdefault(key, []).append(i)
    return groups


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


def mos_value(
    gt: list[tuple[str, int, float, float]],
    pred: list[tuple[str, int, float, float]],
    tolerance: float = TOLERANCE_S,
) -> float:
    """The mOS alone, from plain (video, label, start, end) tuples: the fast path the tuner calls
    thousands of times. Same rules as `mos` (rows must already be valid; class 0 is dropped)."""
    gt = [r for r in gt if r[1] != BACKGROUND]
    pred = [r for r in pred if r[1] != BACKGROUND]
    starts = ([r[2] for r in gt], [r[2] for r in pred])
    ends = ([r[3] for r in gt], [r[3] for r in pred])
    pred_groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(pred):
        pred_groups.setdefault((video_name(r[0]), r[1]), []).append(i)
    gt_groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(gt):
        gt_groups.setdefault((video_name(r[0]), r[1]), []).append(i)
    total, n_matched = 0.0, 0
    for key, gt_idx in gt_groups.items():
        if key in pred_groups:
            matches = _match_group(gt_idx, pred_groups[key], starts, ends, tolerance)
            total += sum(m[2] for m in matches)
            n_matched += len(matches)
    denominator = len(pred) + len(gt) - n_matched
    return total / denominator if denominator > 0 else 1.0


def mos(gt: pd.DataFrame, pred: pd.DataFrame, tolerance: float = TOLERANCE_S) -> MosResult:
    """Score `pred` against `gt` (both with columns video, label, start, end) with the official mOS."""
    gt = as_segment_frame(gt, "ground truth")
    pred = as_segment_frame(pred, "prediction")
    gt = gt[gt["label"] != BACKGROUND].reset_index(drop=True)
    pred = pred[pred["label"] != BACKGROUND].reset_index(drop=True)
    starts = (gt["start"].tolist(), pred["start"].tolist())
    ends = (gt["end"].tolist(), pred["end"].tolist())
    pred_groups = _groups(pred)
    matches: list[tuple[int, int, float]] = []
    for key, gt_idx in _groups(gt).items():
        if key in pred_groups:
            matches.extend(_match_group(gt_idx, pred_groups[key], starts, ends, tolerance))
    match_frame = pd.DataFrame(matches, columns=["gt_index", "pred_index", "os"]).astype(
        {"gt_index": int, "pred_index": int, "os": float}
    )
    g, p = match_frame["gt_index"].to_numpy(), match_frame["pred_index"].to_numpy()
    match_frame["video"] = gt["video"].to_numpy()[g]
    match_frame["label"] = gt["label"].to_numpy()[g]
    match_frame["gt_start"] = gt["start"].to_numpy()[g]
    match_frame["gt_end"] = gt["end"].to_numpy()[g]
    match_frame["pred_start"] = pred["start"].to_numpy()[p]
    match_frame["pred_end"] = pred["end"].to_numpy()[p]
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
