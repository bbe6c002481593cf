"""Outlier protection: the pruned search for the most isolated rows against brute force, and the count."""

from __future__ import annotations

import numpy as np
import pytest

from privacy.outliers import most_isolated, outlier_protection


def _points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered 2-D points plus a few far ones, with every point's exact isolation by brute force."""
    rng = np.random.default_rng(seed)
    points = np.vstack([rng.normal(0, 1, (n - 5, 2)), rng.uniform(5, 20, (5, 2))])
    distances = np.abs(points[:, None, :] - points[None, :, :]).sum(axis=2)
    np.fill_diagonal(distances, np.inf)
    return distances, distances.min(axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_most_isolated_is_exact_and_measures_few_rows(seed: int) -> None:
    distances, isolation = _points(600, seed)
    sample = np.random.default_rng(seed).choice(600, 60, replace=False)
    bounds = distances[:, sample].min(axis=1)  # nearest sampled other row: at least the isolation
    measured: list[int] = []

    def isolation_of(rows: np.ndarray) -> np.ndarray:
        measured.extend(rows)
        return isolation[rows]

    rows, found = most_isolated(bounds, isolation_of, 10, block=32)
    np.testing.assert_array_equal(found, np.sort(isolation)[::-1][:10])
    np.testing.assert_array_equal(isolation[rows], found)
    assert len(set(measured)) == len(measured) < 300


def test_most_isolated_with_no_useful_bounds_measures_everything() -> None:
    _, isolation = _points(100, 3)
    rows, found = most_isolated(np.full(100, np.inf), lambda r: isolation[r], 200, block=7)
    assert len(rows) == 100 and np.all(np.diff(found) <= 0)


def test_outlier_protection_counts_near_reproductions() -> None:
    isolation = np.array([0.5, 0.4, 0.2, 0.0])
    nearest = np.array([0.0, 0.1, 0.019, 0.0])  # a copy, a quarter of the way, just under 0.1, a twin in train
    result = outlier_protection(isolation, nearest, near_fraction=0.1)
    assert (result.k, result.reproduced) == (4, 2)
    assert result.min_ratio == 0.0
    assert outlier_protection(isolation[1:2], nearest[1:2], near_fraction=0.1).min_ratio == pytest.approx(0.25)


def test_a_row_with_a_twin_in_train_is_never_counted() -> None:
    result = outlier_protection(np.array([0.0]), np.array([0.0]))
    assert (result.reproduced, result.min_ratio) == (0, np.inf)
    assert outlier_protection(np.array([]), np.array([])).min_ratio == np.inf
