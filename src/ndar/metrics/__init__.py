"""The official metric (mOS) and a temporal mAP for the heads.

`mos(gt, pred)` and `temporal_map(gt, pred, tious)` take DataFrames with columns
`video, label, start, end` (`score` too for the mAP predictions).
"""

from ndar.metrics.mos import MosResult, mos, mos_value, overlap_score
from ndar.metrics.tmap import temporal_map

__all__ = ["MosResult", "mos", "mos_value", "overlap_score", "temporal_map"]
