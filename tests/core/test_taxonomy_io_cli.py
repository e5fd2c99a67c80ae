import subprocess
import sys

import pytest

from ndar import taxonomy
from ndar.cli import COMMANDS, main
from ndar.registry import Registry
from ndar.utils.io import atomic_path, atomic_write_text


def test_classes_and_2022_mapping():
    assert taxonomy.NUM_CLASSES == 16 and taxonomy.SCORED_CLASSES == tuple(range(1, 16))
    assert len(taxonomy.CLASSES_2022) == 18
    assert taxonomy.MAP_2022_TO_2023[7] is None
    # 2022 ids 8..15 are the 2023 ids 7..14, with the same names
    for old in range(8, 16):
        assert taxonomy.CLASSES[taxonomy.MAP_2022_TO_2023[old]] == taxonomy.CLASSES_2022[old]
    assert taxonomy.MAP_2022_TO_2023[16] == taxonomy.MAP_2022_TO_2023[17] == 15


@pytest.mark.parametrize(
    "name,view",
    [
        ("Dashboard_user_id_42271_NoAudio_3", "dashboard"),
        ("Rear_view_user_id_42271_NoAudio_3.MP4", "rear"),
        ("Rearview_User_id_1_3", "rear"),
        ("Rearview_mirror_user_id_1_NoAudio_3", "rear"),
        ("Right_side_window_user_id_1_NoAudio_3", "right"),
        ("Rightside_window_user_id_1_3", "right"),
        ("Right_window_user_id_1_NoAudio_3", "right"),
        ("'Dashboard_user_id_12670_NoAudio_5.MP4'", "dashboard"),
    ],
)
def test_view_spellings(name, view):
    assert taxonomy.view_from_filename(name) == view


def test_unknown_view_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown camera view 'Ceiling'"):
        taxonomy.canonical_view("Ceiling")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    atomic_write_text(target, "whole")
    assert target.read_text() == "whole" and len(list(tmp_path.iterdir())) == 1


def test_a_writer_killed_mid_write_leaves_no_file_a_reader_glob_matches(tmp_path):
    """kill -9 runs no cleanup: the temporary it leaves must not look like a finished `*.npz`."""
    import numpy as np

    from ndar.extract.runner import remove_stale_temporaries

    features = tmp_path / "set" / "rear"
    with atomic_path(features / "a.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, x=np.zeros(3))
        fh.flush()
        killed = features / tmp.name.replace(".a.npz.", ".b.npz.")  # a writer of b.npz killed here
        killed.write_bytes(tmp.read_bytes()[:10])
    assert np.load(features / "a.npz")["x"].shape == (3,)  # np.savez on an open file adds no suffix
    assert [p.name for p in tmp_path.glob("*/*/*.npz")] == ["a.npz"]
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in features.iterdir()) == ["a.npz"]


def test_registry_refuses_duplicates_and_lists_names():
    reg = Registry("head")
    reg.register("a")(object)
    with pytest.raises(KeyError, match="already registered"):
        reg.register("a")(object)
    with pytest.raises(KeyError, match=r"registered: \['a'\]"):
        reg.get("b")


def test_cli_help_lists_every_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert main(["nope"]) == 2


@pytest.mark.slow
def test_every_command_module_exposes_the_contract():
    import importlib

    for name, (module, _) in COMMANDS.items():
        mod = importlib.import_module(module)
        assert callable(mod.add_arguments), name
        assert callable(mod.main), name


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "ndar", "--help"], capture_output=True, text=True, check=True)
    assert "synth" in out.stdout


def test_atomic_write_gives_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(mask)
    assert (path.stat().st_mode & 0o777) == 0o644


def test_bare_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: python -m ndar" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["finetune"], ["heads", "train"], ["extract"], ["ensemble"], ["run"]])
def test_config_needing_commands_refuse_without_one(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--config" in err


def test_user_errors_are_one_line_and_name_their_source(capsys, tmp_path):
    config = "configs/finetune/tiny/k400_vith.yaml"
    assert main(["finetune", "--config", config, "train.epochs=abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "override 'train.epochs=abc'" in err and "expected an integer" in err
    assert main(["finetune", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: abc}\n")
    assert main(["finetune", "--config", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err  # the file's own error names the file
    with pytest.raises(Exception, match="config file not found"):
        main(["finetune", "--config", str(tmp_path / "nope.yaml"), "--debug"])


def test_overrides_are_taken_anywhere_on_the_line():
    import argparse

    from ndar.cli import parse_command_line
    from ndar.pipeline import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parse_command_line(parser, ["a=1", "--config", "X", "name=y", "--no-notebooks", "b.c=[1]"])
    assert args.config == "X" and args.overrides == ["a=1", "name=y", "b.c=[1]"] and args.no_notebooks


def test_a_resume_over_other_settings_is_one_line_listing_the_changes(capsys, tmp_path):
    from ndar.config import load_config, save_config
    from ndar.ensemble.config import EnsembleConfig

    where = [f"out_dir={tmp_path}", "run_name=r"]
    save_config(load_config(EnsembleConfig, None, [*where, "seed=5"]), tmp_path / "r" / "config.yaml")
    assert main(["ensemble", "--config", "configs/ensemble/default.yaml", *where]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "seed: 5 -> 0" in err and "overwrite=true" in err
