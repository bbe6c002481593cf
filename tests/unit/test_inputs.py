"""Tables nobody tuned synthgate on: the public calibration tables and Adult read and infer sensibly.

The calibration tables (UCI, CC BY 4.0, values exactly as published: `?` for missing, every value in
single quotes, integer codes) live in the shared datasets folder; without it these tests are skipped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from flows.sources import load_table, read_source
from generators.tabular.inference import SAMPLE_SIZE, detect_kind, pii_type_of
from generators.tabular.schema import ColumnKind

ROOT = Path(__file__).resolve().parents[2]
CALIBRATION = Path("/work/shared/datasets/calibration")
TABLES = sorted(CALIBRATION.glob("*.csv")) if CALIBRATION.is_dir() else []
needs_tables = pytest.mark.skipif(not TABLES, reason=f"calibration tables not found in {CALIBRATION}")


def _raw_columns(path: Path) -> dict[str, list[str]]:
    """Each column's cells exactly as written, quotes stripped."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle, quotechar="'"))
    return {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@needs_tables
@pytest.mark.parametrize("path", TABLES, ids=[p.stem for p in TABLES])
def test_a_calibration_table_reads_with_question_marks_as_missing_numbers(path: Path) -> None:
    table = load_table(path)
    assert table.source.rows > 100
    for name, cells in _raw_columns(path).items():
        values = [c for c in cells if c not in ("?", "nan", "")]
        spec = table.schema[name]
        if "?" in cells and all(_is_number(v) for v in values):
            assert spec.kind is ColumnKind.NUMERICAL, f"{path.stem}.{name} with '?' is {spec.kind}"
            assert spec.nullable and table.frame[name].isna().sum() == cells.count("?")
        for category in spec.categories or ():
            assert category != "?" and not str(category).startswith("'"), f"{path.stem}.{name}: {category!r}"


@needs_tables
def test_the_named_numeric_columns_of_auto_imports_are_numbers() -> None:
    table = load_table(CALIBRATION / "auto_imports.csv")
    for name in ("normalized_losses", "bore", "stroke", "horsepower", "peak_rpm"):
        assert table.schema[name].kind is ColumnKind.NUMERICAL, name
    assert table.schema["make"].kind is ColumnKind.CATEGORICAL


@needs_tables
def test_quoted_ranges_of_breast_cancer_are_plain_categories() -> None:
    table = load_table(CALIBRATION / "breast_cancer.csv")
    assert table.source.quote == "'"
    assert table.schema["age"].categories == ("20-29", "30-39", "40-49", "50-59", "60-69", "70-79")


SOURCES = [*TABLES, ROOT / "data" / "adult.parquet"]


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_no_column_of_a_public_table_is_taken_for_personal_data(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not found")
    frame, _ = read_source(path)
    for name in frame.columns:
        column = frame[name]
        sample = column.dropna().astype(str).head(SAMPLE_SIZE)
        assert pii_type_of(str(name), sample) is None, f"{path.stem}.{name}"
        assert detect_kind(column) is not ColumnKind.PII, f"{path.stem}.{name}"


def test_pii_patterns_still_find_what_they_are_for() -> None:
    found = {
        "email": ["ann.lee@example.org", "b+c@mail.co.uk"],
        "us_ssn": ["123-45-6789", "987-65-4321"],
        "ipv4": ["10.0.0.1", "192.168.1.254"],
        "ipv6": ["2001:db8::1", "fe80:0:0:0:200:f8ff:fe21:67cf"],
        "phone": ["+33 6 12 34 56 78", "(555) 123-4567"],
    }
    for pii_type, values in found.items():
        assert pii_type_of("value", pd.Series(values * 10)) == pii_type
