"""Outlier protection: the pooled isolation ranking, and members reproduced beyond equally isolated non-members."""

from __future__ import annotations

import numpy as np
import pytest

from privacy.outliers import isolated, outlier_protection


def test_isolated_rows_are_as_many_members_as_non_members() -> None:
    isolation = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    is_member = np.array([True, True, False, True, True, False, True, True, False, True])
    # 9 rows with a positive isolation, 3 of them non-members: k = 1 of each, then 2 of each, at most 3
    np.testing.assert_array_equal(isolated(isolation, is_member, share=0.01, minimum=1), [0, 2])
    np.testing.assert_array_equal(isolated(isolation, is_member, share=0.5, minimum=1), [0, 1, 2, 5])
    np.testing.assert_array_equal(isolated(isolation, is_member, share=1.0, minimum=1), [0, 1, 2, 3, 5, 8])
    assert 9 not in isolated(isolation, is_member, share=1.0, minimum=10)  # a row with an exact twin: never isolated


def test_reproduced_members_are_compared_with_reproduced_non_members() -> None:
    isolation = np.array([0.5, 0.4, 0.3, 0.2, 0.1, 0.1])
    nearest = np.array([0.0, 0.1, 0.019, 0.0, 0.005, 0.5])  # a copy, not near, just under 0.1 x, a copy, near, far
    is_member = np.array([True, True, True, False, False, False])
    result = outlier_protection(isolation, nearest, is_member, near_fraction=0.1, share=1.0, minimum=1, alpha=0.025)
    np.testing.assert_array_equal(result.members, [0, 1, 2])
    np.testing.assert_array_equal(result.nonmembers, [3, 4, 5])
    assert (result.members_reproduced, result.nonmembers_reproduced) == (2, 2)
    assert result.excess == pytest.approx(0.0)
    assert result.excess_ci[0] < 0 < result.excess_ci[1]
    assert result.p_value > 0.5
    assert result.min_ratio == 0.0


def test_honest_reproductions_do_not_refuse_but_planted_ones_do() -> None:
    """Members and non-members alike get 'reproduced' 5% of the time (near-twins in the population): no excess.

    Twenty of the most isolated members copied on top: the lower bound leaves 0.
    """
    rng = np.random.default_rng(0)
    n = 20_000
    isolation = rng.exponential(0.05, n)
    is_member = rng.permutation(n) < n // 2
    nearest = isolation * np.where(rng.random(n) < 0.05, 0.05, rng.uniform(0.2, 3, n))
    honest = outlier_protection(isolation, nearest, is_member)
    assert honest.excess_ci[0] < 0 and honest.p_value > 0.001
    assert len(honest.members) + len(honest.nonmembers) == pytest.approx(0.01 * n, abs=2)
    planted = nearest.copy()
    planted[honest.members[:20]] = 0.001 * isolation[honest.members[:20]]
    leaked = outlier_protection(isolation, planted, is_member)
    assert leaked.excess_ci[0] > 0 and leaked.p_value < 0.001
    assert leaked.min_ratio == pytest.approx(0.001)


def test_no_isolated_rows_gives_no_evidence() -> None:
    result = outlier_protection(np.zeros(4), np.zeros(4), np.array([True, True, False, False]))
    assert (len(result.members), result.members_reproduced, result.min_ratio) == (0, 0, np.inf)
    assert result.excess_ci[0] < 0 < result.excess_ci[1] and result.p_value == 1.0
