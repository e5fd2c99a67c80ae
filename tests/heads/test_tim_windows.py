"""TIM windows, queries and targets; window averaging of query logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ndar.data.records import Segment
from ndar.heads.base import FeatureVideo
from ndar.heads.tim import TimConfig, TimHead
from ndar.heads.tim.windows import (
    assign_queries,
    clipped_queries,
    coverage_labels,
    detection_targets,
    feature_intervals,
    median_feature_gap,
    plan_windows,
    pyramid_intervals,
    with_background,
)


def times(n: int, gap: float = 0.5, width: float = 1.0):
    t_start = np.arange(n) * gap
    return t_start, t_start + width


def test_windows_cover_the_video_and_pad_the_tail():
    t_start, t_end = times(40)  # features up to 20.5 s
    windows = plan_windows(t_start, t_end, num_feats=8, feat_stride=2, length=8.0, stride=3.0)
    assert [w.start for w in windows[:3]] == [0.0, 3.0, 6.0]
    assert windows[-1].end == pytest.approx(t_end[-1])  # the last window is aligned to the end
    np.testing.assert_array_equal(windows[1].index, np.arange(6, 22, 2))  # every 2nd feature from 3.0 s
    seen = np.unique(np.concatenate([w.index for w in windows]))
    assert seen[seen >= 0].max() >= 38
    short = plan_windows(*times(5), num_feats=8, feat_stride=1, length=4.0, stride=1.0)
    assert len(short) == 1 and (short[0].index[5:] == -1).all()
    iv = feature_intervals(*times(5), short[0])
    np.testing.assert_allclose(iv[0], [0.0, 0.25])
    assert (iv[5:] == 0).all()
    assert median_feature_gap([t_start, np.array([0.0])]) == pytest.approx(0.5)


def test_pyramid_sizes_and_strides():
    iv = pyramid_intervals(duration=10.0, length=4.0, base=0.25, levels=5, overlap=0.5)
    sizes = np.round(iv[:, 1] - iv[:, 0], 6)
    assert sorted(set(sizes)) == [1.0, 2.0, 4.0]  # 8 s > window: dropped
    ones = iv[sizes == 1.0]
    np.testing.assert_allclose(ones[:3, 0], [0.0, 0.5, 1.0])  # stride = half the size
    assert ones[-1, 1] == pytest.approx(10.0) and iv.min() >= 0 and iv.max() <= 10.0
    assert len(ones) == 19


def test_assign_queries_contained_and_orphans():
    t_start, t_end = times(40)
    windows = plan_windows(t_start, t_end, 8, 2, 8.0, 4.0)  # starts 0, 4, 8, 12, 12.5
    queries = np.array([[1.0, 3.0], [5.0, 7.0], [2.0, 15.0]])  # the last fits in no window
    assigned = assign_queries(windows, queries)
    asked = {q: [w for w, (ids, _) in enumerate(assigned) if q in ids] for q in range(3)}
    assert asked[0] == [0]
    assert asked[1] == [0, 1]
    assert asked[2] == [0, 1, 2, 3, 4]  # clipped, in every window it overlaps
    ids, norm = assigned[1]
    np.testing.assert_allclose(norm[list(ids).index(1)], [1 / 8, 3 / 8])
    assert norm.min() >= 0 and norm.max() <= 1


def test_detection_targets_hand_worked():
    segs = [Segment(3, 10.0, 20.0), Segment(0, 20.0, 30.0)]  # class 0 is not an activity
    queries = np.array([[10.0, 18.0], [12.0, 14.0], [40.0, 42.0], [9.0, 21.0], [19.0, 23.0]])
    cls, offsets, positive = detection_targets(queries, segs, 16, iou_threshold=0.5)
    np.testing.assert_array_equal(positive, [True, False, False, True, False])
    assert cls[0, 3] == 1 and cls[3, 3] == 1
    np.testing.assert_allclose(offsets[0], [0.0, 2 / 8])
    np.testing.assert_allclose(offsets[3], [1 / 12, -1 / 12])
    assert cls[1].sum() == 0  # inside the activity but too small: background, not class 0
    assert cls[2, 0] == 1 and cls[2].sum() == 1  # touching no activity: normal driving
    assert cls[4].sum() == 0
    # an activity no query reaches 0.5 tIoU with still gets its best query
    cls, _, positive = detection_targets(np.array([[0.0, 4.0], [2.0, 6.0]]), [Segment(5, 3.0, 4.0)], 16, 0.5)
    assert positive.tolist() == [True, False] and cls[0, 5] == 1


def test_background_and_coverage_labels():
    times_, labels = with_background([Segment(2, 5.0, 8.0), Segment(4, 30.0, 31.0)], 40.0, chunk=10.0)
    assert labels.tolist() == [0, 2, 0, 0, 0, 4, 0]
    np.testing.assert_allclose(
        times_[2:5], [[8, 15.333333], [15.333333, 22.666667], [22.666667, 30]], atol=1e-5
    )
    got = coverage_labels(np.array([[4.0, 7.0], [7.5, 12.0], [29.9, 31.0]]), times_, labels)
    assert got.tolist() == [2, 0, 4]
    from ndar.heads.tim.windows import Window

    clipped, lab = clipped_queries(
        times_, labels, Window(6.0, 2.5, np.zeros(1, dtype=np.int64)), min_query=1.0
    )
    assert lab.tolist() == [2]  # the 0.5 s sliver of background after 8 s is dropped
    np.testing.assert_allclose(clipped, [[6.0, 8.0]])


def test_query_logits_are_averaged_over_the_windows_containing_them():
    rng = np.random.default_rng(0)
    t_start, t_end = times(30)
    video = FeatureVideo(
        key="1_1",
        streams={
            "rear": rng.normal(size=(30, 4)).astype(np.float32),
            "dashboard": rng.normal(size=(30, 3)).astype(np.float32),
        },
        t_start=t_start,
        t_end=t_end,
        duration=15.5,
    )
    cfg = TimConfig(
        mode="recognition", num_feats=8, feat_gap=0.5, window_stride=1.0, d_model=8, num_heads=2, num_layers=1
    )
    head = TimHead(cfg, {"rear": 4, "dashboard": 3}, seed=0)
    queries = np.array([[2.0, 3.0], [6.5, 9.0]])
    prepared = head._prepare(video, with_targets=False)
    averaged, _ = head._query_logits(prepared, queries)

    model = head.model.eval()
    for q, (qs, qe) in enumerate(queries):
        per_window = []
        for w in head._windows(prepared, 1.0):
            if qs >= w.start - 1e-6 and qe <= w.end + 1e-6:
                valid = w.index >= 0
                feats = {
                    k: torch.from_numpy(video.streams[k][w.index[valid]])[None] for k in ("rear", "dashboard")
                }
                f_iv = torch.from_numpy(feature_intervals(t_start, t_end, w)[valid])[None]
                q_iv = torch.tensor(
                    [[[(qs - w.start) / w.length, (qe - w.start) / w.length]]], dtype=torch.float32
                )
                with torch.no_grad():
                    out = model(feats, model.encode_intervals(f_iv), model.encode_intervals(q_iv))
                per_window.append(out["logits"][0, 0].numpy())
        assert len(per_window) >= 2
        np.testing.assert_allclose(averaged[q], np.mean(per_window, axis=0), atol=1e-4)


def test_curve_proposals_hand_worked():
    from ndar.heads.tim.decoding import curve_proposals

    curve = np.zeros((6, 16))
    curve[:, 0] = 1.0  # class 0 never proposes
    curve[:, 3] = [0.1, 0.4, 0.7, 0.7, 0.3, 0.1]
    curve[5, 8] = 0.9  # a one-second run: kept with min_len 1, dropped with 2
    bounds, labels, mean = curve_proposals(curve, [0.2, 0.5, 0.6], min_len=1.0)
    assert labels.tolist() == [3, 3, 8]
    np.testing.assert_allclose(bounds, [[1, 5], [2, 4], [5, 6]])  # the 0.6 run equals the 0.5 one: once
    np.testing.assert_allclose(mean, [0.525, 0.7, 0.9])
    assert curve_proposals(curve, [0.2], min_len=2.0)[1].tolist() == [3]
