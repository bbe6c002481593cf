"""What is specific to MST: its canary, its budget, its noise source and the tree it learns.

The contract test covers the rest (fit, sample, seeds, save/load, conditions) on the plain, noiseless fit.
"""

from __future__ import annotations

import dataclasses
import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_mixed_frame, mixed_schema_for

from generators import BadInputError, ColumnKind, ColumnSpec, Schema
from generators.base import read_state
from generators.models.mst import MSTConfig, MSTGenerator, cdp_delta, cdp_epsilon, cdp_rho
from generators.tabular.encoder import TabularEncoder

N = 3000
# One row whose value in every column is found nowhere else in the table.
CANARY = {
    "customer_id": 1_000_001,  # odd, inside the range of the (even) real ids: no format records it
    "email": "zq.canary.7731@canary-zq.org",
    "age": 4242,
    "income": -31_415.9,
    "colour": "canary-zq-colour",
    "member": pd.NA,  # a boolean has no unique value: its rarest one (the mixed frame's are nearly balanced)
    "city": "canary-zq-city",
    "joined": pd.Timestamp("1911-11-11 11:11", tz="Europe/Paris"),
}


def _with_canary() -> tuple[pd.DataFrame, Schema]:
    frame = make_mixed_frame(N, seed=1)
    frame["customer_id"] = np.arange(N) * 2 + 1_000_000  # even ids
    frame = pd.concat([frame.iloc[:-1], pd.DataFrame([CANARY]).astype(frame.dtypes.to_dict())], ignore_index=True)
    schema = mixed_schema_for(frame)
    # Under DP nothing inferred from the data is used anyway; the schema still states the real facts.
    return frame, schema


def _strings_and_numbers(state: object) -> tuple[list[str], list[float]]:
    """Every string and number in a saved model file's plain data and tensors."""
    strings: list[str] = []
    numbers: list[float] = []
    stack = [state]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str):
            strings.append(item)
        elif isinstance(item, bool | int | float):
            numbers.append(float(item))
        elif torch.is_tensor(item):
            numbers.extend(item.double().flatten().tolist())
    return strings, numbers


@pytest.fixture(scope="module")
def private() -> tuple[MSTGenerator, pd.DataFrame]:
    frame, schema = _with_canary()
    return MSTGenerator(MSTConfig(dp_epsilon=1.0), seed=0, device="cpu").fit(frame, schema), frame


def test_the_canary_is_not_in_the_output(private: tuple[MSTGenerator, pd.DataFrame]) -> None:
    model, _ = private
    rows = model.sample(50_000, seed=1)
    for column, value in CANARY.items():
        if column != "member":
            assert not rows[column].isin([value]).any(), column
    assert rows["member"].notna().mean() > 0.5  # the rare missing flag is no value of its own


def test_the_canary_is_not_in_the_saved_model(private: tuple[MSTGenerator, pd.DataFrame], tmp_path: Path) -> None:
    model, _ = private
    path = tmp_path / "model.pt"
    model.save(path, shareable=True)
    strings, numbers = _strings_and_numbers(read_state(path))
    planted = ["zq.canary", "canary-zq"]
    assert not [s for s in strings if any(p in s for p in planted)]
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:  # the raw bytes too, not just what loads
        assert not any(p.encode() in archive.read(name) for name in archive.namelist() for p in planted)
    joined_ns = CANARY["joined"].tz_convert("UTC").tz_localize(None).value
    for value in (CANARY["customer_id"], CANARY["age"], CANARY["income"], joined_ns):
        assert not np.isclose(numbers, value, rtol=1e-7, atol=0).any(), value


def test_the_budget_spent_is_within_the_one_configured(private: tuple[MSTGenerator, pd.DataFrame]) -> None:
    spent = private[0].privacy_spent_
    assert spent is not None
    assert spent["epsilon"] <= 1.0 + 1e-9 and spent["delta"] <= 1e-5 * (1 + 1e-9)
    assert math.isclose(spent["encoder_epsilon"] + spent["mst_epsilon"], spent["epsilon"])
    # the MST part: rho-zCDP is (mst_epsilon, 0.9 delta)-DP, and no more rho than that was spent
    assert cdp_delta(spent["rho"], spent["mst_epsilon"]) <= 0.9e-5 * (1 + 1e-6)
    assert spent["secure_noise"] is True
    assumptions = " ".join(spent["public_assumptions"])
    assert f"row count ({N})" in assumptions and "customer_id, email" in assumptions


@pytest.mark.parametrize(("epsilon", "delta"), [(0.1, 1e-6), (1.0, 1e-5), (10.0, 1e-9)])
def test_zcdp_conversions_are_valid_and_tighter_than_the_simple_bound(epsilon: float, delta: float) -> None:
    rho = cdp_rho(epsilon, delta)
    assert cdp_delta(rho, epsilon) <= delta
    assert rho + 2 * math.sqrt(rho * math.log(1 / delta)) > epsilon  # beats eps = rho + 2 sqrt(rho log 1/delta)
    assert cdp_epsilon(rho, delta) == pytest.approx(epsilon, rel=1e-6)
    assert cdp_delta(rho * 1.01, epsilon) > delta  # and it is the largest such rho


def test_dp_noise_is_not_replayed_by_the_seed() -> None:
    """Two DP fits with the same seed differ (OS randomness); without secure noise the seed repeats them."""
    frame = make_mixed_frame(1000)
    schema = mixed_schema_for(frame)

    def rows(secure: bool) -> pd.DataFrame:
        config = MSTConfig(dp_epsilon=1.0, secure_noise=secure)
        return MSTGenerator(config, seed=0, device="cpu").fit(frame, schema).sample(500, seed=0)

    assert not rows(True).equals(rows(True))
    pd.testing.assert_frame_equal(rows(False), rows(False))


def test_the_encoders_dp_statistics_are_not_replayed_by_the_seed_either() -> None:
    """The encoder's noisy bounds and counts, paid from the same budget, draw secure noise with MST's."""
    frame = make_mixed_frame(1000)
    schema = mixed_schema_for(frame)

    def noisy_counts(secure: bool) -> dict[str, list[float]]:
        share = MSTConfig(dp_epsilon=1.0, secure_noise=secure).encoder_privacy()
        encoder = TabularEncoder().fit(frame, schema, seed=0, privacy=share)
        return {name: counts.tolist() for name, counts in encoder.noisy_counts_.items()}

    assert noisy_counts(True) != noisy_counts(True)
    assert noisy_counts(False) == noisy_counts(False)


def test_the_tree_finds_a_planted_dependency_under_dp() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    a = rng.choice(list("abcd"), n)
    frame = pd.DataFrame({
        "noise1": rng.choice(list("xyz"), n).astype(object),
        "a": a.astype(object),
        "noise2": rng.integers(0, 100, n),
        "b": pd.Series(a).map({"a": "w", "b": "x", "c": "y", "d": "z"}).to_numpy(dtype=object),  # b is a's function
    })
    schema = Schema((
        ColumnSpec("noise1", ColumnKind.CATEGORICAL, "object"),
        ColumnSpec("a", ColumnKind.CATEGORICAL, "object"),
        ColumnSpec("noise2", ColumnKind.NUMERICAL, "int64", integer=True),
        ColumnSpec("b", ColumnKind.CATEGORICAL, "object"),
    ))
    model = MSTGenerator(MSTConfig(dp_epsilon=1.0), seed=0, device="cpu").fit(frame, schema)
    assert 1 in model.parents_[3] or 3 in model.parents_[1]  # a and b are linked
    rows = model.sample(5000, seed=0)
    assert (rows["b"] == rows["a"].map({"a": "w", "b": "x", "c": "y", "d": "z"})).mean() > 0.95


def test_without_dp_nothing_is_spent_and_the_marginals_are_exact() -> None:
    frame = make_mixed_frame(2000)
    model = MSTGenerator(seed=0, device="cpu").fit(frame, mixed_schema_for(frame))
    assert model.privacy_spent_ is None
    rows = model.sample(20_000, seed=0)
    shares = rows["colour"].value_counts(normalize=True, dropna=False)
    real = frame["colour"].value_counts(normalize=True, dropna=False)
    assert (shares - real).abs().max() < 0.02


@pytest.mark.parametrize("params", [{"bins": 0}, {"dp_epsilon": -1.0}, {"dp_epsilon": 1.0, "dp_delta": 2.0}])
def test_bad_settings_are_refused(params: dict[str, float]) -> None:
    with pytest.raises(BadInputError, match="mst"):
        MSTConfig(**params)  # type: ignore[arg-type]


def _label_beside_correlated_columns(n: int) -> tuple[pd.DataFrame, Schema]:
    """`a` and `b` agree on 80 % of rows; the label rises with each of them on its own (log-odds 2a + 2b - 2).

    A plain tree links the label to one of the two only (a-b is the strongest pair), so its rows lose what `b`
    says about the label once `a` is known; a model with the label beside every column keeps it.
    """
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, n)
    b = np.where(rng.random(n) < 0.8, a, rng.integers(0, 2, n))
    label = rng.random(n) < 1 / (1 + np.exp(-(2 * a + 2 * b - 2)))
    frame = pd.DataFrame({"a": np.where(a, "yes", "no").astype(object), "b": np.where(b, "yes", "no").astype(object),
                          "noise": rng.choice(list("xyz"), n).astype(object),
                          "income": np.where(label, ">50K", "<=50K").astype(object)})
    schema = Schema(tuple(ColumnSpec(name, ColumnKind.CATEGORICAL, "object") for name in frame.columns),
                    target="income")
    return frame, schema


def _label_lifts(rows: pd.DataFrame) -> tuple[float, float]:
    """What `b` adds about the label beside `a`, and `a` beside `b`: P(label | x = yes, y) - P(label | x = no, y)."""
    high = rows["income"] == ">50K"

    def lift(column: str, given: str) -> float:
        return float(np.mean([high[(rows[given] == v) & (rows[column] == "yes")].mean()
                              - high[(rows[given] == v) & (rows[column] == "no")].mean() for v in ("no", "yes")]))

    return lift("b", "a"), lift("a", "b")


@pytest.mark.parametrize("epsilon", [None, 1.0])
def test_the_label_column_is_modelled_beside_every_other_column(epsilon: float | None) -> None:
    frame, schema = _label_beside_correlated_columns(20_000)
    real = min(_label_lifts(frame))  # about 0.38 each
    config = MSTConfig(dp_epsilon=epsilon, secure_noise=False)
    aware = MSTGenerator(config, seed=0, device="cpu").fit(frame, schema)
    label = [cells.column for cells in aware.cells_].index("income")
    assert all(label in aware.parents_[j] for j in range(4) if j != label)
    assert min(_label_lifts(aware.sample(20_000, seed=0))) > real - 0.1
    if epsilon is None:  # the plain tree cannot hold both (checked without noise, where it is exact)
        plain = MSTGenerator(dataclasses.replace(config, target_aware=False), seed=0, device="cpu").fit(frame, schema)
        assert min(abs(lift) for lift in _label_lifts(plain.sample(20_000, seed=0))) < 0.05


def test_under_dp_a_label_whose_tables_would_be_mostly_noise_is_left_out() -> None:
    """300 rows at epsilon 0.1: each table beside the label would hold under one noise deviation a cell.

    The categories are declared public, so the DP encoder keeps them all (estimated, they would all be dropped).
    """
    frame, schema = _label_beside_correlated_columns(300)
    schema = schema.replace(dataclasses.replace(spec, categories=tuple(sorted(frame[spec.name].unique())), public=True)
                            for spec in schema)
    model = MSTGenerator(MSTConfig(dp_epsilon=0.1, secure_noise=False), seed=0, device="cpu").fit(frame, schema)
    label = [cells.column for cells in model.cells_].index("income")
    assert model.privacy_spent_ is not None and model.privacy_spent_["label"] is None
    assert len(model.parents_[label]) <= 1 and sum(label in parents for parents in model.parents_) < 3  # a tree node
