"""Shared fixtures: a tiny mixed table that exercises every column kind and its schema."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from generators.tabular.schema import ColumnKind, ColumnSpec, Schema


def make_mixed_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A small table with every kind, NaNs in every learned kind, a rare and a high-cardinality category."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    income = np.round(np.exp(rng.normal(10, 0.6, n)) + 300 * age, 2)
    income[rng.random(n) < 0.1] = np.nan
    colour = rng.choice(["red", "green", "blue"], n, p=[0.6, 0.3, 0.1]).astype(object)
    colour[:2] = "violet"  # a rare category that must survive
    colour[rng.random(n) < 0.05] = None
    member = pd.array(rng.random(n) < 0.4, dtype="boolean")
    member[rng.random(n) < 0.05] = pd.NA
    city = np.array([f"city-{i % (n // 2)}" for i in range(n)], dtype=object)  # high cardinality
    start = pd.Timestamp("2020-01-01", tz="Europe/Paris")
    joined = pd.Series(start + pd.to_timedelta(rng.integers(0, 3 * 365 * 24, n), unit="h"))
    joined[rng.random(n) < 0.05] = pd.NaT
    return pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "email": [f"user{i}.{rng.integers(100, 999)}@example.org" for i in range(n)],
            "age": age,
            "income": income,
            "colour": colour,
            "member": member,
            "city": city,
            "joined": joined,
        }
    )


def mixed_schema_for(df: pd.DataFrame) -> Schema:
    """The schema of `make_mixed_frame`, written out by hand so unit tests do not depend on inference."""
    colours = ("blue", "green", "red", "violet")
    return Schema(
        (
            ColumnSpec("customer_id", ColumnKind.ID, "int64"),
            ColumnSpec("email", ColumnKind.PII, "object", pii_type="email"),
            ColumnSpec(
                "age", ColumnKind.NUMERICAL, "int64", bounds=(float(df.age.min()), float(df.age.max())), integer=True
            ),
            ColumnSpec(
                "income",
                ColumnKind.NUMERICAL,
                "float64",
                nullable=True,
                bounds=(float(df.income.min()), float(df.income.max())),
            ),
            ColumnSpec("colour", ColumnKind.CATEGORICAL, "object", nullable=True, categories=colours),
            ColumnSpec("member", ColumnKind.BOOLEAN, "boolean", nullable=True),
            ColumnSpec("city", ColumnKind.CATEGORICAL, "object", categories=tuple(sorted(df.city.unique()))),
            ColumnSpec(
                "joined",
                ColumnKind.DATETIME,
                "datetime64[ns, Europe/Paris]",
                nullable=True,
                timezone="Europe/Paris",
                bounds=(float(df.joined.min().value), float(df.joined.max().value)),
            ),
        )
    )


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    return make_mixed_frame()


@pytest.fixture
def mixed_schema(mixed_frame: pd.DataFrame) -> Schema:
    return mixed_schema_for(mixed_frame)


def make_tiered_table(n: int) -> tuple[pd.DataFrame, Schema]:
    """What native conditioning on a rare category must reproduce: a rare kind whose rows are all gold.

    3 % of rows are of the rare kind, and every one of those is gold; other rows are rarely gold.
    """
    rng = np.random.default_rng(0)
    kind = np.where(rng.random(n) < 0.03, "rare", rng.choice(["a", "b", "c"], n)).astype(object)
    tier = np.where(kind == "rare", "gold", rng.choice(["bronze", "silver", "gold"], n, p=[0.6, 0.38, 0.02]))
    spend = np.round(rng.gamma(2.0, 50.0, n) + 400.0 * (kind == "rare"), 2)
    df = pd.DataFrame({"kind": kind, "tier": tier.astype(object), "spend": spend})
    schema = Schema(
        (
            ColumnSpec("kind", ColumnKind.CATEGORICAL, "object", categories=("a", "b", "c", "rare")),
            ColumnSpec("tier", ColumnKind.CATEGORICAL, "object", categories=("bronze", "silver", "gold")),
            ColumnSpec("spend", ColumnKind.NUMERICAL, "float64", bounds=(0.0, float(spend.max()))),
        )
    )
    return df, schema


def gzip_bytes(data: bytes) -> bytes:
    """`data` gzipped reproducibly (no timestamp): a compressed source's bytes."""
    return gzip.compress(data, mtime=0)


def zstd_bytes(data: bytes) -> bytes:
    """`data` as a zstd stream: a compressed source's bytes."""
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        stream.write(data)
    return bytes(sink.getvalue().to_pybytes())
