"""The privacy evidence on real Adult rows.

Equal thirds and a holdout larger than train give finite numbers, real rows never trained on stay under every
proposed threshold, and the two planted leaks of the issue are refused by the number meant to catch them.

Each number is judged by the gate's own rule (`flows.gate.privacy_checks`): a check refuses only when the lower
bound of its interval (one-sided error alpha = 0.001) is past the threshold.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.gate import GateThresholds, privacy_checks
from flows.sources import load_table
from generators.tabular.schema import Schema
from privacy.attacks import AttackResult, AttacksResult
from privacy.audit import PrivacyAudit
from privacy.distance import PrivacyResult, distance_evidence, evaluate_privacy
from privacy.pii import PiiLeaks

ADULT = Path(__file__).resolve().parents[2] / "data" / "adult.parquet"
_SAFE = AttackResult("attack", 0.1, (0.08, 0.12), 0.1, (0.08, 0.12), 0.01, 0.0, (0.0, 0.01), 500)
SAFE_ATTACKS = AttacksResult(_SAFE, _SAFE, _SAFE, _SAFE, "none", 0.0)


def refusals(result: PrivacyResult) -> list[str]:
    """The distance checks the gate refuses on this evidence (PII and the anonymeter attacks set aside)."""
    audit = PrivacyAudit(result, SAFE_ATTACKS, PiiLeaks(0, {}, 0), {})
    return [check.name for check in privacy_checks(audit, GateThresholds(), None) if not check.passed]


@cache
def adult() -> tuple[pd.DataFrame, Schema]:
    table = load_table(ADULT)
    return table.frame, table.schema


def split(rows: int, shares: tuple[float, ...], seed: int) -> list[pd.DataFrame]:
    """A seeded sample of `rows` Adult rows cut at random into parts of the given shares."""
    frame, _ = adult()
    order = np.random.default_rng(seed).permutation(len(frame))[:rows]
    cuts = np.cumsum([round(share * rows) for share in shares])[:-1]
    return [frame.iloc[np.sort(part)].reset_index(drop=True) for part in np.split(order, cuts)]


def near_copies(rows: pd.DataFrame, train: pd.DataFrame, seed: int) -> pd.DataFrame:
    """`rows` with Gaussian noise of 1% of each numerical column's standard deviation in train: no exact copy."""
    _, schema = adult()
    numbers = [spec.name for spec in schema.learned if spec.kind.value == "numerical"]
    noise = np.random.default_rng(seed).normal(0, 0.01, (len(rows), len(numbers))) * train[numbers].std().to_numpy()
    return rows.assign(**{name: rows[name] + noise[:, i] for i, name in enumerate(numbers)})


@cache
def honest_thirds(seed: int) -> PrivacyResult:
    train, holdout, synthetic = split(len(adult()[0]), (1 / 3, 1 / 3, 1 / 3), seed)
    return evaluate_privacy(train, holdout, synthetic, adult()[1], seed=seed)


def _numbers(value: object) -> list[float]:
    """Every number in a result, its nested attack scores and intervals included."""
    if isinstance(value, int | float):
        return [float(value)]
    if dataclasses.is_dataclass(value):
        return _numbers(vars(value))
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, tuple | list) else ()
    return [number for item in items for number in _numbers(item)]


def test_equal_thirds_of_adult_give_a_finite_number_everywhere() -> None:
    """|train| == |holdout|: the density attack's reference is every other real row, not train outside a fold."""
    result = honest_thirds(0)
    assert len(_numbers(result)) > 50
    assert all(math.isfinite(value) for value in _numbers(result))
    assert result.isolated_k > 20 and result.isolated_holdout_k > 20


def test_a_holdout_larger_than_train_works() -> None:
    """The issue's crash: thirds of a 4,898-row table, 1,632 training rows and 1,633 holdout rows."""
    train, holdout, synthetic = split(4898, (1632 / 4898, 1633 / 4898, 1633 / 4898), seed=3)
    assert (len(train), len(holdout)) == (1632, 1633)
    result = evaluate_privacy(train, holdout, synthetic, adult()[1], seed=3)
    assert all(math.isfinite(value) for value in _numbers(result))
    assert refusals(result) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_real_rows_never_trained_on_pass_on_adult_thirds(seed: int) -> None:
    assert refusals(honest_thirds(seed)) == []


@pytest.mark.parametrize("seed", range(8))
def test_real_rows_never_trained_on_pass_on_small_tables(seed: int) -> None:
    train, holdout, synthetic = split(1000, (1 / 3, 1 / 3, 1 / 3), seed)
    assert refusals(evaluate_privacy(train, holdout, synthetic, adult()[1], seed=seed)) == []


def test_real_tables_with_duplicate_rows_pass() -> None:
    """A third of the rows appear twice, so real unseen rows copy training rows and have exact twins.

    The old isolated-row count refused such tables, the comparison with the holdout does not.
    """
    base = split(3000, (1.0,), seed=5)[0]
    twice = base.sample(1500, random_state=5)
    shuffled = pd.concat([base, twice], ignore_index=True).sample(frac=1.0, random_state=6).reset_index(drop=True)
    train, holdout, synthetic = (shuffled.iloc[i * 1500 : (i + 1) * 1500].reset_index(drop=True) for i in range(3))
    result = evaluate_privacy(train, holdout, synthetic, adult()[1], seed=5)
    assert result.exact_match_rate > 0.05 and result.holdout_exact_match_rate > 0.05
    assert refusals(result) == []


def test_near_copies_of_one_percent_of_train_are_refused_by_the_low_fpr_tpr() -> None:
    """Near-copies of 1% of the training rows: the density and ensemble attacks see them, the DCR share does not.

    120 of 12,000 training rows are planted as near-copies among 4,000 otherwise honest synthetic rows: the
    density and ensemble attacks each show a TPR at 0.5% FPR above 0.5% at alpha, while the average-case DCR
    share, which the issue's users relied on, does not move.
    """
    train, holdout, honest = split(20_000, (0.6, 0.2, 0.2), seed=0)
    planted = near_copies(train.sample(120, random_state=0), train, seed=0)
    synthetic = pd.concat([planted, honest.iloc[120:]], ignore_index=True)
    result = evaluate_privacy(train, holdout, synthetic, adult()[1], seed=0)
    refused = refusals(result)
    assert {"privacy.membership_tpr[density]", "privacy.membership_tpr[ensemble]"} <= set(refused)
    assert {"privacy.dcr_share", "privacy.exact_match_rate"}.isdisjoint(refused)


@pytest.mark.parametrize("shares", [(1 / 3, 1 / 3, 1 / 3), (0.6, 0.2, 0.2)], ids=["thirds", "60/20/20"])
def test_near_copies_of_twenty_isolated_training_rows_are_refused_by_the_outlier_check(
    shares: tuple[float, float, float],
) -> None:
    """20,000 rows: the twenty most isolated training rows, with 1% noise, among otherwise honest rows.

    As many equally isolated holdout rows are the comparison, whatever the split: twenty reproduced members
    against none of them is evidence at alpha = 0.001.
    """
    train, holdout, honest = split(20_000, shares, seed=1)
    schema = adult()[1]
    isolated = distance_evidence(train, holdout, honest, schema, seed=1).isolated_rows[:20]
    synthetic = pd.concat([honest.iloc[20:], near_copies(train.iloc[isolated], train, seed=1)], ignore_index=True)
    result = evaluate_privacy(train, holdout, synthetic, schema, seed=1)
    assert result.isolated_reproduced >= 20 and result.isolated_p_value < 0.001
    assert refusals(result) == ["privacy.isolated_reproduced"]
