"""A source on disk: a CSV or Parquet file, or a folder of parts, told apart by their bytes, read and fingerprinted.

The bytes tell the compression too (gzip, bz2 or zstd), whatever the name says; each file is read by its format's
reader. A folder's parts may sit in hive-style `key=value` folders (`year=2024/month=01/part-0.parquet`), as
Spark, Hive and pyarrow datasets write them: each key becomes a column, typed as pyarrow's `partitioning="hive"`
types it. A source that is not a path is a SQL table or query, read by `flows.sources.sql`.

Every way a source can be unusable ends in a `BadInputError` with one line that names the problem;
nothing here writes anywhere.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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
_HIVE_FOLDER = re.compile(r"[^=]+=.*")
_HIVE_INTEGER = re.compile(r"-?\d+")
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


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
    """The raw frame and its provenance; a folder is read as the parts it holds, in path order (see `files_of`).

    `na_values` are the CSV cells read as missing (default `DEFAULT_NA_VALUES`, see there); Parquet has
    its own nulls, and so has SQL.
    """
    if not isinstance(source, str | Path):
        return read_sql(source)
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInputError(f"source not found: {path}")
    files = files_of(path)
    fmt, kinds = formats_of(files, path)
    read = [
        read_parquet(f, compression) if fmt == "parquet" else read_csv(f, compression, na_values)
        for f, compression in zip(files, kinds, strict=True)
    ]
    keys = partition_keys(files, path)
    parts = [_with_keys(frame, file, file_keys) for (frame, _), file, file_keys in zip(read, files, keys, strict=True)]
    names = [list(p.columns) for p in parts]
    if any(n != names[0] for n in names):
        raise BadInputError(f"the files in {path} do not all have the same columns")
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    check_columns(list(frame.columns), len(frame), path)
    info = source_info(path, fmt, stored_sha256(files, path), len(frame), frame.shape[1],
                       [reading for _, reading in read], na_values)
    return frame, info


def formats_of(files: Sequence[Path], path: Path) -> tuple[str, list[str | None]]:
    """The source's one format, and each file's compression; a folder that mixes formats is refused."""
    kinds = [_kind_of(f) for f in files]
    formats = {fmt for fmt, _ in kinds}
    if len(formats) > 1:
        raise BadInputError(f"source folder mixes CSV and Parquet files: {path}")
    return formats.pop(), [compression for _, compression in kinds]


def check_columns(names: Sequence[str], rows: int, path: Path) -> None:
    """A table must have columns, rows, and no name twice."""
    if len(names) == 0:
        raise BadInputError(f"source has no columns: {path}")
    if rows == 0:
        raise BadInputError(f"source has a header but no rows: {path}")
    if len(set(names)) < len(names):
        raise BadInputError(f"source has duplicate column names: {path}")


def source_info(
    path: Path, fmt: str, sha256: str, rows: int, columns: int, readings: Sequence[Reading],
    na_values: Sequence[str] | None,
) -> SourceInfo:
    """The facts of a source on disk, its files' readings joined into one value per field."""
    return SourceInfo(
        uri=str(path.resolve()),
        format=fmt,
        sha256=sha256,
        rows=rows,
        columns=columns,
        compression=_joined(r.compression for r in readings),
        encoding=_joined(r.encoding for r in readings),
        delimiter=_joined(r.delimiter for r in readings),
        decimal=_joined(r.decimal for r in readings),
        quote=_joined(r.quote for r in readings),
        na_values=tuple(DEFAULT_NA_VALUES if na_values is None else na_values) if fmt == "csv" else None,
        dropped={name: why for r in readings for name, why in r.dropped.items()},
    )


def files_of(path: Path) -> list[Path]:
    """The source's data files: the file itself, or those in the folder and its `key=value` folders, in path order.

    Other files and folders are left out.
    """
    if path.is_file():
        return [path]
    files = sorted(_data_files_in(path))
    if not files:
        raise BadInputError(f"source folder holds no .csv or .parquet file (plain, .gz, .bz2 or .zst): {path}")
    return files


def _data_files_in(folder: Path) -> Iterator[Path]:
    for entry in folder.iterdir():
        if entry.is_file() and _is_data_file(entry):
            yield entry
        elif entry.is_dir() and _HIVE_FOLDER.fullmatch(entry.name):
            yield from _data_files_in(entry)


def partition_keys(files: Sequence[Path], root: Path) -> list[dict[str, pa.Scalar]]:
    """Each file's hive partition keys (the `key=value` folders between `root` and it) as typed values.

    Typed as pyarrow's hive partitioning types them: int32 when every value of the key is one, else text;
    names and values URL-decoded, `__HIVE_DEFAULT_PARTITION__` missing. Every file must sit under the same keys.
    """
    folders = [f.relative_to(root).parts[:-1] if root.is_dir() else () for f in files]
    pairs = [[folder.partition("=")[::2] for folder in each] for each in folders]
    names = [[unquote(name) for name, _ in each] for each in pairs]
    if any(n != names[0] for n in names):
        raise BadInputError(f"the files in {root} do not all sit under the same key=value folders")
    values = [[None if value == _HIVE_NULL else unquote(value) for _, value in each] for each in pairs]
    kinds = [_key_type([each[i] for each in values]) for i in range(len(names[0]))]
    typed = [[pa.scalar(_typed_key(v, kind), kind) for v, kind in zip(each, kinds, strict=True)] for each in values]
    return [dict(zip(names[0], each, strict=True)) for each in typed]


def _key_type(values: Sequence[str | None]) -> pa.DataType:
    given = [v for v in values if v is not None]
    integers = bool(given) and all(_HIVE_INTEGER.fullmatch(v) and -(2**31) <= int(v) < 2**31 for v in given)
    return pa.int32() if integers else pa.string()


def _typed_key(value: str | None, kind: pa.DataType) -> int | str | None:
    return int(value) if value is not None and pa.types.is_integer(kind) else value


def check_keys(file: Path, names: Sequence[str], keys: Mapping[str, pa.Scalar]) -> None:
    """A partition key must not be one of its file's columns too."""
    clash = sorted(set(keys) & set(names))
    if clash:
        raise BadInputError(f"partition key '{clash[0]}' of {file} is also one of its columns")


def _with_keys(frame: pd.DataFrame, file: Path, keys: Mapping[str, pa.Scalar]) -> pd.DataFrame:
    """The file's frame with its partition keys as columns (a key that is also a column is refused)."""
    if not keys:
        return frame
    check_keys(file, list(map(str, frame.columns)), keys)
    return frame.assign(**{k: pa.repeat(v, len(frame)).to_numpy(zero_copy_only=False) for k, v in keys.items()})


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


def stored_sha256(files: Sequence[Path], root: Path) -> str:
    """One digest over the source's bytes as stored; a folder's digest covers each part's name and content."""
    digest = hashlib.sha256()
    for file in files:
        if len(files) > 1:
            digest.update(file.relative_to(root).as_posix().encode() + b"\x00")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
