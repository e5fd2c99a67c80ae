from __future__ import annotations

from collections import Counter

import pytest

from ndar.data.folds import assign_folds, read_folds, write_folds

DRIVERS = [str(d) for d in range(10001, 10023)]  # 22 drivers


def test_deterministic_and_order_independent():
    folds = assign_folds(DRIVERS, 5, seed=3)
    assert assign_folds(list(reversed(DRIVERS)) + DRIVERS[:4], 5, seed=3) == folds
    assert set(folds) == set(DRIVERS)


def test_balanced_by_driver():
    for k in (2, 3, 5, 22):
        sizes = Counter(assign_folds(DRIVERS, k, seed=0).values())
        assert sorted(sizes) == list(range(k))
        assert max(sizes.values()) - min(sizes.values()) <= 1


def test_seed_changes_the_assignment():
    assignments = {tuple(sorted(assign_folds(DRIVERS, 5, seed=s).items())) for s in range(4)}
    assert len(assignments) > 1


def test_k_larger_than_drivers_is_a_clear_error():
    with pytest.raises(ValueError, match="k=5 folds need at least 5 drivers, but only 3"):
        assign_folds(["1", "2", "3"], 5, seed=0)
    with pytest.raises(ValueError, match="k must be an integer >= 2"):
        assign_folds(DRIVERS, 1, seed=0)


def test_folds_json_round_trip(tmp_path):
    folds = assign_folds(DRIVERS, 4, seed=1)
    path = write_folds(tmp_path / "folds.json", folds, 4, 1)
    assert read_folds(path) == folds
