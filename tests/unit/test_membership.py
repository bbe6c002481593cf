"""Membership inference: the attack metrics, the TPR bound, the ensemble's scoring and the rate intervals.

AUC and TPR-at-FPR against their definitions, the exactness of the TPR bound when nothing leaks, the ensemble's
out-of-fold scoring, and the rate intervals against textbook values.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import fisher_exact

from generators.tabular.errors import BadInputError
from privacy.membership import (
    attack_auc,
    density_ratio_scores,
    distance_scores,
    ensemble_scores,
    excess_p_value,
    neighbour_features,
    rate_difference,
    tpr_at_fpr,
    wilson_bounds,
)


def _pairwise_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    diff = members[:, None] - nonmembers[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_auc_matches_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    members, nonmembers = rng.integers(0, 6, 300).astype(float), rng.integers(0, 5, 200).astype(float)
    estimate = attack_auc(members, nonmembers)
    assert estimate.auc == pytest.approx(_pairwise_auc(members, nonmembers))
    assert estimate.ci[0] <= estimate.auc <= estimate.ci[1]


def test_delong_interval_has_the_auc_standard_error_and_narrows_with_alpha() -> None:
    rng = np.random.default_rng(1)
    members, nonmembers = rng.normal(0.3, 1, 400), rng.normal(0, 1, 400)
    wide, narrow = attack_auc(members, nonmembers, alpha=0.001), attack_auc(members, nonmembers, alpha=0.025)
    assert 0.5 < wide.ci[0] < narrow.ci[0] < wide.auc < narrow.ci[1] < wide.ci[1] < 0.7
    assert narrow.ci[1] - narrow.ci[0] == pytest.approx(2 * 1.96 * 0.02, rel=0.2)  # the AUC's error here is ~0.02


def test_separated_scores_give_one_and_reversed_zero() -> None:
    ones = attack_auc(np.arange(10, 20.0), np.arange(10.0))
    assert ones.auc == 1.0 and ones.ci == (1.0, 1.0)
    assert attack_auc(np.arange(10.0), np.arange(10, 20.0)).auc == 0.0


def test_nan_scores_give_nan_and_empty_sides_are_refused() -> None:
    assert np.isnan(attack_auc(np.array([np.nan, 1.0]), np.array([0.0])).auc)
    with pytest.raises(BadInputError, match="non-members"):
        attack_auc(np.array([1.0]), np.array([]))
    with pytest.raises(BadInputError, match="non-members"):
        tpr_at_fpr(np.array([]), np.array([1.0]), 0.01, alpha=0.001)


def test_distance_attack_ranks_the_nearest_first() -> None:
    assert attack_auc(distance_scores(np.array([0.0, 0.01])), distance_scores(np.array([0.2, 0.3]))).auc == 1.0


def test_density_ratio_flags_a_point_mass_but_not_a_dense_region() -> None:
    """A point mass of synthetic rows on a member is flagged; a dense region is not.

    A member with a synthetic copy outscores a non-member in a dense region whose synthetic rows are just as near
    as its real neighbours, though the latter's synthetic radius is smaller.
    """
    copied = density_ratio_scores(np.array([0.0]), np.array([0.2]))
    dense = density_ratio_scores(np.array([0.01]), np.array([0.01]))
    assert copied[0] > dense[0]
    assert np.all(np.isfinite(copied))


def test_density_ratio_auc_ignores_the_distance_scale() -> None:
    """Only the ratio of radii counts, so a Gower space's unknown dimension and scale drop out of the AUC."""
    rng = np.random.default_rng(2)
    syn_m, ref_m, syn_n, ref_n = (rng.uniform(0.01, 0.2, 300) for _ in range(4))
    plain = attack_auc(density_ratio_scores(syn_m, ref_m), density_ratio_scores(syn_n, ref_n))
    scaled = attack_auc(density_ratio_scores(3 * syn_m, 3 * ref_m), density_ratio_scores(3 * syn_n, 3 * ref_n))
    assert scaled.auc == pytest.approx(plain.auc, abs=1e-6)


def test_tpr_is_read_at_the_non_members_quantile() -> None:
    nonmembers = np.arange(100.0)  # FPR 5%: the 6th highest, 94, flags 95..99
    members = np.array([99.5, 96.0, 94.0, 50.0])
    result = tpr_at_fpr(members, nonmembers, 0.05, alpha=0.001)
    assert (result.fpr, result.tpr, result.achieved_fpr) == (0.05, 0.5, 0.05)  # a tie with the threshold is not flagged
    assert result.ci[0] == 0.05 <= result.tpr <= result.ci[1]


@pytest.mark.parametrize(
    ("n_members", "n_nonmembers", "fpr"), [(300, 60, 0.05), (2000, 400, 0.005), (500, 5000, 0.01)]
)
def test_the_tpr_lower_bound_errs_at_most_alpha_when_nothing_leaks(
    n_members: int, n_nonmembers: int, fpr: float
) -> None:
    """Members and non-members from one distribution: the lower bound passes the FPR in at most alpha of the draws.

    That holds however few non-members set the threshold (a plain binomial bound that ignores the threshold's noise
    fails far more often with 60 non-members).
    """
    rng = np.random.default_rng(n_members)
    alpha, draws = 0.05, 400
    above = sum(
        tpr_at_fpr(rng.normal(size=n_members), rng.normal(size=n_nonmembers), fpr, alpha=alpha).ci[0] > fpr
        for _ in range(draws)
    )
    assert above <= alpha * draws + 2 * np.sqrt(alpha * draws)


def test_a_few_exposed_members_lift_the_lower_bound_far_above_the_fpr() -> None:
    rng = np.random.default_rng(3)
    members, nonmembers = rng.normal(size=10_000), rng.normal(size=4_000)
    members[:100] = 10.0  # 1% of the members sit above every non-member
    result = tpr_at_fpr(members, nonmembers, 0.005, alpha=0.001)
    assert result.ci[0] > 1.5 * 0.005
    assert result.ci[0] < result.tpr < result.ci[1]
    honest = tpr_at_fpr(members[100:], nonmembers, 0.005, alpha=0.001)
    assert honest.ci[0] == 0.005


def test_ensemble_scores_are_out_of_fold_ranks() -> None:
    """A planted corner of the feature space is found; random labels on the same features find nothing.

    The seed fixes the scores.
    """
    rng = np.random.default_rng(4)
    to_synthetic = np.sort(rng.uniform(0.01, 0.2, (4000, 5)), axis=1)
    isolation = rng.uniform(0.01, 0.2, 4000)
    is_member = np.arange(4000) < 3000
    to_synthetic[:60] *= 0.001  # 2% of the members have synthetic near-copies
    features = neighbour_features(to_synthetic, isolation)
    scores = ensemble_scores(features, is_member, seed=0)
    assert scores.shape == (4000,) and scores.min() > 0 and scores.max() <= 1
    assert tpr_at_fpr(scores[is_member], scores[~is_member], 0.005, alpha=0.001).ci[0] > 0.01
    shuffled = rng.permutation(is_member)
    chance = ensemble_scores(features, shuffled, seed=0)
    assert 0.45 < attack_auc(chance[shuffled], chance[~shuffled]).auc < 0.55
    np.testing.assert_array_equal(ensemble_scores(features, is_member, seed=0), scores)
    lone = ensemble_scores(features[:5], np.array([True, True, True, True, False]), seed=0)
    np.testing.assert_array_equal(lone, np.zeros(5))  # one non-member: nothing to learn from


def test_wilson_bounds_match_the_textbook_interval() -> None:
    assert wilson_bounds(0.8, 10, 0.025) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_bounds(0.0, 0, 0.025) == (0.0, 1.0)


def test_rate_difference_is_newcombes_hybrid_score_interval() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, table II example (a): 56/70 - 48/80, method 10."""
    difference, (low, high) = rate_difference(56, 70, 48, 80, alpha=0.025)
    assert difference == pytest.approx(0.2)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert rate_difference(0, 50, 0, 50, alpha=0.001)[1][0] < 0 < rate_difference(0, 50, 0, 50, alpha=0.001)[1][1]


def test_excess_p_value_is_the_one_sided_fisher_test() -> None:
    expected = fisher_exact([[20, 80], [2, 98]], alternative="greater").pvalue
    assert excess_p_value(20, 100, 2, 100) == pytest.approx(expected)
    assert excess_p_value(0, 0, 1, 10) == 1.0
