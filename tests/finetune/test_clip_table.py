"""A clip table read from a `prepare` CSV: a bad cell is a one-line error naming the file, row and
column, never a NaN time or a text label that fails later inside a loader worker."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ndar.finetune.data import load_clip_samples

ROWS = dict(path=["a.mp4", "b.mp4"], label=[1, 2], start=[0.0, 1.0], end=[1.0, 2.0], fold=[0, 1])


@pytest.mark.parametrize(
    "column, row, value, message",
    [
        ("label", 1, "phone", r"row 1: label 'phone' is not an integer"),
        ("label", 0, 2.5, r"row 0: label '2.5' is not an integer"),
        ("end", 1, None, r"row 1: end \(blank\) is not a number \(seconds\)"),
        ("start", 0, "1:02", r"row 0: start '1:02' is not a number \(seconds\)"),
        ("fold", 1, None, r"row 1: fold \(blank\) is not an integer"),
    ],
)
def test_a_bad_cell_names_file_row_and_column(tmp_path: Path, column, row, value, message) -> None:
    table = pd.DataFrame(ROWS).astype(object)
    table.loc[row, column] = value
    path = tmp_path / "clips_rear.csv"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match=rf"^{path}: {message}$"):
        load_clip_samples(None, path, "rear")


def test_a_good_table_keeps_its_types(tmp_path: Path) -> None:
    path = tmp_path / "clips_rear.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    samples = load_clip_samples(None, path, "rear")
    assert samples["label"].tolist() == [1, 2] and samples["end"].tolist() == [1.0, 2.0]
    assert samples["label"].dtype == "int64" and samples["start"].dtype == "float64"
