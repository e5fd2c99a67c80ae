"""mOS on hand-worked examples (see the decisions in ndar.metrics.mos)."""

import math

import pandas as pd
import pytest

from ndar.metrics import mos, mos_value, overlap_score

COLS = ["video", "label", "start", "end"]


def frame(rows):
    return pd.DataFrame(rows, columns=COLS)


def test_perfect_prediction_scores_one():
    gt = frame([(1, 1, 10, 20), (1, 2, 30, 45), (2, 1, 0, 3), (2, 15, 100, 127)])
    result = mos(gt, gt.sample(frac=1.0, random_state=0))
    assert result.mos == 1.0
    assert (result.n_pred, result.n_gt, result.n_matched) == (4, 4, 4)
    assert list(result.per_class["mos"]) == [1.0, 1.0, 1.0]


def test_overlap_formula_and_zero_length():
    assert overlap_score(10, 20, 12, 22) == pytest.approx(8 / 12)
    assert overlap_score(10, 20, 25, 30) == 0.0
    assert overlap_score(5, 5, 5, 5) == 1.0  # 0/0: identical zero-length segments
    assert overlap_score(5, 5, 4, 6) == 0.0  # zero-length inside a longer one


def test_hand_worked_mixture():
    # video 1: drinking matched with os 8/12; phone right unmatched gt; text right is a stray prediction.
    gt = frame([(1, 1, 10, 20), (1, 2, 30, 40), (2, 3, 5, 9)])
    pred = frame([(1, 1, 12, 22), (1, 5, 1, 2), (2, 3, 5, 9)])
    result = mos(gt, pred)
    assert result.n_matched == 2
    # sum = 8/12 + 1; denominator = 3 predictions + 1 unmatched gt
    assert result.mos == pytest.approx((8 / 12 + 1) / 4)
    row = result.per_class.set_index("label").loc[5]
    assert (row["n_pred"], row["n_gt"], row["mos"]) == (1, 0, 0.0)


def test_tolerance_borders_inclusive():
    gt = frame([(1, 4, 100, 120)])
    inside = mos(gt, frame([(1, 4, 90, 130)]))  # start and end exactly 10 s away
    assert inside.n_matched == 1 and inside.mos == pytest.approx(20 / 40)
    outside = mos(gt, frame([(1, 4, 89.9999, 130)]))
    assert outside.n_matched == 0 and outside.mos == 0.0
    outside_end = mos(gt, frame([(1, 4, 100, 130.0001)]))
    assert outside_end.n_matched == 0


def test_best_overlap_wins_then_earliest_start_on_ties():
    gt = frame([(1, 7, 50, 60)])
    pred = frame([(1, 7, 52, 60), (1, 7, 50, 60), (1, 7, 45, 55)])
    result = mos(gt, pred)
    assert result.matches["pred_index"].tolist() == [1]
    # two candidates with the same overlap (8/10 and 8/10): the earlier start wins
    tie = mos(gt, frame([(1, 7, 52, 60), (1, 7, 50, 58)]))
    assert tie.matches["pred_index"].tolist() == [1]
    assert tie.mos == pytest.approx(0.8 / 2)


def test_prediction_matches_at_most_one_gt_in_start_order():
    # two gts of the same class; one prediction fits both; the earlier gt takes it.
    gt = frame([(1, 8, 20, 30), (1, 8, 12, 22)])
    pred = frame([(1, 8, 15, 25)])
    result = mos(gt, pred)
    assert result.n_matched == 1
    assert result.matches["gt_index"].tolist() == [1]  # start 12 comes first
    assert result.mos == pytest.approx((7 / 13) / (1 + 1))


def test_duplicates_count_as_extra_predictions():
    gt = frame([(1, 9, 10, 14)])
    result = mos(gt, frame([(1, 9, 10, 14), (1, 9, 10, 14)]))
    assert result.n_matched == 1 and result.mos == pytest.approx(1 / 2)


def test_class_zero_ignored_both_sides():
    gt = frame([(1, 0, 0, 10), (1, 3, 10, 20)])
    pred = frame([(1, 0, 0, 10), (1, 0, 50, 60), (1, 3, 10, 20)])
    result = mos(gt, pred)
    assert (result.n_gt, result.n_pred, result.mos) == (1, 1, 1.0)


def test_zero_overlap_candidate_still_matches():
    gt = frame([(1, 10, 100, 102)])
    result = mos(gt, frame([(1, 10, 103, 105)]))
    assert result.n_matched == 1
    assert result.mos == 0.0


def test_zero_length_gt_and_prediction():
    gt = frame([(1, 1, 40, 40)])
    assert mos(gt, frame([(1, 1, 40, 40)])).mos == 1.0
    assert mos(gt, frame([(1, 1, 39, 41)])).mos == 0.0


def test_unmatched_both_sides_and_other_video():
    gt = frame([(1, 2, 10, 20)])
    result = mos(gt, frame([(2, 2, 10, 20)]))  # right class, wrong video
    assert result.mos == 0.0 and result.n_matched == 0
    assert result.per_video.set_index("video")["n_gt"].to_dict() == {"1": 1, "2": 0}


def test_empty_both_sides_is_one_and_empty_prediction_is_zero():
    empty = frame([])
    assert mos(empty, empty).mos == 1.0
    assert mos(frame([(1, 1, 0, 5)]), empty).mos == 0.0


def test_video_ids_int_or_str_match():
    assert mos(frame([(3, 1, 0, 5)]), frame([("3", 1, 0, 5)])).mos == 1.0


def test_bad_rows_raise_with_row_and_field():
    with pytest.raises(ValueError, match=r"prediction: row 1: end 1.0 < start 5.0"):
        mos(frame([(1, 1, 0, 5)]), frame([(1, 1, 0, 5), (1, 1, 5, 1)]))
    with pytest.raises(ValueError, match="ground truth: row 0: start"):
        mos(frame([(1, 1, math.nan, 5)]), frame([]))


def test_fast_path_agrees_with_full_result():
    gt = frame([(1, 1, 10, 20), (1, 2, 30, 40), (2, 3, 5, 9), (1, 0, 0, 4)])
    pred = frame([(1, 1, 12, 22), (1, 5, 1, 2), (2, 3, 5, 9), (2, 3, 6, 9), (1, 0, 0, 3)])
    rows = lambda f: list(f.itertuples(index=False, name=None))  # noqa: E731
    assert mos_value(rows(gt), rows(pred)) == pytest.approx(mos(gt, pred).mos)
    assert mos_value([], []) == 1.0


def test_float_video_ids_match_int_and_text_ids():
    # a pandas id column that ever held a missing value is float: 3.0 must still be video "3"
    gt = frame([(3, 1, 10, 20)])
    for video in (3.0, "3", " 3"):
        assert mos(gt, frame([(video, 1, 10, 20)])).mos == 1.0
        assert mos_value([(3, 1, 10, 20)], [(video, 1, 10, 20)]) == 1.0
    assert mos(gt, frame([(3.5, 1, 10, 20)])).mos == 0.0
