"""Reading a private table from CSV or Parquet (a file or a folder of parts) into pandas.

CSV arrives the way real exports write it, and is read without settings: UTF-8 (with or without a BOM),
UTF-16 with a BOM, cp1252 or latin-1; `,` `;` tab or `|` between fields; a decimal comma; every value in
single quotes; gzip, bz2 or zstd compression (told by the bytes, not the name). How the bytes were read is
recorded in `SourceInfo`, so the manifest says it. Parquet is typed already; only its columns no model can
learn (nested, binary) are dropped, with a warning, and recorded too.

Every way a source can be unusable ends in a `BadInputError` with one line that names the problem;
nothing here writes anywhere.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import hashlib
import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from generators.tabular.errors import BadInputError
from generators.tabular.inference import infer_schema, time_of_day_format
from generators.tabular.schema import Schema

log = logging.getLogger(__name__)

PARQUET_MAGIC = b"PAR1"
# Read as missing in every CSV column unless `na_values` says otherwise. `NA` and `None` are missing only in
# a column whose other values are all numbers (or booleans): in a column of words they can be real answers
# (`None` as "no allergy", `NA` for North America), and dropping them would change the data silently.
DEFAULT_NA_VALUES = ("", "?", "NA", "N/A", "NaN", "nan", "NULL", "null", "None")
_WORD_NA_VALUES = ("NA", "None")
DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024
_BLOCK = 1 << 20
_COMPRESSION_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
_BZIP2 = re.compile(rb"BZh[1-9]")
_COMPRESSED_SUFFIXES = {".gz", ".bz2", ".zst", ".zstd"}
_DATA_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq"}
_ZIP_MAGIC = b"PK\x03\x04"
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_INTEGER = re.compile(r"[+-]?\d+")
_COMMA_DECIMAL = re.compile(r"[+-]?\d*,\d+")
_POINT_DECIMAL = re.compile(r"[+-]?\d*\.\d+")


@dataclass(frozen=True)
class SourceInfo:
    """Where the table came from and how its bytes were read, for the manifest.

    The sha256 pins the bytes as stored (compressed ones as they are); `compression`, `encoding`,
    `delimiter`, `decimal`, `quote` and `na_values` say how they were turned into a table (CSV only; parts
    of a folder that differ list each value once, space-separated), and `dropped` names each column left
    out because no model can learn it, with the reason.
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Table:
    """An ingested table: the frame conformed to its schema, the schema, and its provenance."""

    frame: pd.DataFrame
    schema: Schema
    source: SourceInfo


@dataclass(frozen=True)
class _Reading:
    """How one file was read: the facts `SourceInfo` records."""

    compression: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    quote: str | None = None
    dropped: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Dialect:
    delimiter: str = ","
    quote: str = '"'
    decimal: str = "."
    text_columns: tuple[str, ...] = ()  # read as text whatever they look like (times of day keep their format)


def load_table(
    source: str | Path,
    overrides: Mapping[str, Any] | None = None,
    target: str | None = None,
    na_values: Sequence[str] | None = None,
) -> Table:
    """Read the source, infer its schema (with the user's overrides) and conform the frame to it."""
    frame, info = read_source(source, na_values)
    frame, schema = infer_schema(frame, overrides, target)
    log.info("ingested %s: %d rows, %d columns", info.uri, info.rows, info.columns)
    return Table(frame=frame, schema=schema, source=info)


def read_source(source: str | Path, na_values: Sequence[str] | None = None) -> tuple[pd.DataFrame, SourceInfo]:
    """The raw frame and its provenance; a folder is read as the parts it holds, in name order.

    `na_values` are the CSV cells read as missing (default `DEFAULT_NA_VALUES`, see there); Parquet has
    its own nulls.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInputError(f"source not found: {path}")
    files = _files_of(path)
    kinds = [_kind_of(f) for f in files]
    formats = {fmt for fmt, _ in kinds}
    if len(formats) > 1:
        raise BadInputError(f"source folder mixes CSV and Parquet files: {path}")
    fmt = formats.pop()
    read = [
        _read_parquet(f, compression) if fmt == "parquet" else _read_csv(f, compression, na_values)
        for f, (_, compression) in zip(files, kinds, strict=True)
    ]
    parts = [frame for frame, _ in read]
    names = [list(p.columns) for p in parts]
    if any(n != names[0] for n in names):
        raise BadInputError(f"the files in {path} do not all have the same columns")
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if frame.shape[1] == 0:
        raise BadInputError(f"source has no columns: {path}")
    if len(frame) == 0:
        raise BadInputError(f"source has a header but no rows: {path}")
    if frame.columns.duplicated().any():
        raise BadInputError(f"source has duplicate column names: {path}")
    info = _source_info(path, fmt, files, frame, [reading for _, reading in read], na_values)
    return frame, info


def _source_info(
    path: Path, fmt: str, files: list[Path], frame: pd.DataFrame, readings: list[_Reading],
    na_values: Sequence[str] | None,
) -> SourceInfo:
    return SourceInfo(
        uri=str(path.resolve()),
        format=fmt,
        sha256=_sha256_of(files, path),
        rows=len(frame),
        columns=frame.shape[1],
        compression=_joined(r.compression for r in readings),
        encoding=_joined(r.encoding for r in readings),
        delimiter=_joined(r.delimiter for r in readings),
        decimal=_joined(r.decimal for r in readings),
        quote=_joined(r.quote for r in readings),
        na_values=tuple(DEFAULT_NA_VALUES if na_values is None else na_values) if fmt == "csv" else None,
        dropped={name: why for r in readings for name, why in r.dropped.items()},
    )


def _files_of(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and _is_data_file(p))
    if not files:
        raise BadInputError(f"source folder holds no .csv or .parquet file (plain, .gz, .bz2 or .zst): {path}")
    return files


def _is_data_file(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if suffixes and suffixes[-1] in _COMPRESSED_SUFFIXES:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in _DATA_SUFFIXES


def _kind_of(path: Path) -> tuple[str, str | None]:
    """Parquet or CSV and the compression, judged by the bytes rather than the file name."""
    with path.open("rb") as handle:
        raw = handle.read(_SNIFF_BYTES)
    compression = _compression_of(raw)
    head = _head(path, compression) if compression else raw
    if not head:
        raise BadInputError(f"source is empty: {path}")
    if head.startswith(PARQUET_MAGIC):
        return "parquet", compression
    if head.startswith(_ZIP_MAGIC):
        raise BadInputError(f"source is a ZIP archive (an Excel workbook?), not CSV or Parquet: {path}")
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        if _looks_utf16(head):
            raise BadInputError(f"source looks like UTF-16 text without a byte-order mark; save it as UTF-8: {path}")
        raise BadInputError(f"source is neither CSV nor Parquet (binary content): {path}")
    return "csv", compression


def _compression_of(raw: bytes) -> str | None:
    if _BZIP2.match(raw):
        return "bz2"
    return next((name for magic, name in _COMPRESSION_MAGIC.items() if raw.startswith(magic)), None)


def _head(path: Path, compression: str) -> bytes:
    try:
        with _open(path, compression) as stream:
            return bytes(stream.read(_SNIFF_BYTES))
    except (OSError, pa.ArrowException) as err:
        raise BadInputError(f"cannot decompress {compression} source {path}: {_first_line(err)}") from None


def _open(path: Path, compression: str | None) -> pa.NativeFile:
    """The file's bytes as stored, or decompressed (an explicit codec: the name's suffix is never trusted)."""
    return pa.input_stream(str(path), compression=compression)


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 text of mostly ASCII characters has a NUL in every other byte."""
    half = max(len(head) // 2, 1)
    return max(head[0::2].count(0), head[1::2].count(0)) > 0.4 * half


def _read_csv(path: Path, compression: str | None, na_values: Sequence[str] | None) -> tuple[pd.DataFrame, _Reading]:
    try:
        encoding = _encoding_of(path, compression)
        sample = _sample_of(path, compression, encoding)
    except (OSError, pa.ArrowException) as err:  # a compressed stream broken past its first bytes
        raise BadInputError(f"cannot read {path}: {_first_line(err)}") from None
    nulls = list(DEFAULT_NA_VALUES if na_values is None else na_values)
    dialect = _dialect_of(sample, nulls, path)
    ragged: list[pacsv.InvalidRow] = []

    def refuse(row: pacsv.InvalidRow) -> str:
        ragged.append(row)
        return "error"

    # pyarrow skips a UTF-8 BOM itself and reads UTF-8 natively; other encodings are transcoded.
    serial = pacsv.ReadOptions(use_threads=False, encoding="utf8" if encoding.startswith("utf-8") else encoding)
    parse = pacsv.ParseOptions(delimiter=dialect.delimiter, quote_char=dialect.quote, invalid_row_handler=refuse)
    convert = pacsv.ConvertOptions(
        strings_can_be_null=True,
        null_values=[v for v in nulls if na_values is not None or v not in _WORD_NA_VALUES],
        decimal_point=dialect.decimal,
        column_types=dict.fromkeys(dialect.text_columns, pa.string()),
    )
    try:
        with _open(path, compression) as stream:
            table = pacsv.read_csv(stream, read_options=serial, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as err:
        if ragged:  # name the line, never echo its (private) content
            row = ragged[0]
            where = f"line {row.number}" if row.number is not None else "a row"
            raise BadInputError(
                f"malformed CSV {path}: {where} has {row.actual_columns} fields, expected {row.expected_columns}"
                f" (separator {dialect.delimiter!r})"
            ) from None
        raise BadInputError(f"malformed CSV {path}: {_first_line(err)}") from None
    except OSError as err:
        raise BadInputError(f"cannot read {path}: {_first_line(err)}") from None
    if na_values is None:
        table = _numbers_without_word_markers(table, dialect.decimal)
    reading = _Reading(compression, encoding, dialect.delimiter, dialect.decimal, dialect.quote)
    return table.to_pandas(), reading


def _encoding_of(path: Path, compression: str | None) -> str:
    """The text encoding: the one a byte-order mark declares, else UTF-8 if every byte decodes strictly,
    else cp1252 (Windows exports), else latin-1 (which decodes any byte)."""
    with _open(path, compression) as stream:
        head = bytes(stream.read(4))
    declared = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if declared is not None:
        if not _decodes(path, compression, declared):
            raise BadInputError(f"source starts with a {declared} byte-order mark but is not {declared} text: {path}")
        return declared
    return next((e for e in ("utf-8", "cp1252") if _decodes(path, compression, e)), "latin-1")


def _decodes(path: Path, compression: str | None, encoding: str) -> bool:
    """Whether every byte decodes strictly (streamed, so a large file never sits in memory)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with _open(path, compression) as stream:
            while block := bytes(stream.read(_BLOCK)):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _sample_of(path: Path, compression: str | None, encoding: str) -> str:
    """The file's first complete lines as text: what its dialect is judged on."""
    with _open(path, compression) as stream:
        raw = bytes(stream.read(_SNIFF_BYTES + 1))
    whole = len(raw) <= _SNIFF_BYTES
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(raw[:_SNIFF_BYTES], final=whole)
    text = text.removeprefix("\ufeff")
    return text if whole else text[: text.rfind("\n") + 1]


def _dialect_of(sample: str, nulls: Sequence[str], path: Path) -> _Dialect:
    """Separator, quote and decimal mark, judged on the sample the way a person reading it would."""
    delimiter = _delimiter_of(sample)
    records = _records(sample, delimiter, '"')
    quote = "'" if _single_quoted(records[1:], nulls) else '"'
    if quote == "'":
        records = _records(sample, delimiter, quote)
    columns = _sampled_columns(records, nulls)
    decimal = _decimal_of(columns, path) if delimiter != "," else "."
    text = tuple(name for name, values in columns.items() if time_of_day_format(pd.Series(values)) is not None)
    return _Dialect(delimiter, quote, decimal, text)


def _records(sample: str, delimiter: str, quote: str) -> list[list[str]]:
    """The sample's records (a quoted field may span lines); blank lines are skipped, as the reader does."""
    return [row for row in csv.reader(io.StringIO(sample), delimiter=delimiter, quotechar=quote) if row]


def _delimiter_of(sample: str) -> str:
    """The separator that splits every sampled record into the same number (> 1) of fields, the most fields
    winning. With none consistent, the one that splits the header most: the reader then names the first
    ragged line. A table of one column has none to find and reads with `,`."""
    widths = {d: [len(r) for r in _records(sample, d, '"')] or [0] for d in DELIMITERS}
    consistent = [d for d in DELIMITERS if widths[d][0] > 1 and len(set(widths[d])) == 1]
    best = max(consistent or DELIMITERS, key=lambda d: widths[d][0])  # ties: the first in DELIMITERS
    return best if widths[best][0] > 1 else ","


def _single_quoted(rows: list[list[str]], nulls: Sequence[str]) -> bool:
    """Every value but missing-value markers wrapped in `'` (as some published UCI files are): the quotes
    are not data."""
    values = [v for row in rows for v in row if v not in nulls]
    return bool(values) and all(len(v) >= 2 and v[0] == v[-1] == "'" for v in values)


def _sampled_columns(records: list[list[str]], nulls: Sequence[str]) -> dict[str, list[str]]:
    """Each header name with its sampled values, missing-value markers left out."""
    if not records:
        return {}
    header, rows = records[0], records[1:]
    return {
        name: [row[i].strip() for row in rows if i < len(row) and row[i].strip() not in nulls]
        for i, name in enumerate(header)
    }


def _decimal_of(columns: Mapping[str, list[str]], path: Path) -> str:
    """`,` when columns of numbers write their decimals as `1,5` and none as `1.5`; both is refused."""
    comma = _numbers_written_with(columns, _COMMA_DECIMAL)
    point = _numbers_written_with(columns, _POINT_DECIMAL)
    if comma and point:
        raise BadInputError(
            f"cannot tell the decimal mark of {path}: column '{comma[0]}' writes numbers like 1,5"
            f" and column '{point[0]}' like 1.5"
        )
    return "," if comma else "."


def _numbers_written_with(columns: Mapping[str, list[str]], decimal: re.Pattern[str]) -> list[str]:
    def numbers(values: list[str]) -> bool:
        return all(decimal.fullmatch(v) or _INTEGER.fullmatch(v) for v in values)

    return [name for name, values in columns.items() if any(decimal.fullmatch(v) for v in values) and numbers(values)]


def _numbers_without_word_markers(table: pa.Table, decimal: str) -> pa.Table:
    """`NA` and `None` made missing in each text column whose other values are all numbers or booleans."""
    for index, column in enumerate(table.columns):
        if not pa.types.is_string(column.type):
            continue
        words = pc.is_in(column, value_set=pa.array(_WORD_NA_VALUES))
        if not pc.any(words).as_py():
            continue
        rest = pc.if_else(words, pa.scalar(None, pa.string()), column)
        typed = _typed(rest if decimal == "." else pc.replace_substring(rest, ",", "."))
        if typed is not None:
            table = table.set_column(index, table.schema.field(index).name, typed)
    return table


def _typed(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The text as the first type every value converts to, as the CSV reader would have typed it."""
    for kind in (pa.int64(), pa.float64(), pa.bool_()):
        try:
            return pc.cast(column, kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def _read_parquet(path: Path, compression: str | None) -> tuple[pd.DataFrame, _Reading]:
    """The file's learnable columns; nested and binary ones are dropped (logged, and recorded)."""

    def source() -> Any:
        return str(path) if compression is None else pa.BufferReader(_decompressed(path, compression))

    try:
        schema = pq.read_schema(source())
        dropped = {f.name: why for f in schema if (why := _unlearnable(f.type)) is not None}
        keep = [name for name in schema.names if name not in dropped]
        table = pq.read_table(source(), columns=keep, use_pandas_metadata=True)
        frame = _plain_types(table).to_pandas()
    except (pa.ArrowException, OSError) as err:
        raise BadInputError(f"unreadable Parquet file {path}: {_first_line(err)}") from None
    if dropped and frame.shape[1] == 0:
        raise BadInputError(f"source {path} has no column a model can learn: {_described(dropped)}")
    for name, why in dropped.items():
        log.warning("dropped column '%s' of %s: %s", name, path, why)
    return frame, _Reading(compression=compression, dropped=dropped)


def _decompressed(path: Path, compression: str) -> pa.Buffer:
    with _open(path, compression) as stream:
        return stream.read_buffer()


def _unlearnable(kind: pa.DataType) -> str | None:
    """Why no model can learn a column of this Arrow type, or None when one can."""
    if isinstance(kind, pa.ExtensionType):
        return _unlearnable(kind.storage_type)
    if pa.types.is_dictionary(kind):
        return _unlearnable(kind.value_type)
    if pa.types.is_nested(kind):
        return f"nested values ({kind}) cannot be learned"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return f"raw bytes ({kind}) cannot be learned"
    return None


def _plain_types(table: pa.Table) -> pa.Table:
    """Decimals as float64 (pandas would hold Python objects), times of day as their `HH:MM:SS` text."""
    for index, column in enumerate(table.columns):
        if pa.types.is_decimal(column.type):
            table = table.set_column(index, table.schema.field(index).name, pc.cast(column, pa.float64()))
        elif pa.types.is_time(column.type):
            table = table.set_column(index, table.schema.field(index).name, pc.cast(column, pa.string()))
    return table


def _described(dropped: Mapping[str, str]) -> str:
    return ", ".join(f"'{name}' ({why})" for name, why in dropped.items())


def _joined(values: Iterable[str | None]) -> str | None:
    """One value for the whole source: the parts' values, each once, in order (None when none has one)."""
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    return " ".join(distinct) if distinct else None


def _sha256_of(files: list[Path], root: Path) -> str:
    """One digest over the source's bytes as stored; a folder's digest covers each part's name and content."""
    digest = hashlib.sha256()
    for file in files:
        if len(files) > 1:
            digest.update(file.relative_to(root).as_posix().encode() + b"\x00")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
