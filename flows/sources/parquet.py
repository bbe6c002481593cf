"""Parquet is typed already: only its columns no model can learn (nested, binary) are dropped.

Each is dropped with a warning, and recorded in the `Reading`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.sources.table import Reading, first_line, open_stream
from generators.tabular.errors import BadInputError

log = logging.getLogger(__name__)

PARQUET_MAGIC = b"PAR1"


def read_parquet(path: Path, compression: str | None) -> tuple[pd.DataFrame, Reading]:
    """The file's learnable columns; nested and binary ones are dropped (logged, and recorded)."""
    with parquet_errors(path):
        schema = pq.read_schema(parquet_input(path, compression))
        dropped = unlearnable_columns(schema)
        keep = [name for name in schema.names if name not in dropped]
        table = pq.read_table(parquet_input(path, compression), columns=keep, use_pandas_metadata=True)
        frame = plain_types(table).to_pandas()
    announce_dropped(path, dropped, frame.shape[1])
    return frame, Reading(compression=compression, dropped=dropped)


def parquet_input(path: Path, compression: str | None) -> Any:
    """What pyarrow opens: the path, or a compressed file's bytes decompressed in memory (Parquet needs to seek)."""
    if compression is None:
        return str(path)
    with open_stream(path, compression) as stream:
        return pa.BufferReader(stream.read_buffer())


@contextmanager
def parquet_errors(path: Path) -> Iterator[None]:
    """Whatever pyarrow raises reading the file, as a one-line `BadInputError`."""
    try:
        yield
    except (pa.ArrowException, OSError) as err:
        raise BadInputError(f"unreadable Parquet file {path}: {first_line(err)}") from None


def unlearnable_columns(schema: pa.Schema) -> dict[str, str]:
    """Each column no model can learn, with the reason."""
    return {f.name: why for f in schema if (why := unlearnable(f.type)) is not None}


def announce_dropped(path: Path, dropped: Mapping[str, str], kept: int) -> None:
    """Each dropped column logged; a file left with no column at all is refused, naming them."""
    if dropped and kept == 0:
        raise BadInputError(f"source {path} has no column a model can learn: {_described(dropped)}")
    for name, why in dropped.items():
        log.warning("dropped column '%s' of %s: %s", name, path, why)


def unlearnable(kind: pa.DataType) -> str | None:
    """Why no model can learn a column of this Arrow type, or None when one can."""
    if isinstance(kind, pa.ExtensionType):
        return unlearnable(kind.storage_type)
    if pa.types.is_dictionary(kind):
        return unlearnable(kind.value_type)
    if pa.types.is_nested(kind):
        return f"nested values ({kind}) cannot be learned"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return f"raw bytes ({kind}) cannot be learned"
    return None


def plain_types(table: pa.Table) -> pa.Table:
    """Decimals as float64 (pandas would hold Python objects), times of day as their `HH:MM:SS` text."""
    for index, column in enumerate(table.columns):
        if pa.types.is_decimal(column.type):
            table = table.set_column(index, table.schema.field(index).name, pc.cast(column, pa.float64()))
        elif pa.types.is_time(column.type):
            table = table.set_column(index, table.schema.field(index).name, pc.cast(column, pa.string()))
    return table


def _described(dropped: Mapping[str, str]) -> str:
    return ", ".join(f"'{name}' ({why})" for name, why in dropped.items())
