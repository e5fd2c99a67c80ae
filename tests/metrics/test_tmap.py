"""Temporal mAP against a hand computation."""

import pandas as pd
import pytest

from ndar.metrics import temporal_map
from ndar.metrics.tmap import interpolated_ap


def test_interpolated_ap_hand_computed():
    # ranked hits 1,0,1 with 2 positives: precision 1, 1/2, 2/3 -> envelope 1, 2/3, 2/3
    # recall steps 0.5 at rank 1 and 0.5 at rank 3: AP = 0.5*1 + 0.5*2/3
    assert interpolated_ap([1, 0, 1], 2) == pytest.approx(0.5 + 1 / 3)
    assert interpolated_ap([0, 0], 1) == 0.0
    assert interpolated_ap([], 3) == 0.0


def test_temporal_map_two_classes_two_thresholds():
    gt = pd.DataFrame(
        [(1, 1, 0, 10), (2, 1, 0, 10), (1, 2, 20, 30)], columns=["video", "label", "start", "end"]
    )
    pred = pd.DataFrame(
        [
            (1, 1, 0, 10, 0.9),  # tIoU 1
            (1, 1, 0, 10, 0.8),  # duplicate: false positive (gt used)
            (2, 1, 0, 4, 0.7),  # tIoU 0.4
            (1, 2, 25, 35, 0.5),  # tIoU 5/15
            (1, 0, 0, 99, 1.0),  # class 0 ignored
        ],
        columns=["video", "label", "start", "end", "score"],
    )
    result = temporal_map(gt, pred, tious=(0.3, 0.5))
    # class 1 @0.3: hits 1,0,1 -> 0.5 + 1/3; @0.5: hits 1,0,0 -> 0.5
    # class 2 @0.3: hit -> 1; @0.5: miss -> 0
    assert result["per_class"]["1"] == pytest.approx([0.5 + 1 / 3, 0.5])
    assert result["per_class"]["2"] == pytest.approx([1.0, 0.0])
    assert result["mAP@0.3"] == pytest.approx((0.5 + 1 / 3 + 1) / 2)
    assert result["mAP@0.5"] == pytest.approx(0.25)
    assert result["mAP"] == pytest.approx(((0.5 + 1 / 3 + 1) / 2 + 0.25) / 2)
