import numpy as np
import pandas as pd
import pytest

from ndar.formats.predictions import read_predictions, segments_frame, write_predictions


def test_predictions_round_trip(tmp_path):
    curves = {"101_1": np.random.default_rng(0).random((7, 16), dtype=np.float32), "102_2": np.zeros((3, 16))}
    segs = segments_frame({"101_1": [(3, 1.0, 4.5, 0.9), (1, 0.0, 2.0, 0.4)], "102_2": []})
    write_predictions(tmp_path, "oof", curves, segs)
    got_curves, got_segs = read_predictions(tmp_path, "oof")
    assert set(got_curves) == {"101_1", "102_2"}
    np.testing.assert_allclose(got_curves["101_1"], curves["101_1"])
    assert got_curves["102_2"].dtype == np.float32
    assert list(got_segs.columns) == ["video", "label", "start", "end", "score"]
    assert got_segs["video"].tolist() == ["101_1", "101_1"] and got_segs["label"].tolist() == [1, 3]
    assert not list(tmp_path.joinpath("oof").glob(".*"))  # no temporary files left


def test_numeric_looking_keys_stay_strings(tmp_path):
    write_predictions(tmp_path, "test", {"7": np.zeros((2, 16))}, segments_frame({"7": [(2, 0.0, 1.0, 0.5)]}))
    _, segs = read_predictions(tmp_path, "test")
    assert segs["video"].tolist() == ["7"]


def test_write_rejects_bad_curve_and_split(tmp_path):
    with pytest.raises(ValueError, match=r"expected \(S, 16\)"):
        write_predictions(tmp_path, "oof", {"a_1": np.zeros((4, 15))}, segments_frame({}))
    with pytest.raises(ValueError, match="not one of"):
        write_predictions(tmp_path, "val", {}, segments_frame({}))
    with pytest.raises(ValueError, match="lack column"):
        write_predictions(tmp_path, "oof", {}, pd.DataFrame({"video": []}))


def test_read_missing_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="curves.npz"):
        read_predictions(tmp_path, "oof")
