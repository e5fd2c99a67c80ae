import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ndar.notebooks import parse_parameters, run_notebook

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "20_actionformer.ipynb"


def test_notebook_is_committed_clean_with_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]


def test_parse_parameters_reads_yaml_values():
    got = parse_parameters(
        [["folds", "3"], ["feature_sets", "[a/rear, a/dashboard]"], ["config_path", "x.yaml"]]
    )
    assert got == {"folds": 3, "feature_sets": ["a/rear", "a/dashboard"], "config_path": "x.yaml"}


def test_unknown_notebook_parameter_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['bogus'\]"):
        run_notebook(NOTEBOOK, tmp_path, {"bogus": 1})


@pytest.mark.slow
def test_actionformer_notebook_executes_under_papermill(synthetic_dataset, tmp_path):
    ds = synthetic_dataset
    params = [
        ["config_path", "configs/heads/actionformer_tiny.yaml"],  # the default reads make demo's
        ["data_root", str(ds["root"])],
        ["features_root", str(ds["features"])],
        ["feature_sets", json.dumps(ds["sets"])],
        ["folds", "2"],
        ["overrides", '["actionformer.epochs=2", "predict_test=false"]'],
        ["n_timelines", "2"],
    ]
    cmd = [
        sys.executable,
        "-m",
        "ndar",
        "notebooks",
        "--notebook",
        str(NOTEBOOK),
        "--out",
        str(tmp_path / "nb"),
    ]
    cmd += [a for pair in params for a in ("-p", *pair)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "nb" / "20_actionformer"
    executed = nbformat.read(folder / "20_actionformer.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # curves, per-class AP, timelines
    assert (folder / "oof" / "curves.npz").is_file()  # out_dir: the run writes beside its notebook


def test_command_refuses_a_parameter_no_notebook_declares(tmp_path):
    from ndar.cli import main as cli_main

    assert (
        cli_main(["notebooks", "--notebook", str(NOTEBOOK), "--out", str(tmp_path), "-p", "bogus", "1"]) == 2
    )
    assert not (tmp_path / "20_actionformer").exists()
