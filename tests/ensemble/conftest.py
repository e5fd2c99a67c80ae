"""Tiny synthetic prediction sources + a stub dataset, shared by the ensemble tests."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from ndar.ensemble.config import EnsembleConfig, SourceSpec
from ndar.ensemble.stacker import StackerConfig
from ndar.ensemble.synthetic import make_sources, write_dataset_stub, write_source_folders
from ndar.ensemble.tuning import TuningConfig


@dataclass
class Bench:
    root: Path
    sources: dict
    oof_truth: dict
    test_truth: dict
    ids: dict
    folders: dict


@pytest.fixture(scope="session")
def bench(tmp_path_factory) -> Bench:
    root = tmp_path_factory.mktemp("ensemble")
    sources, oof_truth, test_truth = make_sources(n_drivers=3, n_sources=3, n_test_drivers=1, seed=3)
    ids = write_dataset_stub(root / "data", oof_truth, test_truth)
    folders = write_source_folders(root / "sources", sources)
    return Bench(root, sources, oof_truth, test_truth, ids, folders)


@pytest.fixture(scope="session")
def tiny_config():
    """The function below, as a fixture (test folders are not packages)."""
    return make_tiny_config


def make_tiny_config(bench: Bench, out: Path, **changes) -> EnsembleConfig:
    """A fast config: tiny stacker, one tuning round over short grids."""
    cfg = EnsembleConfig(
        run_name="tiny",
        out_dir=out,
        data_root=bench.root / "data",
        sources=[SourceSpec(name, folder, "head") for name, folder in bench.folders.items()],
        stacker=StackerConfig(n_estimators=8, num_leaves=4, folds=3, context=[5]),
        tuning=TuningConfig(
            rounds=1,
            weight_grid=[0.0, 1.0],
            segment_weight_grid=[0.0, 1.0],
            threshold_grid=[0.15, 0.3],
            smooth_grid=[1, 3],
            merge_gap_grid=[2.0],
            min_dur_grid=[1.0],
            max_dur_grid=[30.0],
            per_class_thresholds=False,
            tune_reassign=False,
            tune_fill=False,
            single_source_rounds=1,
        ),
        report_timelines=2,
    )
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg
