"""Reading a private table from CSV or Parquet (a file or a folder of parts) into pandas.

Every way a source can be unusable ends in a `BadInputError` with one line that names the problem;
nothing here writes anywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from generators.inference import infer_schema
from generators.schema import BadInputError, Schema

log = logging.getLogger(__name__)

PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class SourceInfo:
    """Where the table came from, for the manifest: the sha256 pins the exact bytes that were read."""

    uri: str
    format: str
    sha256: str
    rows: int
    columns: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Table:
    """An ingested table: the frame conformed to its schema, the schema, and its provenance."""

    frame: pd.DataFrame
    schema: Schema
    source: SourceInfo


def load_table(source: str | Path, overrides: Mapping[str, Any] | None = None, target: str | None = None) -> Table:
    """Read the source, infer its schema (with the user's overrides) and conform the frame to it."""
    frame, info = read_source(source)
    frame, schema = infer_schema(frame, overrides, target)
    log.info("ingested %s: %d rows, %d columns", info.uri, info.rows, info.columns)
    return Table(frame=frame, schema=schema, source=info)


def read_source(source: str | Path) -> tuple[pd.DataFrame, SourceInfo]:
    """The raw frame and its provenance; a folder is read as the parts it holds, in name order."""
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInputError(f"source not found: {path}")
    files = _files_of(path)
    formats = {_format_of(f) for f in files}
    if len(formats) > 1:
        raise BadInputError(f"source folder mixes CSV and Parquet files: {path}")
    fmt = formats.pop()
    parts = [_read_parquet(f) if fmt == "parquet" else _read_csv(f) for f in files]
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
    info = SourceInfo(str(path.resolve()), fmt, _sha256_of(files, path), len(frame), frame.shape[1])
    return frame, info


def _files_of(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in {".csv", ".parquet", ".pq"})
    if not files:
        raise BadInputError(f"source folder holds no .csv or .parquet file: {path}")
    return files


def _format_of(path: Path) -> str:
    """Parquet or CSV, judged by the bytes rather than the file name."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head:
        raise BadInputError(f"source is empty: {path}")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if b"\x00" in head:
        raise BadInputError(f"source is neither CSV nor Parquet (binary content): {path}")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not just a character cut by the sniff window
            raise BadInputError(f"source is not UTF-8 text nor Parquet: {path}") from None
    return "csv"


def _read_csv(path: Path) -> pd.DataFrame:
    ragged: list[pacsv.InvalidRow] = []

    def refuse(row: pacsv.InvalidRow) -> str:
        ragged.append(row)
        return "error"

    convert = pacsv.ConvertOptions(strings_can_be_null=True)
    parse = pacsv.ParseOptions(invalid_row_handler=refuse)
    serial = pacsv.ReadOptions(use_threads=False)  # so a ragged row's line number is known
    try:
        table = pacsv.read_csv(path, read_options=serial, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as err:
        if ragged:  # name the line, never echo its (private) content
            row = ragged[0]
            where = f"line {row.number}" if row.number is not None else "a row"
            raise BadInputError(
                f"malformed CSV {path}: {where} has {row.actual_columns} fields, expected {row.expected_columns}"
            ) from None
        raise BadInputError(f"malformed CSV {path}: {_first_line(err)}") from None
    return table.to_pandas()


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise BadInputError(f"unreadable Parquet file {path}: {_first_line(err)}") from None


def _sha256_of(files: list[Path], root: Path) -> str:
    """One digest over the source's bytes; a folder's digest covers each part's name and content."""
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
