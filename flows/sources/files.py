"""A source on disk: a CSV or Parquet file, or a folder of parts, told apart by their bytes, read and fingerprinted.

The bytes tell the compression too (gzip, bz2 or zstd), whatever the name says; each file is read by its format's
reader. A source that is not a path is a SQL table or query, read by `flows.sources.sql`.

Every way a source can be unusable ends in a `BadInputError` with one line that names the problem;
nothing here writes anywhere.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from flows.sources.csv import DEFAULT_NA_VALUES, read_csv
from flows.sources.parquet import PARQUET_MAGIC, read_parquet
from flows.sources.sql import SqlSpec, read_sql
from flows.sources.table import SNIFF_BYTES, Reading, SourceInfo, Table, first_line, open_stream
from generators.tabular.errors import BadInputError
from generators.tabular.inference import infer_schema

log = logging.getLogger(__name__)

_COMPRESSION_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
_BZIP2 = re.compile(rb"BZh[1-9]")
_COMPRESSED_SUFFIXES = {".gz", ".bz2", ".zst", ".zstd"}
_DATA_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq"}
_ZIP_MAGIC = b"PK\x03\x04"


def load_table(
    source: str | Path | SqlSpec,
    overrides: Mapping[str, Any] | None = None,
    target: str | None = None,
    na_values: Sequence[str] | None = None,
    public_domain: bool = False,
) -> Table:
    """Read the source, infer its schema (with the user's overrides) and conform the frame to it.

    `public_domain`: the user asserts the inferred categories and ranges are not secret (see `infer_schema`).
    """
    frame, info = read_source(source, na_values)
    frame, schema = infer_schema(frame, overrides, target, public_domain=public_domain)
    log.info("ingested %s: %d rows, %d columns", info.uri, info.rows, info.columns)
    return Table(frame=frame, schema=schema, source=info)


def read_source(
    source: str | Path | SqlSpec, na_values: Sequence[str] | None = None
) -> tuple[pd.DataFrame, SourceInfo]:
    """The raw frame and its provenance; a folder is read as the parts it holds, in name order.

    `na_values` are the CSV cells read as missing (default `DEFAULT_NA_VALUES`, see there); Parquet has
    its own nulls, and so has SQL.
    """
    if not isinstance(source, str | Path):
        return read_sql(source)
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
        read_parquet(f, compression) if fmt == "parquet" else read_csv(f, compression, na_values)
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
    path: Path, fmt: str, files: list[Path], frame: pd.DataFrame, readings: list[Reading],
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
        raw = handle.read(SNIFF_BYTES)
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
        with open_stream(path, compression) as stream:
            return bytes(stream.read(SNIFF_BYTES))
    except (OSError, pa.ArrowException) as err:
        raise BadInputError(f"cannot decompress {compression} source {path}: {first_line(err)}") from None


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 text of mostly ASCII characters has a NUL in every other byte."""
    half = max(len(head) // 2, 1)
    return max(head[0::2].count(0), head[1::2].count(0)) > 0.4 * half


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
