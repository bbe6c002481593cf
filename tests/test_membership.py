"""Membership-inference AUCs: the vectorised bootstrap against brute force, and the density-ratio score."""

from __future__ import annotations

import numpy as np
import pytest

from generators.schema import BadInputError
from privacy.membership import attack_auc, density_ratio_scores, distance_scores


def _pairwise_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    diff = members[:, None] - nonmembers[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_auc_matches_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    members, nonmembers = rng.integers(0, 6, 300).astype(float), rng.integers(0, 5, 200).astype(float)
    estimate = attack_auc(members, nonmembers, resamples=50, seed=1)
    assert estimate.auc == pytest.approx(_pairwise_auc(members, nonmembers))
    assert estimate.ci[0] <= estimate.auc <= estimate.ci[1]


def test_bootstrap_resamples_are_pairwise_aucs_of_drawn_rows() -> None:
    """Every bootstrap AUC lies within what resampled rows can give, and the interval is seeded."""
    rng = np.random.default_rng(1)
    members, nonmembers = rng.normal(0.3, 1, 400), rng.normal(0, 1, 400)
    first, again, other = (attack_auc(members, nonmembers, resamples=200, seed=s) for s in (5, 5, 6))
    assert first == again and first.ci != other.ci
    low, high = first.ci
    assert 0.53 < low < first.auc < high < 0.7
    assert high - low == pytest.approx(2 * 1.96 * 0.02, rel=0.35)  # the AUC's standard error here is ~0.02


def test_separated_scores_give_one_and_reversed_zero() -> None:
    ones = attack_auc(np.arange(10, 20.0), np.arange(10.0), resamples=20)
    assert ones.auc == 1.0 and ones.ci == (1.0, 1.0)
    assert attack_auc(np.arange(10.0), np.arange(10, 20.0), resamples=20).auc == 0.0


def test_nan_scores_give_nan_and_empty_sides_are_refused() -> None:
    assert np.isnan(attack_auc(np.array([np.nan, 1.0]), np.array([0.0]), resamples=10).auc)
    with pytest.raises(BadInputError, match="non-members"):
        attack_auc(np.array([1.0]), np.array([]))


def test_distance_attack_ranks_the_nearest_first() -> None:
    assert attack_auc(distance_scores(np.array([0.0, 0.01])), distance_scores(np.array([0.2, 0.3]))).auc == 1.0


def test_density_ratio_flags_a_point_mass_but_not_a_dense_region() -> None:
    """A member with a synthetic copy outscores a non-member in a dense region whose synthetic rows are
    just as near as its real neighbours, though the latter's synthetic radius is smaller."""
    copied = density_ratio_scores(np.array([0.0]), np.array([0.2]))
    dense = density_ratio_scores(np.array([0.01]), np.array([0.01]))
    assert copied[0] > dense[0]
    assert np.all(np.isfinite(copied))


def test_density_ratio_auc_ignores_the_distance_scale() -> None:
    """Only the ratio of radii counts, so a Gower space's unknown dimension and scale drop out of the AUC."""
    rng = np.random.default_rng(2)
    syn_m, ref_m, syn_n, ref_n = (rng.uniform(0.01, 0.2, 300) for _ in range(4))
    plain = attack_auc(density_ratio_scores(syn_m, ref_m), density_ratio_scores(syn_n, ref_n), resamples=20)
    scaled = attack_auc(
        density_ratio_scores(3 * syn_m, 3 * ref_m), density_ratio_scores(3 * syn_n, 3 * ref_n), resamples=20
    )
    assert scaled.auc == pytest.approx(plain.auc, abs=1e-6)
