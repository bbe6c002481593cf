"""The GX suite derived from the real frame: its content, honest real rows passing, planted faults failing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_mixed_frame, mixed_schema_for
from scipy import stats

from flows.split import split_holdout
from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from validation.expectations import (
    ExpectationsResult,
    ExpectationTolerances,
    check_expectations,
    derive_expectations,
)

PII_KINDS = "email/us_ssn/credit_card/iban/ipv4/ipv6/phone"
NULLS, RANGE, VALUE_SET = (
    "expect_column_proportion_of_non_null_values_to_be_between",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
)
NO_PII = "expect_column_values_to_not_match_regex"
Fault = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    """An 80/20 split of a mixed table whose `city` has a long tail: many holdout cities are not in train.

    4,000 holdout rows let `mostly` absorb the few honest values just past the training extremes.
    """
    frame = make_mixed_frame(20_000, seed=1)
    rng = np.random.default_rng(1)
    frame["city"] = pd.Series([f"city-{k}" for k in rng.zipf(1.6, len(frame))], dtype=object)
    train, holdout = split_holdout(frame, 0.2, seed=0)
    return train, holdout, mixed_schema_for(frame)


def _failed(result: ExpectationsResult) -> set[tuple[str | None, str]]:
    return {(o.column, o.expectation) for o in result.failed}


def test_derived_suite_states_the_real_facts(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    specs = {s.name: s for s in derive_expectations(mixed_frame, mixed_schema)}
    assert specs["columns: exactly the real column set"].kwargs == {
        "column_set": mixed_schema.names,
        "exact_match": True,
    }
    age = specs[f"age: values within [{mixed_frame.age.min()}, {mixed_frame.age.max()}]"]
    assert (age.expectation, age.column) == ("expect_column_values_to_be_between", "age")
    # 400 rows, no holdout: room for the count of fresh values past the real extremes (2 in 401 of them) that a
    # faithful table of 400 rows exceeds with probability alpha / (1 + 4 columns' worth of expectations).
    per_expectation = ExpectationTolerances().alpha / (1 + 4 * len(mixed_schema))
    allowed = stats.betabinom.ppf(1 - per_expectation, 400, 3, 400)
    assert age.kwargs["mostly"] == pytest.approx(1 - allowed / 400)
    assert 0.9 < age.kwargs["mostly"] < 0.99
    colour = next(s for n, s in specs.items() if n.startswith("colour: values in the 4 real categories"))
    assert colour.kwargs["value_set"] == ["blue", "green", "red", "violet"]
    member = next(s for n, s in specs.items() if n.startswith("member: values in the 2 real categories"))
    assert member.kwargs["value_set"] == [False, True]
    assert specs["joined: tz-aware datetimes"].kwargs == {"type_": "Timestamp"}
    assert "customer_id: unique values" in specs
    assert re.compile(specs[f"colour: no {PII_KINDS} values"].kwargs["regex"]).groupindex.keys() == set(
        PII_KINDS.split("/")
    )
    income_nulls = next(s for n, s in specs.items() if n.startswith("income:") and n.endswith("nulls"))
    nulls = mixed_frame.income.isna().sum()
    # A new sample of 400 rows: its null share wanders further than 0.05 from the real one, so the band is its.
    low, high = (stats.betabinom.ppf(q, 400, nulls + 1, 400 - nulls + 1) / 400
                 for q in (per_expectation / 2, 1 - per_expectation / 2))
    assert high - low > 0.1
    assert income_nulls.kwargs["min_value"] == pytest.approx(1 - high)
    assert income_nulls.kwargs["max_value"] == pytest.approx(1 - low)
    # Regenerated columns get no value set, range or pattern check: only the null share (and ids uniqueness).
    assert {n for n in specs if n.startswith("email:")} == {"email: at most 5.0% nulls"}
    assert {n.split(" (")[0] for n in specs if n.startswith("city:")} == {
        "city: at most 5.0% nulls",
        "city: values in the 200 real categories",
        f"city: no {PII_KINDS} values",
    }
    assert len(specs) <= 1 + 4 * len(mixed_schema)


def test_pii_pattern_found_in_the_real_column_is_not_forbidden() -> None:
    frame = pd.DataFrame({"host": ["10.0.0.1", "10.0.0.2", "gateway"] * 5})
    schema = Schema((ColumnSpec("host", ColumnKind.CATEGORICAL, "object"),))
    (pii,) = [s for s in derive_expectations(frame, schema) if s.expectation == NO_PII]
    assert pii.name == "host: no email/us_ssn/credit_card/iban/ipv6/phone values"


def test_long_tail_lowers_mostly_for_the_value_set(split: tuple[pd.DataFrame, pd.DataFrame, Schema]) -> None:
    train, holdout, schema = split
    per_expectation = ExpectationTolerances().alpha / (1 + 4 * len(schema))
    (alone,) = [s for s in derive_expectations(train, schema) if s.name.startswith("city: values in")]
    singletons = (train.city.value_counts() == 1).sum()  # Good-Turing: the unseen share is about theirs
    allowed = stats.betabinom.ppf(1 - per_expectation, len(train), singletons + 1, len(train) - singletons + 1)
    assert alone.kwargs["mostly"] == pytest.approx(1 - allowed / len(train))
    # With a holdout, its own unseen cities size the room instead.
    (seen,) = [s for s in derive_expectations(train, schema, holdout=holdout) if s.name.startswith("city: values in")]
    unseen = (~holdout.city.isin(set(train.city))).sum()
    allowed = stats.betabinom.ppf(1 - per_expectation, len(train), unseen + 1, len(holdout) - unseen + 1)
    assert seen.kwargs["mostly"] == pytest.approx(1 - allowed / len(train))
    assert seen.kwargs["mostly"] < 0.99


def test_no_value_set_when_every_real_category_is_seen_once() -> None:
    frame = pd.DataFrame({"code": [f"c{i}" for i in range(50)]})
    schema = Schema((ColumnSpec("code", ColumnKind.CATEGORICAL, "object"),))
    assert VALUE_SET not in {s.expectation for s in derive_expectations(frame, schema)}


def test_missing_synthetic_column_fails_with_gx_error(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    result = check_expectations(mixed_frame, mixed_frame.drop(columns="colour"), mixed_schema)
    assert {o.column for o in result.failed} == {None, "colour"}
    assert all(o.observed.startswith("error: ") for o in result.failed if o.column == "colour")


def test_bad_input_is_reported_in_one_line(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    with pytest.raises(BadInputError, match="lacks schema column"):
        derive_expectations(mixed_frame.drop(columns="age"), mixed_schema)
    with pytest.raises(BadInputError, match="mostly"):
        ExpectationTolerances(mostly=1.5)


def test_identical_data_passes(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    result = check_expectations(mixed_frame, mixed_frame, mixed_schema)
    assert result.evaluated == len(derive_expectations(mixed_frame, mixed_schema))
    assert result.failed == ()
    assert result.success_rate == 1.0
    assert result.docs_index is None
    observed = {(o.column, o.expectation): o.observed for o in result.outcomes}
    assert observed["age", "expect_column_values_to_be_in_type_list"] == "observed int64"
    assert observed["income", NULLS] == f"{mixed_frame.income.isna().mean():.2%} nulls"
    assert observed["age", RANGE] == "0% unexpected"


def test_unseen_but_honest_real_rows_pass(split: tuple[pd.DataFrame, pd.DataFrame, Schema]) -> None:
    train, holdout, schema = split
    assert not set(holdout.city) <= set(train.city)  # the split does hold cities the suite never saw
    fresh, measured = holdout.iloc[:2_000], holdout.iloc[2_000:]
    result = check_expectations(train, fresh, schema, holdout=measured)
    assert _failed(result) == set(), [(o.name, o.observed) for o in result.failed]
    assert _failed(check_expectations(train, fresh, schema)) == set()  # Good-Turing's estimate suffices here too


def test_a_category_missing_from_a_small_training_part_passes_when_the_holdout_has_it() -> None:
    """Ten rows of a level, none of which fell into a 95-row training part.

    The holdout's own share of the level shows that fresh rows carry it.
    """
    rng = np.random.default_rng(2)
    level = np.where(rng.random(285) < 10 / 285, "9-11", rng.choice(["0-2", "3-5"], 285))
    frame = pd.DataFrame({"nodes": level.astype(object)})
    train = frame[frame.nodes != "9-11"].iloc[:95]
    rest = frame.drop(train.index)
    holdout, fresh = rest.iloc[::2], rest.iloc[1::2]
    schema = Schema((ColumnSpec("nodes", ColumnKind.CATEGORICAL, "object"),))
    assert (fresh.nodes == "9-11").sum() >= 3
    assert _failed(check_expectations(train, fresh, schema, holdout=holdout)) == set()


def _nulls(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frame.loc[rng.random(len(frame)) < 0.3, "income"] = np.nan
    return frame


def _shift(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frame["age"] = frame["age"] + frame["age"].std()
    return frame


def _unseen(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frame.loc[rng.random(len(frame)) < 0.05, "colour"] = "Unknown-X"
    return frame


def _emails(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frame.loc[rng.random(len(frame)) < 0.05, "colour"] = "jane.doe@example.org"
    return frame


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (_nulls, {("income", NULLS)}),
        (_shift, {("age", RANGE)}),
        (_unseen, {("colour", VALUE_SET)}),
        (_emails, {("colour", VALUE_SET), ("colour", NO_PII)}),
    ],
    ids=["nulls", "shift", "unseen_category", "emails"],
)
def test_planted_fault_fails_its_named_expectation(
    split: tuple[pd.DataFrame, pd.DataFrame, Schema], fault: Fault, expected: set[tuple[str, str]]
) -> None:
    train, holdout, schema = split
    result = check_expectations(train, fault(holdout.copy(), np.random.default_rng(0)), schema)
    assert _failed(result) == expected, [(o.name, o.observed) for o in result.failed]
    assert 0 < result.success_rate < 1
    assert all(o.observed.endswith("nulls") or "% unexpected, e.g. [" in o.observed for o in result.failed)


def test_data_docs_are_the_only_files_written(
    mixed_frame: pd.DataFrame, mixed_schema: Schema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    docs = tmp_path / "docs"
    result = check_expectations(
        mixed_frame, _unseen(mixed_frame.copy(), np.random.default_rng(0)), mixed_schema, docs_dir=docs
    )
    assert result.docs_index == docs / "index.html"
    assert result.docs_index.is_file()
    pages = list(docs.rglob("*.html"))
    assert len(pages) == 3  # the index, the suite, the validation run
    assert any("Unknown-X" in p.read_text() for p in pages)
    assert list(workdir.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "docs"]
