"""notebooks/10_tim.ipynb executes under papermill with tiny parameters and writes a prediction source."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from heads_fixtures import make_videos, write_dataset

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "10_tim.ipynb"
REPO = NOTEBOOK.parents[1]


def test_notebook_is_committed_without_outputs_and_has_typed_parameters():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for line in tagged[0].source.splitlines()[1:]:
        assert ":" in line.split("=")[0] and "#" in line, f"untyped or uncommented parameter: {line}"
    assert all(
        not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code"
    )


@pytest.mark.slow
def test_notebook_runs_under_papermill(tmp_path: Path):
    pytest.importorskip("papermill")
    from ndar.notebooks import run_notebook

    a1 = make_videos(n_drivers=4, sessions=1, duration=60.0, seed=0)
    write_dataset(tmp_path / "data", tmp_path / "features", a1, [])
    executed = run_notebook(
        NOTEBOOK,
        tmp_path / "nb",
        {
            "config_path": str(REPO / "configs" / "heads" / "tim_tiny.yaml"),
            "feature_sets": ["trk/rear", "trk/dashboard"],
            "folds": 2,
            "overrides": ["tim.epochs=1", "predict_test=false"],
            "data_root": str(tmp_path / "data"),
            "features_root": str(tmp_path / "features"),
            "n_timelines": 1,
        },
        cwd=REPO,
    )
    out = executed.parent  # out_dir defaults to the executed notebook's folder
    assert executed.is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["head"] == "tim" and "overall" in metrics
    assert (out / "oof" / "curves.npz").is_file() and (out / "folds" / "fold_1" / "metrics.csv").is_file()
