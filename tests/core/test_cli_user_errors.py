"""A user's mistake on the command line is one line naming it, never a traceback: settings that the
config loader accepts but that cannot work (synth's validation, a k the drivers cannot fill) and a
notebook cell that fails on the user's parameter or config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ndar.cli import main, user_errors
from ndar.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
ENSEMBLE = str(REPO / "configs" / "ensemble" / "default.yaml")


@pytest.mark.parametrize(
    "args,named",
    [
        (["--views", "front"], "views must be a non-empty subset"),
        (["--drivers", "0"], "drivers must be >= 1"),
        (["crf=60"], "crf must be in 0..51"),
    ],
)
def test_synth_settings_that_cannot_work_are_one_line(capsys, tmp_path, args, named):
    assert main(["synth", "--out", str(tmp_path / "data"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and named in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()  # refused before anything is written


def test_a_k_the_drivers_cannot_fill_is_a_user_error():
    from ndar.data.folds import assign_folds

    with pytest.raises(ConfigError, match="k=5 folds need at least 5 drivers") as err:
        assign_folds(["1", "2", "3"], k=5)
    assert isinstance(err.value, user_errors())  # finetune / cache-clips report it as one line
    with pytest.raises(ConfigError, match="k must be an integer >= 2"):
        assign_folds(["1", "2"], k=1)


def test_a_notebook_cell_failing_on_user_input_is_one_error_naming_the_cell(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    from ndar.notebooks import _user_error_in_cell

    def failed(ename: str, evalue: str) -> PapermillExecutionError:
        return PapermillExecutionError(2, 3, "cfg = load_config(...)", ename, evalue, ["tb line"])

    partial = tmp_path / "nb.partial.ipynb"
    err = _user_error_in_cell("nb.ipynb", partial, failed("ConfigError", "override 'folds=x':\n bad"))
    assert isinstance(err, ConfigError)
    assert str(err) == f"nb.ipynb cell [3]: ConfigError: override 'folds=x': bad (executed cells: {partial})"
    assert isinstance(_user_error_in_cell("nb.ipynb", partial, failed("FileNotFoundError", "x")), ConfigError)
    # anything else is a bug in the notebook or the package: papermill's error and its traceback stay
    assert _user_error_in_cell("nb.ipynb", partial, failed("ZeroDivisionError", "division by zero")) is None


@pytest.mark.slow
def test_notebooks_command_reports_a_missing_config_in_one_line(capsys, tmp_path):
    def cell(source: str, tags: list[str] | None = None) -> dict:
        meta = {"tags": tags} if tags else {}
        return {
            "cell_type": "code",
            "metadata": meta,
            "source": source,
            "outputs": [],
            "execution_count": None,
        }

    notebook = {
        "cells": [
            cell('config_path: str = "x.yaml"', ["parameters"]),
            cell("from ndar.config import load_config\nfrom ndar.synth.config import SynthConfig\n"
                 "load_config(SynthConfig, config_path)"),
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook))
    missing = tmp_path / "nope.yaml"
    assert (
        main(
            [
                "notebooks",
                "--notebook",
                str(path),
                "--out",
                str(tmp_path / "out"),
                "-p",
                "config_path",
                str(missing),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"config file not found: {missing}" in err and "nb.ipynb cell [" in err and "Traceback" not in err


def test_a_resume_folder_that_is_no_checkpoint_is_a_user_error(tmp_path):
    """`finetune --resume DIR` with a wrong DIR: one line, as any other wrong path."""
    from ndar.finetune.checkpoint import resume_folder

    with pytest.raises(user_errors(), match="not a checkpoint folder"):
        resume_folder(tmp_path / "run" / "checkpoints", str(tmp_path / "nope"))


def test_cache_clips_from_finetune_takes_overrides_after_the_configs(monkeypatch, tmp_path):
    """`cache-clips --from-finetune A.yaml key=value`: nargs='+' swallowed the overrides as config paths."""
    import ndar.clipcache.build

    built = []
    monkeypatch.setattr(
        ndar.clipcache.build, "run_many", lambda cfgs: built.extend(cfgs) or [{} for _ in cfgs]
    )
    cache = tmp_path / "cache"
    tiny = str(REPO / "configs" / "finetune" / "tiny" / "k400_vith.yaml")
    args = ["cache-clips", "--from-finetune", tiny, f"data.root={tmp_path}", f"data.cache_dir={cache}"]
    assert main([*args, "data.view=dashboard"]) == 0
    assert len(built) == 1 and built[0].out == cache and built[0].root == tmp_path
    assert built[0].views == ["dashboard"]


def test_an_ensemble_with_a_wrong_source_path_can_be_corrected(capsys, tmp_path):
    """The failed run recorded its settings before reading its sources, so the corrected command was
    refused as "other settings"; a config naming no source was a traceback."""
    where = [f"out_dir={tmp_path}", "run_name=r", "feature_sets=[]"]
    wrong = f"sources=[{{name: tim, path: {tmp_path / 'nope'}, kind: head}}]"
    assert main(["ensemble", "--config", ENSEMBLE, *where, wrong]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "prediction source file not found" in err
    assert not (tmp_path / "r" / "config.yaml").exists()
    assert main(["ensemble", "--config", ENSEMBLE, *where, "sources=[]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "lists no sources and no feature_sets" in err


def test_an_unknown_head_or_view_is_one_line(capsys):
    """`heads train --head nope` was a KeyError traceback listing no head; `views=[front]` a ValueError one."""
    config = str(REPO / "configs" / "heads" / "actionformer_tiny.yaml")
    assert main(["heads", "train", "--head", "nope", "--config", config]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown temporal head 'nope'; expected one of ['actionformer', 'tim']" in err
    from ndar.taxonomy import canonical_view

    with pytest.raises(user_errors(), match="unknown camera view 'front'"):
        canonical_view("front")
