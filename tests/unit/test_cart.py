"""What is specific to the sequential CART generator: its leaves, its donors and its learned dependencies.

The contract test covers the rest (shapes, dtypes, seeds, save/load, conditioning, degenerate tables).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from generators import BadInputError, create, registry
from generators.base import Generator
from generators.tabular.inference import infer_schema


def _planted(n: int = 2_000, seed: int = 0) -> pd.DataFrame:
    """`band` is a function of `x`, `y` follows `band`; `noise` is independent of both."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 100, n).round(3)
    band = np.where(x < 30, "low", np.where(x < 70, "mid", "high")).astype(object)
    y = np.select([band == "low", band == "mid"], [rng.normal(-50, 1, n), rng.normal(0, 1, n)], rng.normal(50, 1, n))
    noise = rng.choice(["a", "b", "c"], n).astype(object)
    return pd.DataFrame({"x": x, "band": band, "y": y.round(3), "noise": noise})


def _fit(params: dict[str, object] | None = None, frame: pd.DataFrame | None = None, seed: int = 0) -> Generator:
    table, schema = infer_schema(_planted() if frame is None else frame)
    return create("cart", params, seed=seed, device="cpu").fit(table, schema)


@pytest.fixture(scope="module")
def fitted() -> Generator:
    return _fit({"min_leaf": 10})


def test_same_seed_same_rows_and_another_seed_other_rows(fitted: Generator) -> None:
    pd.testing.assert_frame_equal(fitted.sample(500, seed=4), fitted.sample(500, seed=4))
    pd.testing.assert_frame_equal(_fit({"min_leaf": 10}).sample(500, seed=4), fitted.sample(500, seed=4))
    assert not fitted.sample(500, seed=5).equals(fitted.sample(500, seed=4))


@pytest.mark.parametrize("min_leaf", [1, 7, 40])
def test_no_leaf_holds_fewer_donors_than_the_minimum(min_leaf: int) -> None:
    model = _fit({"min_leaf": min_leaf, "min_leaf_share": 0.0})
    sizes = [np.diff(tree.starts) for tree in model.trees_]  # type: ignore[attr-defined]
    assert all(size.min() >= min_leaf for size in sizes)
    assert all(size.sum() == 2_000 for size in sizes)  # every training row is a donor once per column
    assert max(len(size) for size in sizes) > 2_000 // (4 * min_leaf)  # and the trees do grow


def test_a_planted_dependency_is_learned(fitted: Generator) -> None:
    """`band` follows `x`'s thresholds and `y`'s level follows `band`, as in training; `noise` stays independent."""
    rows = fitted.sample(4_000, seed=1)
    expected = np.where(rows["x"] < 30, "low", np.where(rows["x"] < 70, "mid", "high"))
    assert (rows["band"] == expected).mean() > 0.97
    for band, level in (("low", -50), ("mid", 0), ("high", 50)):
        assert abs(rows.loc[rows["band"] == band, "y"].median() - level) < 2
    shares = pd.crosstab(rows["band"], rows["noise"], normalize="index")
    assert (shares - 1 / 3).abs().to_numpy().max() < 0.06


def test_the_independent_columns_floor_fails_the_dependency_check() -> None:
    """The dependency test can fail: rows whose columns are drawn independently break it."""
    rows = _fit({"min_leaf": 10}).sample(4_000, seed=1)
    rng = np.random.default_rng(0)
    shuffled = rows.assign(band=rows["band"].to_numpy()[rng.permutation(len(rows))])
    expected = np.where(shuffled["x"] < 30, "low", np.where(shuffled["x"] < 70, "mid", "high"))
    assert (shuffled["band"] == expected).mean() < 0.5


def test_smoothing_moves_only_rare_values() -> None:
    """Smoothed, `x`'s unique values are not copied, while a value held by many rows is kept exactly."""
    frame = _planted()
    frame.loc[:499, "x"] = 12.5  # a spike: a quarter of the rows
    smoothed = _fit({"min_leaf": 10}, frame).sample(2_000, seed=2)
    copied = _fit({"min_leaf": 10, "smoothing": False}, frame).sample(2_000, seed=2)
    training = set(frame["x"]) - {12.5}
    assert copied["x"].round(3).isin(training | {12.5}).all()  # float32 encoding: equal to its 7 digits
    assert smoothed["x"].round(3).isin(training).mean() < 0.05
    assert abs((smoothed["x"].round(3) == 12.5).mean() - 0.25) < 0.04


def test_save_and_load_round_trip_the_trees_exactly(fitted: Generator, tmp_path: Path) -> None:
    path = tmp_path / "cart.pt"
    fitted.save(path)
    loaded = registry.load(path)
    for mine, theirs in zip(fitted.trees_, loaded.trees_, strict=True):  # type: ignore[attr-defined]
        for name in ("left", "right", "feature", "threshold", "leaf", "starts", "keys", "values", "bandwidth"):
            np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name))
    pd.testing.assert_frame_equal(loaded.sample(300, seed=9), fitted.sample(300, seed=9))
    state = torch.load(path, weights_only=True)  # plain tensors and dicts, nothing unpickled
    assert state["generator"] == "cart"


def test_typical_rows_score_higher_than_rows_breaking_the_dependency(fitted: Generator) -> None:
    frame = _planted(500, seed=3)
    broken = frame.assign(band=frame["band"].map({"low": "high", "mid": "low", "high": "mid"}))
    assert (fitted.score(frame) > fitted.score(broken)).mean() > 0.95


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_min_leaf_is_refused(bad: object) -> None:
    with pytest.raises(BadInputError, match="min_leaf"):
        create("cart", {"min_leaf": bad})


@pytest.mark.parametrize("bad", [-0.1, 1.0, True])
def test_bad_min_leaf_share_is_refused(bad: object) -> None:
    with pytest.raises(BadInputError, match="min_leaf_share"):
        create("cart", {"min_leaf_share": bad})


def test_on_many_rows_a_leaf_holds_its_share_of_them() -> None:
    """Leaves grow with the rows once the share passes the count: 0.4 % of 20,000 rows is 80 donors, not 50."""
    model = _fit(frame=_planted(20_000))
    sizes = np.concatenate([np.diff(tree.starts) for tree in model.trees_[1:]])  # type: ignore[attr-defined]
    assert sizes.min() >= 80
    small = _fit({"min_leaf_share": 0.0}, frame=_planted(20_000))
    assert min(np.diff(tree.starts).min() for tree in small.trees_[1:]) < 80  # type: ignore[attr-defined]


def test_a_cart_model_is_never_saved_in_shareable_form(tmp_path: Path) -> None:
    """Its leaves hold training values: the release leaves it out (`holds_training_values`)."""
    model = _fit({})
    assert model.holds_training_values
    with pytest.raises(ValueError, match="holds training values"):
        model.save(tmp_path / "shared.pt", shareable=True)
    model.save(tmp_path / "private.pt")  # the private model cache keeps the full model
    assert (tmp_path / "private.pt").stat().st_size > 0
