from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from ndar.config import ConfigError, config_changes, load_config, save_config


@dataclass
class Train:
    """Training section."""

    epochs: int = 1  # passes over the data
    lr: float = 1e-3
    views: list[str] = field(default_factory=lambda: ["rear"])


@dataclass
class Cfg:
    out: Path = Path("runs/x")
    name: str = "a"
    seed: int | None = None
    train: Train = field(default_factory=Train)


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: b\ntrain:\n  epochs: 3\n")
    cfg = load_config(Cfg, path, ["train.lr=0.5", "train.views=[rear,dashboard]", "seed=7"])
    assert cfg.name == "b" and cfg.train.epochs == 3 and cfg.train.lr == 0.5
    assert cfg.train.views == ["rear", "dashboard"] and cfg.seed == 7
    assert isinstance(cfg.out, Path)


def test_unknown_key_names_the_key_and_valid_ones(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epoch'\].*epochs"):
        load_config(Cfg, path)


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match=r"train.epochs: expected an integer"):
        load_config(Cfg, None, ["train.epochs=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Cfg, None, ["train.epochs"])


def test_save_config_round_trip(tmp_path):
    cfg = load_config(Cfg, None, ["train.epochs=5"])
    path = save_config(cfg, tmp_path / "resolved.yaml")
    assert yaml.safe_load(path.read_text())["train"]["epochs"] == 5
    assert load_config(Cfg, path) == cfg


def test_yaml_exponent_without_dot_is_a_float():
    cfg = load_config(Cfg, None, ["train.lr=1e-3"])
    assert cfg.train.lr == 0.001
    with pytest.raises(ConfigError, match="train.lr: expected a number"):
        load_config(Cfg, None, ["train.lr=fast"])


def test_config_changes_lists_dotted_differences_and_skips_ignored_keys(tmp_path):
    path = save_config(load_config(Cfg, None, ["train.epochs=5"]), tmp_path / "saved.yaml")
    assert config_changes(path, load_config(Cfg, None, ["train.epochs=5"])) == []
    now = load_config(Cfg, None, ["train.epochs=6", "out=elsewhere", "train.views=[rear,dashboard]"])
    assert config_changes(path, now, ignore=("out",)) == [
        "train.epochs: 5 -> 6",
        "train.views: ['rear'] -> ['rear', 'dashboard']",
    ]
    assert config_changes(path, now, ignore=("out", "train")) == []  # a prefix skips a whole section


def test_an_option_added_after_a_run_is_no_change_at_its_default(tmp_path):
    """A run saved before `train.lr` existed behaved as its default does: reusing it with the default
    is allowed, asking for another value is a change (and a key that disappeared still is one)."""
    saved = tmp_path / "saved.yaml"
    saved.write_text("out: runs/x\nname: a\nseed: null\ntrain:\n  epochs: 1\n  views: [rear]\n")
    assert config_changes(saved, load_config(Cfg, None)) == []
    assert config_changes(saved, load_config(Cfg, None, ["train.lr=0.5"])) == ["train.lr: (absent) -> 0.5"]
    saved.write_text(saved.read_text() + "  momentum: 0.9\n")
    assert config_changes(saved, load_config(Cfg, None)) == ["train.momentum: 0.9 -> (absent)"]


@dataclass
class Limited:
    batch_size: int = 2
    lr: float | None = None
    device: str = "cpu"
    mode: str = "a"

    LIMITS = {"batch_size": ">= 1", "lr": "> 0, <= 1", "device": r"re:cpu|cuda(:\d+)?", "mode": ("a", "b")}


@dataclass
class Outer:
    inner: Limited = field(default_factory=Limited)


@pytest.mark.parametrize(
    "override, message",
    [
        ("inner.batch_size=0", "Outer.inner.batch_size: expected >= 1, got 0"),
        ("inner.lr=2", "Outer.inner.lr: expected > 0, <= 1, got 2.0"),
        ("inner.device=tpu", r"Outer.inner.device: expected cpu|cuda(:\d+)?, got 'tpu'"),
        ("inner.mode=c", "Outer.inner.mode: expected one of ('a', 'b'), got 'c'"),
    ],
)
def test_limits_refuse_values_naming_the_field(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(Outer, None, [override])
    # an override's error names the override, then the field and what was expected
    assert str(caught.value) == f"override {override!r}: {message}"


def test_limits_pass_in_range_values_and_none():
    cfg = load_config(
        Outer, None, ["inner.batch_size=1", "inner.lr=1", "inner.device=cuda:0", "inner.mode=b"]
    )
    assert (cfg.inner.batch_size, cfg.inner.lr, cfg.inner.device) == (1, 1.0, "cuda:0")
    assert load_config(Outer, None, []).inner.lr is None


def test_base_inheritance_deep_merges_the_child_over_its_base(tmp_path):
    (tmp_path / "_base_.yaml").write_text("name: b\ntrain: {epochs: 3, lr: 0.5, views: [rear, dashboard]}\n")
    child = tmp_path / "child.yaml"
    child.write_text("_base_: _base_.yaml\ntrain: {epochs: 7, views: [right]}\n")
    cfg = load_config(Cfg, child, ["train.views=[dashboard]"])
    # the section merges key by key (lr, which the child leaves out, is the base's 0.5, not the
    # default), a value replaces the base's, an override comes last
    assert (cfg.name, cfg.train.epochs, cfg.train.lr, cfg.train.views) == ("b", 7, 0.5, ["dashboard"])
    assert load_config(Cfg, child).train.views == ["right"]  # a list replaces the base's, not appended


def test_base_is_resolved_relative_to_the_child(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "_base_.yaml").write_text("name: from_base\n")
    (tmp_path / "sub" / "c.yaml").write_text("_base_: _base_.yaml\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(Cfg, Path("sub/c.yaml")).name == "from_base"


def test_a_base_with_its_own_base_is_refused(tmp_path):
    (tmp_path / "_base_root.yaml").write_text("name: r\n")
    (tmp_path / "_base_.yaml").write_text("_base_: _base_root.yaml\nseed: 1\n")
    (tmp_path / "c.yaml").write_text("_base_: _base_.yaml\n")
    with pytest.raises(ConfigError, match=r"_base_\.yaml: a base config may not have its own _base_"):
        load_config(Cfg, tmp_path / "c.yaml")


def test_a_missing_base_names_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("_base_: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="config file not found: .*nowhere.yaml"):
        load_config(Cfg, tmp_path / "c.yaml")


@dataclass
class Keyed:
    per_class: dict[int, float] = field(default_factory=dict)


def test_int_keyed_mappings_take_dotted_and_quoted_keys_and_refuse_others(tmp_path):
    """A dotted override or a quoted YAML key gives "3": kept as a string, an int lookup never finds it."""
    assert load_config(Keyed, None, ["per_class.3=0.9"]).per_class == {3: 0.9}
    path = tmp_path / "k.yaml"
    path.write_text("per_class: {'4': 0.5, 5: 1}\n")
    assert load_config(Keyed, path).per_class == {4: 0.5, 5: 1.0}
    with pytest.raises(ConfigError, match=r"per_class key 'x': expected an integer"):
        load_config(Keyed, None, ["per_class={x: 1}"])
