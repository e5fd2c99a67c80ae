"""The one resume rule (ndar.resume): same settings skip, other settings refuse, overwrite redoes."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ndar.config import save_config, to_dict
from ndar.resume import SettingsChanged, saved_settings, should_skip


@dataclass
class Section:
    lr: float = 0.1


@dataclass
class Cfg:
    out: Path = Path("runs/x")
    epochs: int = 3
    train: Section = field(default_factory=Section)
    overwrite: bool = False


IGNORE = ("overwrite", "out")


def test_nothing_saved_runs(tmp_path):
    assert saved_settings(tmp_path / "config.yaml") is None
    assert should_skip("stage", tmp_path, Cfg(), None, complete=False, overwrite=False) is False
    # output files that record no settings are not trusted as made with these: the stage runs
    assert should_skip("stage", tmp_path, Cfg(), None, complete=True, overwrite=False) is False


def test_same_settings_skip_when_complete_and_run_when_not(tmp_path):
    saved = saved_settings(save_config(Cfg(), tmp_path / "config.yaml"))
    moved = Cfg(out=Path("elsewhere"))  # an ignored key may differ
    assert should_skip("stage", tmp_path, moved, saved, complete=True, overwrite=False, ignore=IGNORE)
    assert not should_skip("stage", tmp_path, moved, saved, complete=False, overwrite=False, ignore=IGNORE)


def test_other_settings_are_refused_listing_each_change(tmp_path):
    saved = to_dict(Cfg())
    new = Cfg(epochs=5, train=Section(lr=0.2))
    with pytest.raises(
        SettingsChanged, match=r"stage: .* \(epochs: 3 -> 5; train.lr: 0.1 -> 0.2\): pass overwrite=true"
    ):
        should_skip("stage", tmp_path, new, saved, complete=True, overwrite=False, ignore=IGNORE)
    with pytest.raises(SettingsChanged):  # an unfinished run of other settings is refused too
        should_skip("stage", tmp_path, new, saved, complete=False, overwrite=False, ignore=IGNORE)


def test_overwrite_redoes_whatever_is_there(tmp_path):
    saved = to_dict(Cfg())
    assert not should_skip("s", tmp_path, Cfg(epochs=9, overwrite=True), saved, True, True, IGNORE)
    assert not should_skip("s", tmp_path, Cfg(overwrite=True), saved, True, True, IGNORE)
