"""Column and pair comparisons with their p-values.

They are exact on degenerate columns, sharp on planted faults, quiet on honest small samples, and give the same
numbers as sdmetrics where it defines them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.tabular.inference import infer_schema
from validation.comparison import compare_columns, cramers_v, domain_validity, holm
from validation.fidelity import evaluate_fidelity


def _table(n: int, seed: int) -> pd.DataFrame:
    """Two correlated numbers, a category that follows one of them, a constant and an all-null column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({
        "x": x,
        "y": x + 0.5 * rng.normal(size=n),
        "level": np.where(x + 0.3 * rng.normal(size=n) > 0, "high", "low").astype(object),
        "noise": rng.exponential(size=n),
        "constant": np.full(n, 7.0),
        "empty": pd.Series([None] * n, dtype=object),
    })


def test_identical_rows_score_one_and_degenerate_columns_are_judged_exactly() -> None:
    frame = _table(500, 0)
    _, schema = infer_schema(frame)
    result = compare_columns(frame, frame, schema)
    assert {name: c.value for name, c in result.shapes.items()} == pytest.approx(dict.fromkeys(frame.columns, 1.0))
    assert all(c.p_value == pytest.approx(1.0) for c in result.shapes.values())
    assert result.skipped == {"constant": "one constant value in the real rows", "empty": "no values in the real rows"}
    assert set(result.pairs) == {"x|y", "x|level", "y|level"}
    assert all(pair.value == pytest.approx(1.0) for pair in result.pairs.values())
    drifted = frame.assign(constant=np.where(np.arange(500) < 50, 8.0, 7.0))
    assert compare_columns(frame, drifted, schema).shapes["constant"].value == pytest.approx(0.9)
    assert compare_columns(frame, drifted, schema).shapes["constant"].p_value == 0.0


def test_shape_values_are_sdmetrics_own() -> None:
    real, synthetic = _table(800, 1), _table(600, 2)
    _, schema = infer_schema(real)
    ours = compare_columns(real, synthetic, schema).shapes
    theirs = evaluate_fidelity(real, synthetic, schema).per_column
    for name in ("x", "y", "level", "noise"):
        assert ours[name].value == pytest.approx(theirs[name], abs=1e-12)


def test_planted_faults_are_large_and_significant() -> None:
    real, honest = _table(2_000, 3), _table(2_000, 4)
    _, schema = infer_schema(real)
    rng = np.random.default_rng(5)
    shuffled = honest.assign(y=rng.permutation(honest["y"].to_numpy()))
    pair = compare_columns(real, shuffled, schema).pairs["x|y"]
    assert pair.value < 0.2 and pair.p_value < 1e-12 and pair.real_association > 0.8
    shifted = honest.assign(noise=honest["noise"] + honest["noise"].std())
    shape = compare_columns(real, shifted, schema).shapes["noise"]
    assert shape.value < 0.6 and shape.p_value < 1e-12
    nulls = honest.assign(x=honest["x"].where(rng.random(2_000) > 0.3))
    null = compare_columns(real, nulls, schema).nulls["x"]
    assert 1 - null.value == pytest.approx(0.3, abs=0.03) and null.p_value < 1e-12


def test_honest_small_samples_are_never_significant_after_holm() -> None:
    """67 rows a side: fresh rows' family-adjusted p-values stay above 0.001 in every one of 30 seeds.

    That holds though their shape and association scores wander far below the thresholds.
    """
    worst_shape, smallest_p = 1.0, 1.0
    for seed in range(30):
        real, fresh = _table(67, 100 + seed), _table(67, 200 + seed)
        _, schema = infer_schema(real)
        result = compare_columns(real, fresh, schema, seed=seed)
        worst_shape = min(worst_shape, *(c.value for c in result.shapes.values()))
        for family in (result.shapes, result.pairs, result.nulls):
            smallest_p = min(smallest_p, *holm({k: c.p_value for k, c in family.items()}).values())
    assert worst_shape < 0.8  # noise alone goes that low on 67 rows
    assert smallest_p > 0.001


def test_one_column_and_all_categorical_tables_and_outliers() -> None:
    rng = np.random.default_rng(6)
    single = pd.DataFrame({"only": rng.normal(size=300)})
    _, schema = infer_schema(single)
    result = compare_columns(single.iloc[:150], single.iloc[150:], schema)
    assert set(result.shapes) == {"only"} and result.pairs == {}
    letters = pd.DataFrame({"a": rng.choice(list("abc"), 400), "b": rng.choice(list("xy"), 400)})
    _, schema = infer_schema(letters)
    assert compare_columns(letters.iloc[:200], letters.iloc[200:], schema).pairs == {}  # independent: no strong pair
    # A numeric column with two extreme outliers beside the category it follows: quantile bins are not ruled
    # by them, so fresh real rows keep the association.
    group = rng.choice(["a", "b"], 1_000)
    value = np.where(group == "a", 1.0, 3.0) + rng.normal(size=1_000) * 0.5
    value[:2] = [1e9, -1e9]
    frame = pd.DataFrame({"group": group, "value": value})
    _, schema = infer_schema(frame)
    pair = compare_columns(frame.iloc[:500], frame.iloc[500:], schema).pairs["group|value"]
    assert pair.value > 0.9


def test_bias_corrected_v_is_near_zero_for_independent_sparse_tables() -> None:
    rng = np.random.default_rng(7)
    table = np.bincount(rng.integers(0, 10, 60) * 10 + rng.integers(0, 10, 60), minlength=100).reshape(10, 10)
    assert cramers_v(table.astype(float)) < 0.2
    assert cramers_v(np.diag([30.0, 30.0, 30.0])) == pytest.approx(1.0, abs=0.05)


def test_holm_adjusts_step_down() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})


def test_domain_validity_counts_only_a_surplus_over_the_holdout() -> None:
    real, holdout, synthetic = _table(300, 8), _table(300, 9), _table(300, 10)
    _, schema = infer_schema(real)
    honest = domain_validity(real, holdout, synthetic, schema)
    assert honest.value > 0.98 and honest.p_value > 0.01
    broken = synthetic.assign(x=synthetic["x"] * 10, level="unheard-of")
    invalid = domain_validity(real, holdout, broken, schema)
    assert invalid.value == 0.0 and invalid.p_value < 1e-12


def test_weighted_holm_gives_the_weightier_keys_more_of_the_budget() -> None:
    p_values = {"strong": 0.001, "weak": 0.001, "weaker": 0.5}
    assert holm(p_values) == pytest.approx({"strong": 0.003, "weak": 0.003, "weaker": 0.5})
    weighted = holm(p_values, {"strong": 4.0, "weak": 1.0, "weaker": 1.0})
    assert weighted["strong"] == pytest.approx(0.001 / 2 * 3)  # weight 4 of a mean of 2: compared as if one of 1.5
    assert weighted["strong"] < weighted["weak"] < weighted["weaker"]
    assert holm(p_values, dict.fromkeys(p_values, 7.0)) == pytest.approx(holm(p_values))  # the scale is free
