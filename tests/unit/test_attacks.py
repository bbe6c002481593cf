"""Anonymeter-style attacks: copies must show a high risk, fresh real rows a risk near 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_mixed_frame, mixed_schema_for

from generators.tabular.errors import BadInputError
from generators.tabular.schema import Schema
from privacy.attacks import (
    AttackResult,
    attribute_inference,
    evaluate_attacks,
    linkability,
    singling_out,
    wilson,
)


@pytest.fixture(scope="module")
def population() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Schema]:
    """One mixed table cut at random into train (400), control (400) and fresh "synthetic" rows (400)."""
    frame = make_mixed_frame(1200, seed=3)
    order = np.random.default_rng(3).permutation(len(frame))
    train, control, fresh = (frame.iloc[part].reset_index(drop=True) for part in np.split(order, [400, 800]))
    return train, control, fresh, mixed_schema_for(frame)


def test_wilson_matches_the_textbook_interval() -> None:
    rate, error = wilson(8, 10)  # Wilson 95% interval for 8/10 is (0.4902, 0.9433)
    assert (rate - error, rate + error) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert np.isnan(wilson(0, 0)[0])


def test_risk_is_the_excess_over_control_scaled_to_its_room() -> None:
    result = AttackResult.from_counts("x", n_attacks=1000, n_success=600, n_control=200, n_baseline=10)
    attack, control = wilson(600, 1000, 0.998)[0], wilson(200, 1000, 0.998)[0]  # each side errs alpha = 0.001
    assert result.risk == pytest.approx((attack - control) / (1 - control))
    assert result.risk_ci[0] < result.risk < result.risk_ci[1]
    assert AttackResult.from_counts("x", 1000, 200, 600, 10).risk == 0.0  # clipped, as anonymeter binds it


def test_each_side_of_every_interval_errs_alpha() -> None:
    strict, loose = (AttackResult.from_counts("x", 500, 300, 100, 10, alpha=a) for a in (0.001, 0.025))
    assert strict.risk_ci[0] < loose.risk_ci[0] < loose.risk_ci[1] < strict.risk_ci[1]
    rate, error = wilson(300, 500, 0.95)
    assert loose.attack_ci == pytest.approx((rate - error, rate + error))


def test_the_worst_inference_column_is_bounded_at_alpha_over_the_columns(population) -> None:
    """Bonferroni: each column's interval at alpha / (number of secrets), so the worst keeps error alpha."""
    train, control, fresh, schema = population
    alone = attribute_inference(train, control, fresh, schema, secrets=["income"], alpha=0.01)["income"]
    among_two = attribute_inference(train, control, fresh, schema, secrets=["income", "colour"], alpha=0.02)
    assert among_two["income"].risk_ci == pytest.approx(alone.risk_ci)
    assert among_two["income"].attack_rate == pytest.approx(alone.attack_rate)


def test_copies_show_high_risk_in_every_attack(population) -> None:
    train, control, _, schema = population
    result = evaluate_attacks(train, control, train, schema, seed=0, n_attacks=100)
    assert result.singling_out_univariate.risk > 0.5
    assert result.singling_out.risk_ci[0] > 0.2
    assert result.linkability.risk > 0.8
    assert result.inference.risk > 0.8


def test_fresh_real_rows_show_no_risk(population) -> None:
    train, control, fresh, schema = population
    result = evaluate_attacks(train, control, fresh, schema, seed=0, n_attacks=100)
    for attack in (result.singling_out, result.singling_out_univariate, result.linkability):
        assert attack.risk_ci[0] == 0.0, attack
        assert attack.risk < 0.2, attack
    assert result.inference.risk_ci[0] < 0.1  # the worst of six columns; its interval still reaches ~0


def test_same_seed_same_result_other_seed_other_draw(population) -> None:
    train, control, fresh, schema = population
    mixed = pd.concat([fresh.iloc[:300], train.iloc[:100]], ignore_index=True)
    first = singling_out(train, control, mixed, schema, n_attacks=50, seed=1)
    assert singling_out(train, control, mixed, schema, n_attacks=50, seed=1) == first
    assert linkability(train, control, mixed, schema, seed=1) == linkability(train, control, mixed, schema, seed=1)
    assert singling_out(train, control, mixed, schema, n_attacks=50, seed=2) != first


def test_attacked_rows_are_drawn_down_to_the_control_size(population) -> None:
    train, control, fresh, schema = population
    small = control.iloc[:100]
    result = linkability(train, small, fresh, schema, n_targets=None)
    assert result.n_attacks == 100
    copied = linkability(train, small, train, schema, n_targets=None)  # all 400 copied, 100 drawn and attacked
    assert copied.n_attacks == 100 and copied.risk_ci[0] > 0.4


def test_copied_share_sets_the_linkability_risk(population) -> None:
    """A quarter of the training rows copied: about a quarter of the attacked records get linked."""
    train, control, fresh, schema = population
    leaky = pd.concat([fresh.iloc[:300], train.iloc[:100]], ignore_index=True)
    result = linkability(train, control, leaky, schema, n_targets=None)
    assert 0.1 < result.risk < 0.4


def test_inference_scores_each_secret_and_numbers_within_tolerance(population) -> None:
    train, control, _, schema = population
    noisy = train.copy()
    noisy["income"] = noisy["income"] * 1.03  # within anonymeter's 5% tolerance
    results = attribute_inference(train, control, noisy, schema, secrets=["income", "colour"], n_targets=None)
    assert set(results) == {"income", "colour"}
    assert results["income"].attack_rate > 0.9
    off = train.assign(income=train["income"] * 1.2)
    assert attribute_inference(train, control, off, schema, secrets=["income"])["income"].attack_rate < 0.2


def test_bad_arguments_are_refused(population) -> None:
    train, control, fresh, schema = population
    with pytest.raises(BadInputError, match="mode"):
        singling_out(train, control, fresh, schema, mode="bivariate")
    with pytest.raises(BadInputError, match="secrets"):
        attribute_inference(train, control, fresh, schema, secrets=["email"])
    with pytest.raises(BadInputError, match="half"):
        linkability(train, control, fresh, schema, aux_columns=(["age"], []))
    with pytest.raises(BadInputError, match="rows"):
        linkability(train.iloc[:0], control, fresh, schema)
