"""Every YAML shipped under configs/ loads into its stage's dataclass.

A config that no test loads goes stale silently (a renamed field is only found when someone runs
it), so the mapping below is the single list of config folders: a YAML in a folder it does not name
fails `test_every_config_folder_is_mapped`, and the new folder must be added here. A shared base
(`_base*.yaml`) is not a stage config: it is loaded through the configs that name it, and every base
must be named by one (`test_every_base_file_is_used`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ndar.baseline.config import BaselineConfig
from ndar.config import BASE_KEY, is_base_file, load_config, read_yaml_with_base, to_dict
from ndar.data.config import PrepareConfig
from ndar.ensemble.config import EnsembleConfig
from ndar.extract.config import ExtractConfig
from ndar.finetune.config import FinetuneConfig
from ndar.heads.config import HeadsConfig, head_config
from ndar.pipeline import MainConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"

CONFIG_CLASSES: dict[str, type] = {
    "baseline": BaselineConfig,
    "ensemble": EnsembleConfig,
    "extract": ExtractConfig,
    "finetune": FinetuneConfig,  # and its sub-folders (tiny/)
    "heads": HeadsConfig,
    "main": MainConfig,
    "prepare": PrepareConfig,
}

ALL_YAML = sorted([*CONFIGS.rglob("*.yaml"), *CONFIGS.rglob("*.yml")])
SHIPPED = [p for p in ALL_YAML if not is_base_file(p)]
BASES = [p for p in ALL_YAML if is_base_file(p)]


def folder_of(path: Path) -> str:
    """The top-level folder under configs/ ('' for a file directly in configs/)."""
    parts = path.relative_to(CONFIGS).parts
    return parts[0] if len(parts) > 1 else ""


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_configs_are_found():
    assert len(SHIPPED) >= len(CONFIG_CLASSES)
    assert {folder_of(p) for p in SHIPPED} >= set(CONFIG_CLASSES)


def test_every_config_folder_is_mapped():
    unmapped = [rel(p) for p in SHIPPED if folder_of(p) not in CONFIG_CLASSES]
    assert not unmapped, f"add the folder of {unmapped} to CONFIG_CLASSES in {Path(__file__).name}"


@pytest.mark.parametrize("path", [p for p in SHIPPED if folder_of(p) in CONFIG_CLASSES], ids=rel)
def test_shipped_config_loads_into_its_dataclass(path):
    cls = CONFIG_CLASSES[folder_of(path)]
    cfg = load_config(cls, path)
    assert isinstance(cfg, cls)
    if isinstance(cfg, HeadsConfig):
        head_config(cfg)  # the head's own section is typed (unknown keys are an error) only here


@pytest.mark.parametrize("path", sorted((CONFIGS / "main").glob("*.yaml")), ids=rel)
def test_main_config_names_stage_configs_that_load(path):
    """The stage configs a main job fills in for its tracks and heads exist and load."""
    cfg = load_config(MainConfig, path)
    named = [
        *((FinetuneConfig, cfg.finetune_config.format(track=t)) for t in cfg.tracks),
        *((HeadsConfig, cfg.heads_config.format(head=h)) for h in cfg.heads),
        (ExtractConfig, cfg.extract_config),
        (EnsembleConfig, cfg.ensemble_config),
        (BaselineConfig, cfg.baseline_config),
    ]
    for cls, name in named:
        assert (ROOT / name).is_file(), f"{rel(path)} names {name}, which does not exist"
        loaded = load_config(cls, ROOT / name)
        if isinstance(loaded, HeadsConfig):
            head_config(loaded)


def test_every_base_file_is_used():
    """A base no config names would be loaded by no test: it must be a child's `_base_`."""
    import yaml

    named = {
        (p.parent / data[BASE_KEY]).resolve()
        for p in SHIPPED
        if isinstance(data := yaml.safe_load(p.read_text()) or {}, dict) and BASE_KEY in data
    }
    unused = [rel(b) for b in BASES if b.resolve() not in named]
    assert not unused, f"{unused} is named as _base_ by no config under configs/"
    for child in SHIPPED:
        read_yaml_with_base(child)  # a base with its own _base_ is refused here


def test_main_job_synth_settings_have_one_source():
    """The main job's synthetic dataset is MainJobSynthConfig's defaults, whether it comes from the
    shipped main config or from the benches' MAIN_JOB_ARGS."""
    import argparse

    from ndar.synth import MAIN_JOB_ARGS
    from ndar.synth.cli import add_arguments, config_from_args
    from ndar.synth.config import MainJobSynthConfig

    cfg = load_config(MainConfig, CONFIGS / "main" / "synthetic.yaml")
    assert cfg.synth == MainJobSynthConfig() and (cfg.synth.fps, cfg.synth.time_scale) == (10.0, 0.25)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    from_args = config_from_args(parser.parse_args(MAIN_JOB_ARGS))
    assert to_dict(from_args) == to_dict(cfg.synth)
