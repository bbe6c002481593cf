"""What every source yields: the raw frame with the facts of how it was read, and then the ingested `Table`.

The facts are a `SourceInfo`, for the manifest; the `Table` comes once the frame's schema is inferred. Also what
the readers share: how one file was read (`Reading`), its bytes as stored or decompressed, a one-line error, and
the one type that columns read in pieces meet as (`common_type`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from generators.tabular.schema import Schema

SNIFF_BYTES = 64 * 1024  # what a source's format, compression and CSV dialect are judged on


@dataclass(frozen=True)
class SourceInfo:
    """Where the table came from and how its bytes were read, for the manifest.

    The sha256 pins the bytes as stored (compressed ones as they are); `compression`, `encoding`,
    `delimiter`, `decimal`, `quote` and `na_values` say how they were turned into a table (CSV only; parts
    of a folder that differ list each value once, space-separated), and `dropped` names each column left
    out because no model can learn it, with the reason.

    A SQL source has no stored bytes: its `uri` is the database URL with the password hidden, `query` the
    query that was run (a table's is `SELECT * FROM` its quoted name), and the sha256 pins the rows read.
    """

    uri: str
    format: str
    sha256: str
    rows: int
    columns: int
    compression: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    quote: str | None = None
    na_values: tuple[str, ...] | None = None
    dropped: dict[str, str] = field(default_factory=dict)
    query: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain values: the manifest's `source` entry."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Table:
    """An ingested table: the frame conformed to its schema, the schema, and its provenance."""

    frame: pd.DataFrame
    schema: Schema
    source: SourceInfo


@dataclass(frozen=True)
class Reading:
    """How one file was read: the facts `SourceInfo` records."""

    compression: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    quote: str | None = None
    dropped: Mapping[str, str] = field(default_factory=dict)


def open_stream(path: Path, compression: str | None) -> pa.NativeFile:
    """The file's bytes as stored, or decompressed (an explicit codec: the name's suffix is never trusted)."""
    return pa.input_stream(str(path), compression=compression)


def first_line(err: Exception) -> str:
    """The error's first line (its type's name when it has no message), so a `BadInputError` stays one line."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def common_type(types: list[pa.DataType]) -> pa.DataType:
    """The one type values of all these types meet as: integers and floats as floats, nulls as the others' type.

    Types that do not meet (text beside numbers) meet as text.
    """
    distinct = list(dict.fromkeys(types))
    if len(distinct) == 1:
        return distinct[0]
    try:
        unified = pa.unify_schemas([pa.schema([pa.field("c", t)]) for t in distinct], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.string()
    return unified.field("c").type
