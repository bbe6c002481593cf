"""Regenerated columns keep their format and never reproduce a real value."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch

from generators.tabular.errors import BadInputError
from generators.tabular.formats import FormatModel, fit_format, regenerate
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema


def _regenerate(series: pd.Series, spec: ColumnSpec, n: int, seed: int = 0) -> pd.Series:
    return regenerate(fit_format(series, spec), n, np.random.default_rng(seed))


def test_integer_ids_are_unique_fresh_integers(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    real = mixed_frame["customer_id"]
    out = _regenerate(real, mixed_schema["customer_id"], 1000)
    assert out.dtype == np.int64 and len(out) == 1000
    assert out.is_unique
    assert not out.isin(real).any()


def test_emails_keep_their_structure_and_tld_but_no_real_value(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    real = mixed_frame["email"]
    out = _regenerate(real, mixed_schema["email"], 2000)
    assert out.dtype == object
    assert out.str.fullmatch(r"[a-z]{4}\d{1,3}\.\d{3}@[a-z]{7}\.org").all()
    assert not out.isin(real).any()


def test_letters_keep_their_case_and_punctuation_stays() -> None:
    real = pd.Series(["AB-123 x", "CD-456 y", "Zoë_7"])
    out = _regenerate(real, ColumnSpec("code", ColumnKind.TEXT, "object"), 500)
    assert out.str.fullmatch(r"[A-Z]{2}-\d{3} [a-z]|[A-Z][a-z]{2}_\d").all()
    assert not out.str.contains("ë").any()
    assert not out.isin(real).any()


def test_a_tiny_format_space_is_widened_rather_than_reusing_real_values() -> None:
    real = pd.Series([str(d) for d in range(10)])  # every one-digit value is real
    out = _regenerate(real, ColumnSpec("code", ColumnKind.ID, "object"), 50)
    assert out.is_unique
    assert out.str.fullmatch(r"\d+").all()
    assert not out.isin(real).any()


def test_values_without_letters_or_digits_get_a_random_shape() -> None:
    real = pd.Series(["-", "", "--"])
    out = _regenerate(real, ColumnSpec("note", ColumnKind.TEXT, "object"), 20)
    assert not out.isin(real).any()
    assert (out.str.len() > 0).all()


@pytest.mark.parametrize(("dtype", "values"), [("object", ["a1", "b2", "c3"]), ("Int64", [7, 8, 9])])
def test_the_null_rate_and_dtype_are_kept(dtype: str, values: list[object]) -> None:
    real = pd.Series((values * 100)[:280] + [None] * 120, dtype=dtype)
    out = _regenerate(real, ColumnSpec("x", ColumnKind.PII, dtype, nullable=True), 4000)
    assert str(out.dtype) == dtype
    assert abs(out.isna().mean() - 0.3) < 0.03
    assert not out.dropna().isin(real.dropna()).any()


def test_the_same_generator_state_repeats_values_and_another_does_not(
    mixed_frame: pd.DataFrame, mixed_schema: Schema
) -> None:
    model = fit_format(mixed_frame["email"], mixed_schema["email"])
    first = regenerate(model, 100, np.random.default_rng(3))
    assert first.equals(regenerate(model, 100, np.random.default_rng(3)))
    assert not first.equals(regenerate(model, 100, np.random.default_rng(4)))


def test_the_model_survives_a_weights_only_round_trip(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    model = fit_format(mixed_frame["email"], mixed_schema["email"])
    buffer = io.BytesIO()
    torch.save(model.to_state(), buffer)
    buffer.seek(0)
    loaded = FormatModel.from_state(torch.load(buffer, weights_only=True))
    assert regenerate(loaded, 50, np.random.default_rng(0)).equals(regenerate(model, 50, np.random.default_rng(0)))
    assert "@example.org" not in "".join(loaded.shapes)  # only shapes are kept, never real text


def test_zero_rows_and_negative_counts() -> None:
    model = fit_format(pd.Series(["a"]), ColumnSpec("x", ColumnKind.TEXT, "object"))
    assert regenerate(model, 0, np.random.default_rng(0)).empty
    with pytest.raises(BadInputError):
        regenerate(model, -1, np.random.default_rng(0))


@pytest.mark.parametrize(
    "spec",
    [
        ColumnSpec("x", ColumnKind.NUMERICAL, "int64"),
        ColumnSpec("x", ColumnKind.PII, "datetime64[ns]"),
        ColumnSpec("x", ColumnKind.ID, "bool"),
    ],
)
def test_columns_that_cannot_be_regenerated_are_refused(spec: ColumnSpec) -> None:
    with pytest.raises(BadInputError):
        fit_format(pd.Series([1, 2]), spec)
