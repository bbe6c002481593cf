"""Schema inference: kinds from dtypes, names and values; overrides; facts computed on the column."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from generators.tabular.errors import BadInputError
from generators.tabular.inference import as_written, detect_kind, infer_schema, pii_type_of
from generators.tabular.schema import ColumnKind, Schema


def kinds_of(schema: Schema) -> dict[str, str]:
    return {c.name: c.kind.value for c in schema}


def test_kinds_of_the_mixed_table(mixed_frame: pd.DataFrame) -> None:
    _, schema = infer_schema(mixed_frame)
    assert kinds_of(schema) == {
        "customer_id": "id",
        "email": "pii",
        "age": "numerical",
        "income": "numerical",
        "colour": "categorical",
        "member": "boolean",
        "city": "categorical",
        "joined": "datetime",
    }
    assert schema["email"].pii_type == "email"
    assert schema["joined"].timezone == "Europe/Paris"
    assert schema["age"].integer and not schema["income"].integer
    assert schema["income"].nullable and not schema["age"].nullable
    assert schema["colour"].categories == ("blue", "green", "red", "violet")


def test_pii_patterns_and_text_are_recognised() -> None:
    n = 40
    frame = pd.DataFrame(
        {
            "card": ["4111 1111 1111 1111"] * n,
            "phone": ["+33 6 12 34 56 78", "(555) 123-4567"] * (n // 2),
            "ssn": [f"123-45-{i:04d}" for i in range(n)],
            "ip": [f"10.0.0.{i}" for i in range(n)],
            "iban": ["DE89 3704 0044 0532 0130 00"] * n,
            "first_name": ["Ann", "Bob", "Cy", "Di"] * (n // 4),
            "notes": [f"called the customer about order {i} and left a message" for i in range(n)],
            "order_ref": [f"X{i:05d}-id" for i in range(n)],
            "order_id": [f"X{i:05d}" for i in range(n)],
            "plan": ["basic", "pro"] * (n // 2),
        }
    )
    _, schema = infer_schema(frame)
    assert {c.name: c.pii_type for c in schema.of_kind(ColumnKind.PII)} == {
        "card": "credit_card",
        "phone": "phone",
        "ssn": "us_ssn",
        "ip": "ipv4",
        "iban": "iban",
        "first_name": "person_name",
    }
    assert schema["notes"].kind is ColumnKind.TEXT
    assert schema["order_id"].kind is ColumnKind.ID
    assert schema["plan"].kind is ColumnKind.CATEGORICAL


def test_card_numbers_failing_luhn_are_not_cards() -> None:
    frame = pd.DataFrame({"code": ["4111 1111 1111 1112"] * 30})
    _, schema = infer_schema(frame)
    assert schema["code"].pii_type != "credit_card"


def test_datetime_strings_are_parsed_with_their_zone() -> None:
    stamps = pd.date_range("2021-03-01", periods=30, freq="6h", tz="UTC")
    frame = pd.DataFrame({"naive": stamps.strftime("%Y-%m-%d %H:%M"), "aware": stamps.strftime("%Y-%m-%dT%H:%M%z")})
    conformed, schema = infer_schema(frame)
    assert schema["naive"].kind is ColumnKind.DATETIME and schema["naive"].timezone is None
    assert schema["aware"].kind is ColumnKind.DATETIME and schema["aware"].timezone == "UTC"
    assert str(conformed["naive"].dtype) == "datetime64[ns]"
    assert conformed["aware"].iloc[1] == stamps[1]


def test_overrides_change_kind_and_recompute_facts() -> None:
    frame = pd.DataFrame({"flag": ["yes", "no", None] * 10, "zip": [75001, 75002, 69001] * 10})
    conformed, schema = infer_schema(frame, {"flag": "boolean", "zip": {"kind": "categorical"}})
    assert schema["flag"].kind is ColumnKind.BOOLEAN and schema["flag"].nullable
    assert conformed["flag"].tolist()[:3] == [True, False, pd.NA]
    assert schema["zip"].categories == (69001, 75001, 75002)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nope": "numerical"}, "unknown column"),
        ({"name": "colourful"}, "kind must be one of"),
        ({"name": "numerical"}, "is not a number"),
        ({"name": {"kind": "categorical", "colour": 1}}, "unknown schema key"),
    ],
)
def test_bad_overrides_are_one_line_errors(overrides: dict, message: str) -> None:
    frame = pd.DataFrame({"name": ["a", "b", "c"]})
    with pytest.raises(BadInputError, match=message):
        infer_schema(frame, overrides)


def test_schema_round_trips_through_its_dict(mixed_frame: pd.DataFrame) -> None:
    _, schema = infer_schema(mixed_frame, target="colour")
    again = Schema.from_dict(schema.to_dict())
    assert again == schema and again.target == "colour"


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("telephone", ["1", "2"]),
        ("telephone", ["yes", "no"]),
        ("telephone", ["A191", "A192"]),
        ("name", ["basic", "pro", "enterprise"]),
        ("address", [f"street {c}" for c in "abcdefghij"]),  # no digits: not an address
        ("email", [f"user{i}" for i in range(40)]),  # no @
        ("fax", [f"{i}" for i in range(40)]),  # too few digits for a number anyone dials
    ],
    ids=["phone-codes-12", "phone-yes-no", "phone-A191", "name-tiers", "address-words", "email-no-at", "fax-short"],
)
def test_a_name_alone_never_makes_a_column_pii(name: str, values: list[str]) -> None:
    sample = pd.Series(values * (200 // len(values)), name=name)
    assert pii_type_of(name, sample) is None
    assert detect_kind(sample) is not ColumnKind.PII


def test_name_hints_still_find_personal_data_whose_values_fit() -> None:
    n = 60
    assert pii_type_of("email", pd.Series([f"user{i}@localhost" for i in range(n)])) == "email"
    assert pii_type_of("home_address", pd.Series([f"{i} Rue de la Paix" for i in range(n)])) == "address"
    assert pii_type_of("mobile", pd.Series([f"06 12 34 {i:02d}" for i in range(n)])) == "phone"
    assert pii_type_of("last_name", pd.Series([f"O'Brien-{c}{d}" for c in "ABCDEF" for d in "ghijklmnop"])) == (
        "person_name"
    )


@pytest.mark.parametrize(
    ("values", "fmt"),
    [(["10:49:41", "07:05:00", "23:59:59"], "%H:%M:%S"), (["07:05", "18:30", "0:00"], "%H:%M"),
     (["10:49:41.250", "07:05:00.5"], "%H:%M:%S.%f")],
    ids=["seconds", "minutes", "fractions"],
)
def test_a_time_of_day_is_a_datetime_in_its_format_never_ipv6(values: list[str], fmt: str) -> None:
    column = pd.Series(values * 20, name="at")
    assert pii_type_of("at", column) is None
    conformed, schema = infer_schema(column.to_frame())
    assert schema["at"].kind is ColumnKind.DATETIME and schema["at"].datetime_format == fmt
    assert (conformed["at"].dt.date == pd.Timestamp("1900-01-01").date()).all()  # one fixed day, never today's
    written = as_written(conformed, schema)["at"]  # published as text in its format (`0:00` comes back `00:00`)
    assert written.map(type).eq(str).all()
    assert pd.to_datetime(written, format=fmt).tolist() == pd.to_datetime(column, format=fmt).tolist()
    assert schema["at"].bounds is not None


@pytest.mark.parametrize(
    "values",
    [["2001:db8:85a3:0:0:8a2e:370:7334", "fe80::1", "::1", "2001:db8::ff00:42:8329"]],
)
def test_ipv6_addresses_are_still_pii(values: list[str]) -> None:
    assert pii_type_of("peer", pd.Series(values * 10)) == "ipv6"


def test_dates_are_not_phone_numbers() -> None:
    for values in (["2020-01-01", "2021-12-31"], ["01/02/2020", "31/12/2021"], ["01.02.2020", "31.12.2021"]):
        assert pii_type_of("day", pd.Series(values * 20)) is None
    _, schema = infer_schema(pd.DataFrame({"day": ["2020-01-01", "2021-12-31"] * 20}))
    assert schema["day"].kind is ColumnKind.DATETIME


def test_infinite_numbers_are_refused_before_any_warning() -> None:
    frame = pd.DataFrame({"x": [1.0, np.inf, 2.0, -np.inf] * 10})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's RuntimeWarning would fail the test
        with pytest.raises(BadInputError, match=r"^column 'x' holds infinite values"):
            infer_schema(frame)


def test_a_time_of_day_column_is_learned_and_comes_back_in_its_format() -> None:
    from generators.registry import create

    rng = np.random.default_rng(0)
    seconds = rng.integers(6 * 3600, 22 * 3600, 300)
    frame = pd.DataFrame(
        {"at": [f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" for s in seconds], "v": seconds / 3600.0}
    )
    conformed, schema = infer_schema(frame)
    synthetic = as_written(create("copula", {}, seed=0).fit(conformed, schema).sample(200), schema)
    times = pd.to_datetime(synthetic["at"], format="%H:%M:%S")
    assert times.notna().all() and synthetic["at"].str.fullmatch(r"\d\d:\d\d:\d\d").all()
    assert synthetic["at"].min() >= "06:00:00" and synthetic["at"].max() <= "22:00:00"
    assert np.corrcoef(times.dt.hour + times.dt.minute / 60, synthetic["v"])[0, 1] > 0.5  # learned jointly with v


def test_an_identifier_that_repeats_now_and_then_is_still_an_id() -> None:
    rng = np.random.default_rng(0)
    numbers = rng.choice(np.arange(500_000, 600_000), 300, replace=False)
    numbers[:12] = numbers[12:24]  # twelve patients seen twice
    frame = pd.DataFrame({"hospital_number": numbers, "visits": rng.integers(0, 100, 300), "lab no": numbers})
    _, schema = infer_schema(frame)
    assert schema["hospital_number"].kind is ColumnKind.ID and schema["lab no"].kind is ColumnKind.ID
    assert schema["visits"].kind is ColumnKind.NUMERICAL  # a measure: neither named nor distinct like an id
