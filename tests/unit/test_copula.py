"""The Gaussian copula's own promises: exact marginals, planted dependence kept, native conditioning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators import ColumnKind, ColumnSpec, Schema, create
from generators.base import Generator


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, Schema]:
    """Two correlated numbers, a category whose levels sit at non-monotone heights of `y`, and an independent number.

    Of the correlated numbers one is skewed, one has a spike at zero; frequency order says nothing about the levels.
    """
    n, seed = 3000, 0
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], n)
    x = np.exp(z[:, 0])
    spike = np.where(rng.random(n) < 0.6, 0.0, np.round(10 + 5 * z[:, 1], 2))
    level = rng.choice(list("abcde"), n, p=[0.35, 0.25, 0.2, 0.15, 0.05])
    height = {"a": 0.0, "b": 3.0, "c": -3.0, "d": 1.5, "e": -1.5}
    y = np.array([height[v] for v in level]) + 0.5 * rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "spike": spike, "level": level.astype(object), "y": y, "noise": rng.normal(size=n)})
    schema = Schema(
        (
            ColumnSpec("x", ColumnKind.NUMERICAL, "float64"),
            ColumnSpec("spike", ColumnKind.NUMERICAL, "float64"),
            ColumnSpec("level", ColumnKind.CATEGORICAL, "object", categories=tuple("abcde")),
            ColumnSpec("y", ColumnKind.NUMERICAL, "float64"),
            ColumnSpec("noise", ColumnKind.NUMERICAL, "float64"),
        )
    )
    return frame, schema


@pytest.fixture(scope="module")
def model(table: tuple[pd.DataFrame, Schema]) -> Generator:
    return create("copula", seed=0, device="cpu").fit(*table)


def _explained(frame: pd.DataFrame) -> float:
    """Share of y's variance explained by the level (the correlation ratio squared)."""
    return float(frame.groupby("level")["y"].transform("mean").var() / frame["y"].var())


def test_marginals_are_kept_spikes_included(model: Generator, table: tuple[pd.DataFrame, Schema]) -> None:
    real, synthetic = table[0], model.sample(20_000, seed=1)
    at_zero = synthetic["spike"].abs() < 1e-6  # the encoder's float32 round trip leaves ~1e-19
    assert abs(at_zero.mean() - (real["spike"] == 0).mean()) < 0.02
    for column in ("x", "y"):
        quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]
        np.testing.assert_allclose(
            synthetic[column].quantile(quantiles), real[column].quantile(quantiles), rtol=0.1, atol=0.1
        )
    shares = synthetic["level"].value_counts(normalize=True)
    real_shares = real["level"].value_counts(normalize=True)
    np.testing.assert_allclose(shares[real_shares.index], real_shares, atol=0.02)


def test_the_planted_correlation_is_recovered(model: Generator, table: tuple[pd.DataFrame, Schema]) -> None:
    real, synthetic = table[0], model.sample(20_000, seed=1)
    assert synthetic["x"].corr(synthetic["spike"], method="spearman") == pytest.approx(
        real["x"].corr(real["spike"], method="spearman"), abs=0.05
    )
    assert abs(synthetic["x"].corr(synthetic["noise"], method="spearman")) < 0.05


def test_optimal_scaling_orders_categories_by_what_they_go_with(table: tuple[pd.DataFrame, Schema]) -> None:
    frame, schema = table
    scaled = create("copula", seed=0, device="cpu").fit(frame, schema).sample(20_000, seed=1)
    by_frequency = (
        create("copula", {"ordering_sweeps": 0}, seed=0, device="cpu").fit(frame, schema).sample(20_000, seed=1)
    )
    assert _explained(scaled) > 0.8 * _explained(frame)
    assert _explained(by_frequency) < 0.6 * _explained(frame)


def test_conditions_are_native_and_follow_the_conditional(
    model: Generator, table: tuple[pd.DataFrame, Schema], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rare level 'e' comes straight from the model and its rows carry the y of real 'e' rows.

    No rejection: `_sample` is never called.
    """
    monkeypatch.setattr(model, "_sample", lambda *_: pytest.fail("conditioning fell back to rejection"))
    real = table[0]
    rows = model.sample(5000, seed=2, conditions={"level": "e"})
    assert (rows["level"] == "e").all()
    assert rows["y"].median() == pytest.approx(real.loc[real["level"] == "e", "y"].median(), abs=0.5)
    assert rows["x"].nunique() > 1000


def test_scores_are_higher_for_rows_that_keep_the_dependence(
    model: Generator, table: tuple[pd.DataFrame, Schema]
) -> None:
    real = table[0]
    broken = real.assign(y=real["y"].sample(frac=1.0, random_state=0).to_numpy())
    assert np.mean(model.score(real)) > np.mean(model.score(broken)) + 0.5


def test_missing_values_do_not_dilute_correlations() -> None:
    """Missing numbers get a latent of their own.

    Were they a cell at one end of the number's line, the correlation of the observed values would come out near
    half the planted one.
    """
    rng = np.random.default_rng(1)
    z = rng.multivariate_normal([0, 0], [[1, 0.7], [0.7, 1]], 4000)
    frame = pd.DataFrame({"a": np.exp(z[:, 0]), "b": np.exp(z[:, 1])})
    frame.loc[rng.random(4000) < 0.1, "a"] = np.nan
    frame.loc[rng.random(4000) < 0.1, "b"] = np.nan
    schema = Schema(tuple(ColumnSpec(c, ColumnKind.NUMERICAL, "float64", nullable=True) for c in "ab"))
    synthetic = create("copula", seed=0, device="cpu").fit(frame, schema).sample(20_000, seed=1)
    logs = np.log(synthetic.dropna())
    assert logs["a"].corr(logs["b"]) == pytest.approx(0.7, abs=0.05)
    assert synthetic.isna().mean().to_numpy() == pytest.approx(frame.isna().mean().to_numpy(), abs=0.015)
