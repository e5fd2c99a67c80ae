import numpy as np
import pytest

from ndar.postprocess.curves import windows_to_curve
from ndar.postprocess.softnms import batched_soft_nms, segment_iou, soft_nms


def test_segment_iou_hand_worked():
    iou = segment_iou(np.array([0.0, 10.0]), np.array([[5.0, 15.0], [10.0, 20.0], [0.0, 10.0], [2.0, 4.0]]))
    np.testing.assert_allclose(iou, [5 / 15, 0.0, 1.0, 0.2])


def test_soft_nms_decays_overlapping_segment_gaussian():
    segs = np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0]])
    scores = np.array([0.9, 0.8, 0.7])
    out_segs, out_scores, index = soft_nms(segs, scores, sigma=0.5)
    # [1,10] overlaps [0,10] with tIoU 0.9: 0.8 * exp(-0.81 / 0.5) = 0.15832; [20,30] untouched.
    np.testing.assert_array_equal(index, [0, 2, 1])
    np.testing.assert_allclose(out_scores, [0.9, 0.7, 0.8 * np.exp(-0.81 / 0.5)], rtol=1e-9)
    np.testing.assert_allclose(out_segs[2], [1.0, 10.0])


def test_soft_nms_second_round_uses_decayed_scores():
    # B overlaps A (tIoU 0.5) and C (tIoU 0.5); A and C do not overlap.
    segs = np.array([[0.0, 10.0], [5.0, 15.0], [10.0, 20.0]])
    scores = np.array([1.0, 0.9, 0.6])
    _, out_scores, index = soft_nms(segs, scores, sigma=0.5)
    b_after_a = 0.9 * np.exp(-((5 / 15) ** 2) / 0.5)  # 0.7462: still above C
    assert index.tolist() == [0, 1, 2]
    c_after_b = 0.6 * np.exp(-((5 / 15) ** 2) / 0.5)
    np.testing.assert_allclose(out_scores, [1.0, b_after_a, c_after_b])


def test_soft_nms_min_score_and_max_keep():
    segs = np.array([[0.0, 10.0], [0.0, 10.0], [50.0, 60.0]])
    _, scores, index = soft_nms(segs, np.array([0.9, 0.8, 0.5]), sigma=0.5, min_score=0.2)
    assert index.tolist() == [0, 2]  # identical segment decays to 0.8 * e^-2 = 0.108 < 0.2
    _, _, index = soft_nms(segs, np.array([0.9, 0.8, 0.5]), max_keep=1)
    assert index.tolist() == [0]


def test_batched_soft_nms_keeps_classes_apart():
    segs = np.array([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0]])
    segs_out, scores, labels = batched_soft_nms(
        segs, np.array([0.9, 0.8, 0.7]), np.array([1, 2, 1]), sigma=0.5
    )
    assert labels.tolist() == [1, 2, 1]
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7 * np.exp(-2.0)])
    assert segs_out.shape == (3, 2)


def test_soft_nms_rejects_bad_input():
    with pytest.raises(ValueError, match="2 segments but 1 scores"):
        soft_nms(np.zeros((2, 2)), np.zeros(1))


def test_windows_to_curve_weights_by_overlap():
    t_start, t_end = np.array([0.0, 0.5, 3.0]), np.array([1.0, 1.5, 3.5])
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    curve = windows_to_curve(t_start, t_end, scores, duration=4.2)
    assert curve.shape == (5, 2) and curve.dtype == np.float32
    # second 0: window 0 overlaps 1.0 s, window 1 0.5 s -> (1*1 + 0*0.5)/1.5
    np.testing.assert_allclose(curve[0], [2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(curve[1], [0.0, 1.0])  # only window 1 overlaps [1, 2)
    np.testing.assert_allclose(
        curve[2], [0.5, 0.5]
    )  # no window: nearest centre is window 2 (3.25 s vs 1.0 s)
    np.testing.assert_allclose(curve[3], [0.5, 0.5])
    np.testing.assert_allclose(curve[4], [0.5, 0.5])  # past the last window: nearest centre


def test_windows_to_curve_shape_error():
    with pytest.raises(ValueError, match="expected"):
        windows_to_curve(np.zeros(3), np.ones(3), np.zeros((2, 16)), 5.0)
