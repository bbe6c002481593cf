"""A table or a query in a SQL database, streamed through SQLAlchemy 2 into the same frame the file readers give.

Rows come in chunks of `chunk_rows` (a server-side cursor on PostgreSQL, never `fetchall`), each turned into an
Arrow record batch at once, so the driver's Python rows never pile up. Types follow the values: decimals become
floats, dates and timestamps datetimes, times of day their text; a column whose values no single Arrow type holds
(SQLite lets a column mix them) is read as text, and raw bytes or nested values are dropped, as Parquet's are.

The password is looked up only to connect (from an environment variable or a Prefect `Secret` block) and never
leaves this module: the URL is shown redacted and every driver error is scrubbed of it before it becomes a
one-line `BadInputError`. Reading never writes: a SQLite file that does not exist is refused rather than created.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from flows.sources.parquet import unlearnable
from flows.sources.table import SourceInfo, common_type, first_line
from generators.tabular.errors import BadInputError

log = logging.getLogger(__name__)

FORMAT = "sql"
DEFAULT_CHUNK_ROWS = 50_000
_HASH_ROWS = 1 << 16  # the fixed slicing the fingerprint is taken over, whatever chunks the rows came in
_HIDDEN = "***"


class SqlSpec(Protocol):
    """What a SQL source says: where (a SQLAlchemy URL), what (a table or a query), how the password is found.

    `flows.config.SqlSource` is one; the reader needs nothing else from it.
    """

    @property
    def sql(self) -> str: ...  # noqa: D102 (documented by the class)

    @property
    def table(self) -> str | None: ...  # noqa: D102

    @property
    def query(self) -> str | None: ...  # noqa: D102

    @property
    def db_schema(self) -> str | None: ...  # noqa: D102

    @property
    def password_env(self) -> str | None: ...  # noqa: D102

    @property
    def password_secret(self) -> str | None: ...  # noqa: D102

    @property
    def chunk_rows(self) -> int: ...  # noqa: D102


def parse_url(text: str) -> URL:
    """The SQLAlchemy URL, or a one-line error that does not echo it (it may hold a password)."""
    try:
        return sa.make_url(text)
    except sa.exc.ArgumentError:
        raise BadInputError("not a SQLAlchemy URL (dialect+driver://user@host/database)") from None


def redacted(text: str) -> str:
    """The URL as it may be shown: its password, if any, replaced by `***`."""
    return parse_url(text).render_as_string(hide_password=True)


def read_sql(spec: SqlSpec) -> tuple[pd.DataFrame, SourceInfo]:
    """The rows of the table or query as a raw frame, with their provenance; the password is never shown."""
    with streamed_rows(spec, spec.chunk_rows) as rows:
        table = unified(list(rows.batches), rows.names)
    table, dropped = learnable(table, spec, rows.shown)
    digest = RowsDigest(table.schema)
    digest.update(table)
    info = SourceInfo(uri=rows.shown, format=FORMAT, sha256=digest.hexdigest(), rows=table.num_rows,
                      columns=table.num_columns, dropped=dropped, query=rows.query)
    frame = table.to_pandas(split_blocks=True, self_destruct=True)  # frees each Arrow column once converted
    return frame, info


@dataclass(frozen=True)
class SqlRows:
    """A query running: the URL as shown, the query, its column names and its rows as record batches, in order."""

    shown: str
    query: str
    names: list[str]
    batches: Iterator[pa.RecordBatch]


@contextmanager
def streamed_rows(spec: SqlSpec, chunk_rows: int) -> Iterator[SqlRows]:
    """The source's query run on a connection of its own, its rows fetched `chunk_rows` at a time as they are read.

    Leaving the block closes the connection (rolling back), whether every row was read or not.
    """
    url = _with_password(parse_url(spec.sql), spec)
    shown = url.render_as_string(hide_password=True)
    secrets = _forms_of(url.password)
    _refuse_missing_sqlite_file(url)
    try:
        engine = sa.create_engine(url)
    except (ImportError, sa.exc.NoSuchModuleError) as err:
        raise BadInputError(
            f"no driver for {url.drivername} ({_scrubbed(err, secrets)}); install it, or name one in the URL, "
            "e.g. postgresql+psycopg://"
        ) from None
    try:
        with _connected(engine, shown, secrets) as connection:
            query = _query_of(spec, connection, shown)
            names, batches = _executed(connection, query, chunk_rows, shown, secrets)
            yield SqlRows(shown, query, names, batches)
    finally:
        engine.dispose()


def learnable(table: pa.Table, spec: SqlSpec, shown: str) -> tuple[pa.Table, dict[str, str]]:
    """The rows without the columns no model can learn (logged, returned with the reason); none left is refused."""
    dropped = {f.name: why for f in table.schema if (why := unlearnable(f.type)) is not None}
    if table.num_rows == 0:
        raise BadInputError(f"no rows to read from {shown}: {_what(spec)} is empty")
    if table.num_columns == len(dropped):
        reasons = ", ".join(f"'{name}' ({why})" for name, why in dropped.items())
        raise BadInputError(f"{_what(spec)} in {shown} has no column a model can learn: {reasons}")
    for name, why in dropped.items():
        log.warning("dropped column '%s' of %s: %s", name, shown, why)
    return table.drop_columns(list(dropped)), dropped


def _what(spec: SqlSpec) -> str:
    return f"table '{spec.table}'" if spec.table is not None else "the query's result"


def _with_password(url: URL, spec: SqlSpec) -> URL:
    """The URL with the password from the environment or a Prefect `Secret` block, when the source names one."""
    if spec.password_env is not None:
        password = os.environ.get(spec.password_env)
        if password is None:
            raise BadInputError(f"environment variable {spec.password_env} (source.password_env) is not set")
        return url.set(password=password)
    if spec.password_secret is not None:
        return url.set(password=_secret(spec.password_secret))
    return url


def _secret(name: str) -> str:
    """The value of the Prefect `Secret` block `name` (imported here: only a source that names one needs Prefect)."""
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name)
        assert isinstance(block, Secret)  # called from sync code, `load` returns the block, not a coroutine
        value = block.get()
    except (ValueError, RuntimeError, OSError) as err:
        raise BadInputError(f"cannot load the Prefect Secret block '{name}' (source.password_secret): "
                            f"{first_line(err)}") from None
    return str(value)


def _refuse_missing_sqlite_file(url: URL) -> None:
    """SQLite would create an empty database where none is: a typo in the path must fail, not write a file."""
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:"):
        path = Path(database).expanduser()
        if not path.is_file():
            raise BadInputError(f"SQLite database not found: {path}")


@contextmanager
def _connected(engine: sa.Engine, shown: str, secrets: Sequence[str]) -> Iterator[Connection]:
    """A connection whose failure to open (server down, wrong password, unknown database) is one scrubbed line.

    Closing it rolls back: a query that wrote anything leaves nothing behind.
    """
    try:
        connection = engine.connect()
    except (sa.exc.SQLAlchemyError, ImportError) as err:
        raise BadInputError(f"cannot connect to {shown}: {_scrubbed(err, secrets)}") from None
    with connection:
        yield connection


def _query_of(spec: SqlSpec, connection: Connection, shown: str) -> str:
    """The query to run: the user's, or every row of the table with its name quoted for this database."""
    if spec.query is not None:
        return spec.query
    assert spec.table is not None  # the config holds exactly one of them
    if not sa.inspect(connection).has_table(spec.table, schema=spec.db_schema):
        where = f"{spec.db_schema}.{spec.table}" if spec.db_schema else spec.table
        raise BadInputError(f"table '{where}' not found in {shown}")
    quote = connection.dialect.identifier_preparer.quote_identifier
    name = quote(spec.table) if spec.db_schema is None else f"{quote(spec.db_schema)}.{quote(spec.table)}"
    return f"SELECT * FROM {name}"


def _executed(
    connection: Connection, query: str, chunk_rows: int, shown: str, secrets: Sequence[str]
) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    """The query's column names, and its rows to fetch as record batches of `chunk_rows`."""
    with _query_errors(shown, secrets):
        result = connection.execution_options(stream_results=True, yield_per=chunk_rows).execute(sa.text(query))
        if not result.returns_rows:
            raise BadInputError(f"the query on {shown} returns no rows to read (it must be a SELECT)")
        names = list(result.keys())
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise BadInputError(f"the query on {shown} returns duplicate column names: {', '.join(duplicated)}")
    # The size is given again: SQLAlchemy ignores the `yield_per` option for a text() statement, and
    # `partitions()` would then fetch every row of the server-side cursor at once.
    return names, _fetched(result.partitions(chunk_rows), names, shown, secrets)


def _fetched(
    partitions: Iterator[Sequence[sa.Row[Any]]], names: list[str], shown: str, secrets: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    with _query_errors(shown, secrets):  # a fetch may fail too
        yield from _batches(partitions, names)


@contextmanager
def _query_errors(shown: str, secrets: Sequence[str]) -> Iterator[None]:
    try:
        yield
    except sa.exc.SQLAlchemyError as err:
        raise BadInputError(f"query failed on {shown}: {_scrubbed(err, secrets)}") from None


def _batches(partitions: Iterator[Sequence[sa.Row[Any]]], names: list[str]) -> Iterator[pa.RecordBatch]:
    """Each chunk of driver rows as a record batch, typed by its values (the rows are let go at once)."""
    for rows in partitions:
        columns = zip(*rows, strict=True)
        yield pa.RecordBatch.from_arrays([_array(values) for values in columns], names=names)


def _array(values: Sequence[Any]) -> pa.Array:
    """One column's values as Arrow, in the plain types a frame holds; values that fit no one type, as text."""
    try:
        array = pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _text(values)
    kind = array.type
    if isinstance(kind, pa.ExtensionType):  # a UUID: its text is what a frame holds
        return _text(values)
    if pa.types.is_decimal(kind):
        return array.cast(pa.float64())
    if pa.types.is_date(kind):
        return array.cast(pa.timestamp("us"))
    if pa.types.is_time(kind):
        return array.cast(pa.string())
    return array


def _text(values: Sequence[Any]) -> pa.Array:
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def unified(batches: list[pa.RecordBatch], names: list[str]) -> pa.Table:
    """One table whose columns each have one type, whatever each chunk's values alone suggested.

    Integers and floats meet as floats, a chunk of only nulls takes the others' type, and types that do not
    meet (text beside numbers) meet as text (see `common_type`).
    """
    if not batches:
        return pa.table({name: pa.array([], pa.null()) for name in names})
    fields = [pa.field(name, common_type([b.column(i).type for b in batches])) for i, name in enumerate(names)]
    schema = pa.schema(fields)
    return pa.Table.from_batches([b.cast(schema) if b.schema != schema else b for b in batches], schema)


class RowsDigest:
    """A digest of the rows read: their Arrow IPC stream in fixed slices, so the chunk size never changes it.

    Rows are fed in chunks of any size, in order (`update`); only the slice being filled is held.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self._digest = hashlib.sha256()
        self._writer = pa.ipc.new_stream(_Digesting(self._digest), schema)
        self._pending = schema.empty_table()

    def update(self, table: pa.Table) -> None:
        """Feed the next rows."""
        pending = pa.concat_tables([self._pending, table])
        while pending.num_rows >= _HASH_ROWS:
            self._writer.write_table(pending.slice(0, _HASH_ROWS).combine_chunks())
            pending = pending.slice(_HASH_ROWS)
        self._pending = pending

    def hexdigest(self) -> str:
        """The digest of every row fed; no more may be fed after."""
        if self._pending.num_rows:
            self._writer.write_table(self._pending.combine_chunks())
        self._writer.close()
        return self._digest.hexdigest()


class _Digesting:
    """A write-only file that feeds the digest, so the fingerprint never holds the serialized rows."""

    def __init__(self, digest: Any) -> None:
        self._digest = digest
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        return view.nbytes

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        self.closed = True


def _forms_of(password: str | None) -> list[str]:
    """The password as given and as a URL writes it (escaped): the forms an error message may repeat."""
    if not password:
        return []
    return list(dict.fromkeys([password, quote(password, safe=""), quote_plus(password)]))


def _scrubbed(err: Exception, secrets: Sequence[str]) -> str:
    """The driver's own message (not SQLAlchemy's wrapping of it), first line only, with every secret hidden."""
    line = first_line(getattr(err, "orig", None) or err)
    for secret in sorted(secrets, key=len, reverse=True):
        line = line.replace(secret, _HIDDEN)
    return line
