"""A source read in chunks, in memory bounded by a chunk: the frame `read_source` gives, streamed.

A table of 10M–100M rows does not fit in memory, so it is read in two steps:

1. `plan_source` sniffs what it must before any row is read in full: the format and compression, each CSV file's
   encoding and dialect (on its first bytes), and every column's type (a CSV's on its first `TYPING_BYTES`, a
   query's on its first `TYPING_ROWS` rows, Parquet's from its metadata). Bad input it can see there fails as
   `read_source` fails, with the same one-line `BadInputError`. The `SourcePlan` it returns is frozen and
   picklable: each of its `parts` (a file, a group of a big Parquet file's row groups, or the query) can be read
   on its own, on any worker.
2. `SourcePart.chunks(chunk_rows)` gives that part's rows in order, at most `chunk_rows` per frame, every chunk
   of every part in the plan's Arrow `schema`. A later value that does not fit the type the first rows gave its
   column is a `BadInputError` naming the column and the line (or rows), never the value: declaring the
   column's kind in the config (`columns:`, passed to `plan_source`) makes the plan read it as text or numbers.

The facts of the read (`SourceInfo`) are those `read_source` gives for the same source, combined after the parts
are read wherever they were read: each exhausted `PartReader` has its `facts` (its rows; a query's also the
digest of its rows), and `SourcePlan.info` adds them up. A file's digest is of its bytes as stored, so it does
not depend on the reading at all: `SourcePlan.stored_sha256` is one pass over the bytes, which can run beside
the reading (another task), or is run by `info` itself. With Dask::

    plan = plan_source(path)
    def read(part):                       # on a worker
        reader = part.chunks(100_000)
        for frame in reader:
            ...                           # use the chunk
        return reader.facts
    digest = client.submit(plan.stored_sha256)   # beside the reading
    facts = client.gather(client.map(read, plan.parts))
    info = plan.info(facts, stored_sha256=digest.result())

A chunk's index is its rows' positions in its part; concatenated with `ignore_index=True`, every part's chunks
make `read_source`'s frame. Its pandas dtypes follow the plan's Arrow types, except where pandas has no missing
value for a type: a chunk of integers (or booleans) with a missing value is float64 (object), as a whole frame
with one is.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from flows.sources.csv import (
    DEFAULT_NA_VALUES,
    WORD_NA_VALUES,
    Dialect,
    csv_options,
    malformed,
    null_values,
    numbers_without_word_markers,
    sniff_csv,
)
from flows.sources.files import (
    check_columns,
    check_keys,
    files_of,
    formats_of,
    partition_keys,
    source_info,
    stored_sha256,
)
from flows.sources.parquet import (
    announce_dropped,
    parquet_errors,
    parquet_input,
    plain_types,
    unlearnable_columns,
)
from flows.sources.sql import FORMAT, RowsDigest, SqlSpec, learnable, streamed_rows, unified
from flows.sources.table import SNIFF_BYTES, Reading, SourceInfo, common_type, first_line, open_stream
from generators.tabular.errors import BadInputError
from generators.tabular.inference import as_override
from generators.tabular.schema import ColumnKind

log = logging.getLogger(__name__)

TYPING_BYTES = 4 << 20  # a CSV source's column types are judged on its first 4 MiB, shared among its files
TYPING_ROWS = 100_000  # a query's column types are judged on its first rows
PART_ROWS = 1 << 20  # a Parquet file's row groups are read as parts of about this many rows (whole groups)
_BLOCK_BYTES = 1 << 20  # what the CSV reader parses at once (read_csv's too); it reads up to 32 blocks ahead
_TEXT_KINDS = {ColumnKind.CATEGORICAL, ColumnKind.ID, ColumnKind.PII, ColumnKind.TEXT}
_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to ([^:]+):")

Keys = tuple[tuple[str, pa.Scalar], ...]  # a file's hive partition keys: each name with its typed value


@dataclass(frozen=True)
class PartFacts:
    """What reading one part found: its rows, and a query's digest of them (a file's is of its bytes, not here)."""

    rows: int
    sha256: str | None = None


class PartReader(Iterator[pd.DataFrame]):
    """One part's rows as frames of at most `chunk_rows`, in order; once every one is read, the part's `facts`."""

    def __init__(self, tables: Iterator[pa.Table], digest: RowsDigest | None = None) -> None:
        self._tables = tables
        self._digest = digest
        self._rows = 0
        self._facts: PartFacts | None = None

    def __next__(self) -> pd.DataFrame:
        try:
            table = next(self._tables)
        except StopIteration:
            if self._facts is None:
                self._facts = PartFacts(self._rows, None if self._digest is None else self._digest.hexdigest())
            raise
        if self._digest is not None:
            self._digest.update(table)
        frame = table.to_pandas()
        frame.index = pd.RangeIndex(self._rows, self._rows + len(frame))
        self._rows += len(frame)
        return frame

    @property
    def facts(self) -> PartFacts:
        """The part's rows (and a query's digest): known only once the last chunk has been read."""
        if self._facts is None:
            raise RuntimeError("a part's facts are known once every chunk of it has been read")
        return self._facts


class SourcePart(Protocol):
    """A piece of a source read on its own (on any worker): a file, some row groups of one, or a query."""

    def chunks(self, chunk_rows: int) -> PartReader:
        """The part's rows in order, at most `chunk_rows` per frame."""
        ...


@dataclass(frozen=True)
class CsvPart:
    """One CSV file, read in its dialect with the plan's column types forced on every block."""

    path: Path
    compression: str | None
    dialect: Dialect
    na_values: tuple[str, ...] | None
    schema: pa.Schema
    keys: Keys = ()

    def chunks(self, chunk_rows: int) -> PartReader:
        """The file's rows in order, at most `chunk_rows` per frame."""
        return PartReader(_rechunked(self._tables(), chunk_rows))

    def _tables(self) -> Iterator[pa.Table]:
        """Each block of the file, typed as the plan says.

        With the default markers, `NA` and `None` are missing in a column of numbers, booleans or dates (as
        `numbers_without_word_markers` makes them in a whole file) and kept as words in a column of text.
        """
        ragged: list[pacsv.InvalidRow] = []
        read, parse, convert = csv_options(self.dialect, self.na_values, ragged)
        read.block_size = _BLOCK_BYTES
        names = self.schema.names[: len(self.schema) - len(self.keys)]
        convert.column_types = {name: self.schema.field(name).type for name in names}
        words = self.na_values is None
        if words:
            convert.null_values = null_values(None)
            convert.strings_can_be_null = False  # a text column's markers but the words are made missing below
        markers = pa.array([v for v in DEFAULT_NA_VALUES if v not in WORD_NA_VALUES])
        with _csv_errors(self.path, self.dialect, ragged, names), open_stream(self.path, self.compression) as stream:
            for batch in pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert):
                table = pa.Table.from_batches([batch])
                yield _keyed(_text_markers_missing(table, markers) if words else table, self.keys, self.schema)


@dataclass(frozen=True)
class ParquetPart:
    """Some row groups of one Parquet file (all of them for a compressed file: it is read from memory)."""

    path: Path
    compression: str | None
    row_groups: tuple[int, ...]
    schema: pa.Schema
    keys: Keys = ()

    def chunks(self, chunk_rows: int) -> PartReader:
        """The row groups' rows in order, at most `chunk_rows` per frame."""
        return PartReader(_rechunked(self._tables(chunk_rows), chunk_rows))

    def _tables(self, chunk_rows: int) -> Iterator[pa.Table]:
        names = self.schema.names[: len(self.schema) - len(self.keys)]
        with parquet_errors(self.path):
            batches = pq.ParquetFile(parquet_input(self.path, self.compression)).iter_batches(
                batch_size=chunk_rows, row_groups=list(self.row_groups), columns=names, use_pandas_metadata=False
            )
            for batch in batches:
                yield _keyed(plain_types(pa.Table.from_batches([batch])), self.keys, self.schema)


@dataclass(frozen=True)
class SqlPart:
    """The query, run again on a connection of its own; its rows' digest is taken as they are read."""

    spec: SqlSpec
    schema: pa.Schema
    declared: frozenset[str] = frozenset()  # columns read as the config's kind says, whatever their values

    def chunks(self, chunk_rows: int) -> PartReader:
        """The query's rows in order, fetched and given `chunk_rows` at a time."""
        return PartReader(_rechunked(self._tables(chunk_rows), chunk_rows), RowsDigest(self.schema))

    def _tables(self, chunk_rows: int) -> Iterator[pa.Table]:
        with streamed_rows(self.spec, chunk_rows) as rows:
            done = 0
            for batch in rows.batches:
                table = pa.Table.from_batches([batch]).select(self.schema.names)
                yield self._typed(table, done, rows.shown)
                done += table.num_rows

    def _typed(self, table: pa.Table, done: int, shown: str) -> pa.Table:
        """The fetched rows in the plan's types: those the first rows' types take in (as `unified` would)."""
        where = f"rows {done + 1}-{done + table.num_rows} of {shown}"
        for index, field in enumerate(self.schema):
            column = table.column(index)
            if column.type == field.type:
                continue
            if field.name not in self.declared and common_type([field.type, column.type]) != field.type:
                raise _misfit(field.name, field.type, where, f"its first {TYPING_ROWS} rows")
            try:
                table = table.set_column(index, field, column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise _misfit(field.name, field.type, where, f"its first {TYPING_ROWS} rows") from None
        return table


@dataclass(frozen=True)
class SourcePlan:
    """How to read a source in parts, and the facts of it known before reading.

    `schema` is every chunk's Arrow schema. `known` is the `SourceInfo` of the source but for `rows` and
    `sha256` (0 and empty until `info` fills them in). `root` and `files` are what `stored_sha256` digests
    (none for a query, whose digest is of its rows).
    """

    parts: tuple[SourcePart, ...]
    schema: pa.Schema
    known: SourceInfo
    root: Path | None = None
    files: tuple[Path, ...] = ()

    def stored_sha256(self) -> str:
        """The digest of the files' bytes as stored, as `read_source` records it: one pass over every byte."""
        if self.root is None:
            raise ValueError("a query has no stored bytes: its digest is of its rows (PartFacts.sha256)")
        return stored_sha256(self.files, self.root)

    def info(self, facts: Sequence[PartFacts], stored_sha256: str | None = None) -> SourceInfo:
        """The `SourceInfo` `read_source` gives, from every part's facts (in the parts' order).

        A file source's digest is `stored_sha256` when it was taken elsewhere (beside the reading), else taken here.
        """
        if len(facts) != len(self.parts):
            raise ValueError(f"facts of {len(facts)} parts given for a plan of {len(self.parts)}")
        if self.root is None:
            digest = facts[0].sha256
        else:
            digest = stored_sha256 if stored_sha256 is not None else self.stored_sha256()
        assert digest is not None  # a query's part always digests its rows
        return dataclasses.replace(self.known, rows=sum(f.rows for f in facts), sha256=digest)


def plan_source(
    source: str | Path | SqlSpec,
    na_values: Sequence[str] | None = None,
    columns: Mapping[str, Any] | None = None,
) -> SourcePlan:
    """How to read the source in parts, judged on its first bytes (or rows) and its metadata.

    `na_values` as for `read_source`. `columns` are the config's schema overrides: a CSV or query column declared
    numerical is read as float64, one declared categorical, id, pii or text as text, whatever its first rows look
    like (Parquet keeps its own types). Without them, the chunks make the frame `read_source` gives.
    """
    declared = _declared_types(columns or {})
    if not isinstance(source, str | Path):
        return _sql_plan(source, declared)
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInputError(f"source not found: {path}")
    files = files_of(path)
    fmt, compressions = formats_of(files, path)
    if fmt == "parquet":
        return _parquet_plan(path, files, compressions)
    return _csv_plan(path, files, compressions, na_values, declared)


def _csv_plan(
    path: Path, files: list[Path], compressions: list[str | None], na_values: Sequence[str] | None,
    declared: Mapping[str, pa.DataType],
) -> SourcePlan:
    head = max(SNIFF_BYTES, TYPING_BYTES // len(files))  # each file's head at least the sample its dialect is from
    heads = [_csv_head(f, compression, na_values, head) for f, compression in zip(files, compressions, strict=True)]
    keys = _keys_of(files, path, [table.schema.names for _, table in heads])
    schema = _schema_of([table.schema for _, table in heads], keys, path, sum(t.num_rows for _, t in heads))
    schema = _declared(schema, declared, len(keys[0]))
    nulls = None if na_values is None else tuple(na_values)
    parts = tuple(
        CsvPart(f, compression, dialect, nulls, schema, file_keys)
        for f, compression, (dialect, _), file_keys in zip(files, compressions, heads, keys, strict=True)
    )
    readings = [dialect.reading(c) for c, (dialect, _) in zip(compressions, heads, strict=True)]
    known = source_info(path, "csv", "", 0, len(schema), readings, na_values)
    return _logged(SourcePlan(parts, schema, known, path, tuple(files)))


def _csv_head(
    path: Path, compression: str | None, na_values: Sequence[str] | None, head: int
) -> tuple[Dialect, pa.Table]:
    """The file's dialect and its first `head` bytes read as `read_csv` reads the whole file: their types decide."""
    dialect = sniff_csv(path, compression, na_values, head)
    ragged: list[pacsv.InvalidRow] = []
    read, parse, convert = csv_options(dialect, na_values, ragged)
    # The types are those of the reader's first block, which must end before the head does (UTF-16 is read as
    # UTF-8, in as few as half the bytes): the reader cuts it at its last line end, as it cuts every block.
    read.block_size = (head // 2 if dialect.encoding == "utf-16" else head) - 2
    with _csv_errors(path, dialect, ragged, []):
        with open_stream(path, compression) as stream:
            start = stream.read_buffer(head)  # the head only: the reader reads blocks ahead in the background
        reader = pacsv.open_csv(pa.BufferReader(start), read_options=read, parse_options=parse, convert_options=convert)
        first = next(iter(reader), None)
        table = reader.schema.empty_table() if first is None else pa.Table.from_batches([first])
    return dialect, numbers_without_word_markers(table, dialect.decimal) if na_values is None else table


def _parquet_plan(path: Path, files: list[Path], compressions: list[str | None]) -> SourcePlan:
    opened = [_parquet_file(f, compression) for f, compression in zip(files, compressions, strict=True)]
    keys = _keys_of(files, path, [schema.names for schema, _, _ in opened])
    schema = _schema_of([schema for schema, _, _ in opened], keys, path, sum(sum(g) for _, g, _ in opened))
    parts = tuple(
        ParquetPart(f, compression, groups, schema, file_keys)
        for f, compression, (_, sizes, _), file_keys in zip(files, compressions, opened, keys, strict=True)
        for groups in _grouped(sizes, whole=compression is not None)
    )
    readings = [reading for _, _, reading in opened]
    known = source_info(path, "parquet", "", 0, len(schema), readings, None)
    return _logged(SourcePlan(parts, schema, known, path, tuple(files)))


def _parquet_file(path: Path, compression: str | None) -> tuple[pa.Schema, list[int], Reading]:
    """The columns `read_parquet` keeps, in the types it gives them, each row group's rows, and the file's reading.

    A stored pandas index is left out: `read_source` makes it the frame's index, which a chunk's index is not.
    """
    with parquet_errors(path):
        file = pq.ParquetFile(parquet_input(path, compression))
        stored = file.schema_arrow
        sizes = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
    dropped = unlearnable_columns(stored)
    index = {c for c in (stored.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
    kept = pa.schema([f for f in stored if f.name not in dropped and f.name not in index], stored.metadata)
    announce_dropped(path, dropped, len(kept))
    return plain_types(kept.empty_table()).schema, sizes, Reading(compression=compression, dropped=dropped)


def _grouped(sizes: Sequence[int], whole: bool) -> list[tuple[int, ...]]:
    """The row groups as parts of about `PART_ROWS` rows (whole groups, in order); one part when `whole`."""
    if whole or not sizes:
        return [tuple(range(len(sizes)))]
    parts: list[list[int]] = [[]]
    held = 0
    for index, size in enumerate(sizes):
        if parts[-1] and held + size > PART_ROWS:
            parts.append([])
            held = 0
        parts[-1].append(index)
        held += size
    return [tuple(p) for p in parts]


def _sql_plan(spec: SqlSpec, declared: Mapping[str, pa.DataType]) -> SourcePlan:
    with streamed_rows(spec, spec.chunk_rows) as rows:
        head: list[pa.RecordBatch] = []
        for batch in rows.batches:
            head.append(batch)
            if sum(b.num_rows for b in head) >= TYPING_ROWS:
                break
    table, dropped = learnable(unified(head, rows.names), spec, rows.shown)
    schema = _declared(table.schema, declared, 0)
    known = SourceInfo(uri=rows.shown, format=FORMAT, sha256="", rows=0, columns=len(schema), dropped=dropped,
                       query=rows.query)
    part = SqlPart(spec, schema, frozenset(declared) & set(schema.names))
    return _logged(SourcePlan((part,), schema, known))


def _keys_of(files: list[Path], root: Path, names: list[list[str]]) -> list[Keys]:
    """Each file's partition keys, none of them one of its columns."""
    keys = partition_keys(files, root)
    for file, file_names, file_keys in zip(files, names, keys, strict=True):
        check_keys(file, file_names, file_keys)
    return [tuple(k.items()) for k in keys]


def _schema_of(schemas: list[pa.Schema], keys: list[Keys], path: Path, rows: int) -> pa.Schema:
    """The one schema of every part: each column's type the one its files' types meet as, keys last.

    `rows` are those seen (0 only when there are none at all).
    """
    names = [[*schema.names, *(name for name, _ in file_keys)] for schema, file_keys in zip(schemas, keys, strict=True)]
    if any(n != names[0] for n in names):
        raise BadInputError(f"the files in {path} do not all have the same columns")
    check_columns(names[0], rows, path)
    fields = [pa.field(n, common_type([s.field(i).type for s in schemas])) for i, n in enumerate(schemas[0].names)]
    fields += [pa.field(name, value.type) for name, value in keys[0]]
    return pa.schema(fields, schemas[0].metadata)


def _declared_types(columns: Mapping[str, Any]) -> dict[str, pa.DataType]:
    """The type each column declared numerical (float64) or of a text kind (text) is read as."""
    kinds = {name: as_override(name, value).get("kind") for name, value in columns.items()}
    return {
        name: pa.float64() if kind == ColumnKind.NUMERICAL else pa.string()
        for name, kind in kinds.items()
        if kind == ColumnKind.NUMERICAL or kind in _TEXT_KINDS
    }


def _declared(schema: pa.Schema, declared: Mapping[str, pa.DataType], keys: int) -> pa.Schema:
    """The schema with each declared column's type (partition keys, the last `keys` columns, keep theirs)."""
    for index, field in enumerate(schema):
        if field.name in declared and index < len(schema) - keys:
            schema = schema.set(index, field.with_type(declared[field.name]))
    return schema


def _logged(plan: SourcePlan) -> SourcePlan:
    log.info("planned %s: %d parts of %d columns", plan.known.uri, len(plan.parts), len(plan.schema))
    return plan


def _rechunked(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The tables' rows again, `rows` at a time (the last chunk fewer); only what is not yet given is held."""
    if rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {rows}")
    pending: pa.Table | None = None
    for table in tables:
        pending = table if pending is None else pa.concat_tables([pending, table])
        while pending.num_rows >= rows:
            yield pending.slice(0, rows)
            pending = pending.slice(rows)
    if pending is not None and pending.num_rows:
        yield pending


def _keyed(table: pa.Table, keys: Keys, schema: pa.Schema) -> pa.Table:
    """The file's rows with its partition keys as columns, in the plan's schema."""
    for name, value in keys:
        table = table.append_column(name, pa.repeat(value, table.num_rows))
    return table if table.schema.equals(schema, check_metadata=True) else table.cast(schema)


def _text_markers_missing(table: pa.Table, markers: pa.Array) -> pa.Table:
    """Each text column's missing-value markers (but the words `NA` and `None`) made missing."""
    for index, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            column = table.column(index)
            missing = pc.if_else(pc.is_in(column, value_set=markers), pa.scalar(None, pa.string()), column)
            table = table.set_column(index, field, missing)
    return table


@contextmanager
def _csv_errors(path: Path, dialect: Dialect, ragged: list[pacsv.InvalidRow], names: Sequence[str]) -> Iterator[None]:
    """What reading the file raises, as `read_csv` says it; a value that does not fit its column, as `_misfit`."""
    try:
        yield
    except pa.ArrowInvalid as err:
        conversion = _CONVERSION.match(str(err))
        if conversion is None or ragged:
            raise malformed(path, dialect, ragged, err) from None
        column, line, kind = conversion.groups()
        where = f"line {line} of {path}" if line is not None else str(path)
        if kind == "string":
            raise _not_text(where, dialect.encoding) from None
        raise _misfit(names[int(column)], kind, where, "its first rows") from None
    except UnicodeDecodeError:
        raise _not_text(f"part of {path}", dialect.encoding) from None
    except OSError as err:
        raise BadInputError(f"cannot read {path}: {first_line(err)}") from None


def _misfit(name: str, kind: pa.DataType | str, where: str, judged_on: str) -> BadInputError:
    """A value that does not fit the type its column's first rows gave it: named by place, never by content."""
    return BadInputError(
        f"column '{name}': a value in {where} is not {kind}, the type {judged_on} gave it;"
        f" declare the column's kind in the config (columns: {{{name}: categorical}}, or numerical)"
    )


def _not_text(where: str, encoding: str) -> BadInputError:
    return BadInputError(
        f"{where} is not {encoding} text, as the file's first bytes are (its encoding is judged on them);"
        " save it as UTF-8"
    )
