"""Schema inference: kinds from dtypes, names and values; overrides; facts computed on the column."""

from __future__ import annotations

import pandas as pd
import pytest

from generators.inference import infer_schema
from generators.schema import BadInputError, ColumnKind, Schema


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
