"""A domain declared public: kept exactly by a DP fit, paid for by no budget, stated in the manifest.

Everything else stays private: a column not declared gets its noisy domain, and its canary never leaks.

The fits are real (the encoder, and `mst` with its secure noise); nothing under test is mocked.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flows.config import load_config
from flows.release.manifest import _public_schema
from generators import BadInputError, ColumnKind, ColumnSpec, Schema
from generators.models.mst import MSTConfig, MSTGenerator
from generators.tabular.encoder import EncoderPrivacy, TabularEncoder
from generators.tabular.inference import infer_schema

N = 4000
COLOURS = ("red", "green", "blue", "violet", "ultraviolet")  # violet: 1 row; ultraviolet: declared, held by none
AGE_BOUNDS = (0.0, 120.0)
CANARY_CITY = "canary-zq-city"
CANARY_INCOME = 31_415_926.5


def _frame() -> pd.DataFrame:
    """Public `colour` and `age`; private `city` and `income`, each with one planted unique value (the canary)."""
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], N, p=[0.6, 0.3, 0.1]).astype(object)
    colour[0] = "violet"
    city = rng.choice(["north", "south", "east", "west"], N).astype(object)
    city[1] = CANARY_CITY
    income = np.round(np.exp(rng.normal(10, 0.5, N)), 2)
    income[1] = CANARY_INCOME
    return pd.DataFrame({"colour": colour, "age": rng.integers(18, 90, N), "city": city, "income": income})


def _schema(frame: pd.DataFrame) -> Schema:
    _, schema = infer_schema(frame, {
        "colour": {"kind": "categorical", "categories": list(COLOURS), "public": True},
        "age": {"kind": "numerical", "bounds": list(AGE_BOUNDS), "public": True},
    })
    return schema


@pytest.fixture(scope="module")
def private_fit() -> tuple[MSTGenerator, pd.DataFrame, pd.DataFrame]:
    """An MST fit at epsilon 1 and 20,000 of its rows."""
    frame = _frame()
    model = MSTGenerator(MSTConfig(dp_epsilon=1.0), seed=0, device="cpu").fit(frame, _schema(frame))
    return model, frame, model.sample(20_000, seed=0)


def _codec(encoder: TabularEncoder, column: str) -> Any:
    """The fitted codec of `column` (a private class: its fields are read as they are)."""
    return next(c for c in encoder.codecs_ if c.spec.name == column)


def test_a_declared_public_domain_survives_a_dp_fit_exactly() -> None:
    """Every declared category, the one-row and the unheld ones included, and the declared bounds, with no noise."""
    frame = _frame()
    encoder = TabularEncoder().fit(frame, _schema(frame), privacy=EncoderPrivacy(0.1, 1e-5))
    assert set(_codec(encoder, "colour").categories) == set(COLOURS)
    assert _codec(encoder, "age").bounds == AGE_BOUNDS
    assert encoder.schema_["colour"].categories == COLOURS and encoder.schema_["age"].bounds == AGE_BOUNDS


def test_a_column_not_declared_public_still_gets_a_noisy_thresholded_domain() -> None:
    frame = _frame()
    encoder = TabularEncoder().fit(frame, _schema(frame), privacy=EncoderPrivacy(0.1, 1e-5))
    assert CANARY_CITY not in _codec(encoder, "city").categories  # 1 row: under the threshold
    observed = (float(frame["income"].min()), float(frame["income"].max()))
    assert _codec(encoder, "income").bounds != observed  # edges of the noisy grid, not the data's
    assert encoder.schema_["city"].categories is None and encoder.schema_["income"].bounds is None


def test_public_numbers_are_clipped_to_their_declared_bounds() -> None:
    frame = _frame()
    frame["age"] = np.where(np.arange(N) % 2, 150, frame["age"])  # half the rows beyond the declared 120
    model = MSTGenerator(MSTConfig(dp_epsilon=1.0), seed=0, device="cpu").fit(frame, _schema(frame))
    ages = model.sample(5000, seed=0)["age"]
    assert ages.between(*AGE_BOUNDS).all() and (ages == AGE_BOUNDS[1]).mean() > 0.3  # clipped, not dropped


def test_a_category_outside_the_declared_public_ones_is_refused_in_one_line() -> None:
    frame = _frame()
    _, schema = infer_schema(frame, {"colour": {"categories": ["red", "green", "blue"], "public": True}})
    with pytest.raises(BadInputError, match=r"'violet' is not among its 3 declared public categories") as error:
        TabularEncoder().fit(frame, schema, privacy=EncoderPrivacy(1.0, 1e-5))
    assert "\n" not in str(error.value)


def test_the_share_of_public_bounds_goes_to_the_other_columns() -> None:
    """Nine public numbers and one private categorical: that one spends the encoder's whole epsilon.

    Split over all ten columns, its 200 Laplace counts would be off by 10 on average; with the whole epsilon, by 1.
    """
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=10_000) for i in range(9)})
    frame["code"] = np.repeat([f"c{i:03d}" for i in range(200)], 50).astype(object)
    overrides = {f"x{i}": {"bounds": [-5, 5], "public": True} for i in range(9)}
    _, schema = infer_schema(frame, overrides)
    encoder = TabularEncoder().fit(frame, schema, seed=0, privacy=EncoderPrivacy(1.0, 1e-5))
    assert len(_codec(encoder, "code").categories) == 200  # a tenth of epsilon would leave none over the threshold
    noisy = encoder.noisy_counts_["code"][:200]
    error = float(np.abs(noisy - 50).mean())
    assert 0.5 < error < 2.0, error


def test_the_spent_epsilon_never_exceeds_the_configured_one(private_fit: tuple[MSTGenerator, pd.DataFrame,
                                                                               pd.DataFrame]) -> None:
    spent = private_fit[0].privacy_spent_
    assert spent is not None
    assert spent["epsilon"] <= 1.0 + 1e-9 and spent["delta"] <= 1e-5 * (1 + 1e-9)
    assert math.isclose(spent["encoder_epsilon"] + spent["mst_epsilon"], spent["epsilon"])


def test_the_canary_of_a_private_column_never_appears(private_fit: tuple[MSTGenerator, pd.DataFrame, pd.DataFrame],
                                                      tmp_path: Path) -> None:
    """Neither in the rows nor in the saved model, while the declared one-row public category may."""
    model, _, rows = private_fit
    assert CANARY_CITY not in set(rows["city"]) and rows["income"].max() < CANARY_INCOME / 2
    assert set(rows["colour"].dropna()) <= set(COLOURS)
    path = tmp_path / "model.pt"
    model.save(path, shareable=True)
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        saved = b"".join(archive.read(name) for name in archive.namelist())
    assert CANARY_CITY.encode() not in saved and b"ultraviolet" in saved  # the public domain is saved, as declared


def test_the_dp_record_and_the_manifest_state_the_public_domain(private_fit: tuple[MSTGenerator, pd.DataFrame,
                                                                                   pd.DataFrame]) -> None:
    model, frame, _ = private_fit
    spent = model.privacy_spent_
    assert spent is not None
    declared = [line for line in spent["public_assumptions"] if "declared public" in line]
    assert len(declared) == 2
    assert "colour" in declared[0] and "'ultraviolet'" in declared[0] and "age" in declared[1] and "120" in declared[1]
    released = _public_schema(_schema(frame), private=True)["columns"]
    assert released["colour"]["categories"] == list(COLOURS) and released["age"]["bounds"] == list(AGE_BOUNDS)
    assert "categories" not in released["city"] and "bounds" not in released["income"]


def test_public_domain_declares_every_inferred_domain_but_where_a_column_opts_out() -> None:
    frame = _frame().assign(customer_id=np.arange(N) + 10_000)
    _, schema = infer_schema(frame, {"city": {"public": False}}, public_domain=True)
    assert [s.name for s in schema if s.public] == ["colour", "age", "income"]  # not the id, nor the opted-out city
    assert schema["colour"].categories == ("blue", "green", "red", "violet")  # inferred, now declared
    assert Schema.from_dict(schema.to_dict()) == schema  # `public` round-trips


@pytest.mark.parametrize(("override", "message"), [
    ({"public": "yes"}, "public must be true or false, got 'yes'"),
    ({"public": 1}, "public must be true or false, got 1"),
    ({"kind": "pii", "public": True}, "public declares a domain, which only categorical, numerical, datetime"),
    ({"bounds": [5, "x"], "public": True}, "bounds must be two numbers"),
    ({"bounds": [90, 17], "public": True}, "low ≤ high"),
    ({"categories": "red", "public": True}, "categories must be a list"),
])
def test_a_bad_public_declaration_is_one_line_of_bad_input(override: dict[str, object], message: str) -> None:
    column = "city" if override.get("kind") == "pii" or "categories" in override else "income"
    with pytest.raises(BadInputError, match=message) as error:
        infer_schema(_frame(), {column: override})
    assert "\n" not in str(error.value)


def test_a_public_column_needs_the_domain_it_declares() -> None:
    with pytest.raises(BadInputError, match="public needs the bounds it declares"):
        ColumnSpec("age", ColumnKind.NUMERICAL, "int64", public=True)


@pytest.mark.parametrize(("text", "message"), [
    ("public_domain: maybe\n", "public_domain: Input should be a valid boolean"),
    ("columns: {age: {public: 'true'}}\n", "public must be true or false, got 'true'"),
])
def test_a_bad_public_setting_in_the_config_file_is_one_line_of_bad_input(tmp_path: Path, text: str,
                                                                          message: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message) as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_a_good_public_setting_in_the_config_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("public_domain: true\ncolumns: {age: {kind: numerical, bounds: [17, 90], public: true}}\n")
    config = load_config(path)
    assert config.public_domain is True and config.columns["age"] == {"kind": "numerical", "bounds": [17, 90],
                                                                       "public": True}
