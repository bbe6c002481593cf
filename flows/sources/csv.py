"""CSV as real exports write it, read without settings.

That is: UTF-8 (with or without a BOM), UTF-16 with a BOM, cp1252 or latin-1; `,` `;` tab or `|` between fields; a
decimal comma; every value in single quotes. How the bytes were read is returned as a `Reading`, so the manifest
says it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from flows.sources.table import SNIFF_BYTES, Reading, first_line, open_stream
from generators.tabular.errors import BadInputError
from generators.tabular.inference import time_of_day_format

# Read as missing in every CSV column unless `na_values` says otherwise. `NA` and `None` are missing only in
# a column whose other values are all numbers (or booleans): in a column of words they can be real answers
# (`None` as "no allergy", `NA` for North America), and dropping them would change the data silently.
DEFAULT_NA_VALUES = ("", "?", "NA", "N/A", "NaN", "nan", "NULL", "null", "None")
WORD_NA_VALUES = ("NA", "None")
DELIMITERS = (",", ";", "\t", "|")
_BLOCK = 1 << 20
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_INTEGER = re.compile(r"[+-]?\d+")
_COMMA_DECIMAL = re.compile(r"[+-]?\d*,\d+")
_POINT_DECIMAL = re.compile(r"[+-]?\d*\.\d+")


@dataclass(frozen=True)
class Dialect:
    """How a CSV file's bytes are read: its encoding, separator, quote and decimal mark, and its text columns."""

    encoding: str = "utf-8"
    delimiter: str = ","
    quote: str = '"'
    decimal: str = "."
    text_columns: tuple[str, ...] = ()  # read as text whatever they look like (times of day keep their format)

    def reading(self, compression: str | None) -> Reading:
        """The facts the manifest records of a file read in this dialect."""
        return Reading(compression, self.encoding, self.delimiter, self.decimal, self.quote)


def read_csv(path: Path, compression: str | None, na_values: Sequence[str] | None) -> tuple[pd.DataFrame, Reading]:
    """The CSV as a frame and how it was read; a malformed one fails naming its line, never echoing its content."""
    dialect = sniff_csv(path, compression, na_values)
    ragged: list[pacsv.InvalidRow] = []
    read, parse, convert = csv_options(dialect, na_values, ragged)
    try:
        with open_stream(path, compression) as stream:
            table = pacsv.read_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as err:
        raise malformed(path, dialect, ragged, err) from None
    except OSError as err:
        raise BadInputError(f"cannot read {path}: {first_line(err)}") from None
    if na_values is None:
        table = numbers_without_word_markers(table, dialect.decimal)
    return table.to_pandas(), dialect.reading(compression)


def sniff_csv(
    path: Path, compression: str | None, na_values: Sequence[str] | None, head: int | None = None
) -> Dialect:
    """The file's dialect; its encoding judged on every byte, or on the first `head` bytes (a stream's plan)."""
    try:
        encoding = _encoding_of(path, compression, head)
        sample = _sample_of(path, compression, encoding)
    except (OSError, pa.ArrowException) as err:  # a compressed stream broken past its first bytes
        raise BadInputError(f"cannot read {path}: {first_line(err)}") from None
    return _dialect_of(sample, encoding, null_values(na_values), path)


def csv_options(
    dialect: Dialect, na_values: Sequence[str] | None, ragged: list[pacsv.InvalidRow]
) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    """The reader options for this dialect; each ragged row is refused and kept in `ragged` (see `malformed`).

    With the default `na_values`, `NA` and `None` are not missing here: `numbers_without_word_markers` decides.
    """

    def refuse(row: pacsv.InvalidRow) -> str:
        ragged.append(row)
        return "error"

    # pyarrow skips a UTF-8 BOM itself and reads UTF-8 natively; other encodings are transcoded.
    encoding = "utf8" if dialect.encoding.startswith("utf-8") else dialect.encoding
    read = pacsv.ReadOptions(use_threads=False, encoding=encoding)
    parse = pacsv.ParseOptions(delimiter=dialect.delimiter, quote_char=dialect.quote, invalid_row_handler=refuse)
    convert = pacsv.ConvertOptions(
        strings_can_be_null=True,
        null_values=[v for v in null_values(na_values) if na_values is not None or v not in WORD_NA_VALUES],
        decimal_point=dialect.decimal,
        column_types=dict.fromkeys(dialect.text_columns, pa.string()),
    )
    return read, parse, convert


def null_values(na_values: Sequence[str] | None) -> list[str]:
    """Every cell read as missing somewhere: `na_values`, or by default `DEFAULT_NA_VALUES` (words included)."""
    return list(DEFAULT_NA_VALUES if na_values is None else na_values)


def malformed(path: Path, dialect: Dialect, ragged: Sequence[pacsv.InvalidRow], err: Exception) -> BadInputError:
    """The one-line error of a file pyarrow could not parse: a ragged row names its line, never its content."""
    if not ragged:
        return BadInputError(f"malformed CSV {path}: {first_line(err)}")
    row = ragged[0]
    where = f"line {row.number}" if row.number is not None else "a row"
    return BadInputError(
        f"malformed CSV {path}: {where} has {row.actual_columns} fields, expected {row.expected_columns}"
        f" (separator {dialect.delimiter!r})"
    )


def _encoding_of(path: Path, compression: str | None, head: int | None) -> str:
    """The text encoding: a byte-order mark's, else UTF-8 if every byte decodes strictly, else cp1252, else latin-1.

    The encoding a byte-order mark declares must decode too. cp1252 is what Windows exports write; latin-1 decodes
    any byte. With `head`, only the first `head` bytes are judged.
    """
    with open_stream(path, compression) as stream:
        start = bytes(stream.read(4))
    declared = next((name for bom, name in _BOMS if start.startswith(bom)), None)
    if declared is not None:
        if not _decodes(path, compression, declared, head):
            raise BadInputError(f"source starts with a {declared} byte-order mark but is not {declared} text: {path}")
        return declared
    return next((e for e in ("utf-8", "cp1252") if _decodes(path, compression, e, head)), "latin-1")


def _decodes(path: Path, compression: str | None, encoding: str, head: int | None) -> bool:
    """Whether every byte (or the first `head`) decodes strictly, streamed so a large file never sits in memory."""
    decoder = codecs.getincrementaldecoder(encoding)()
    done = 0
    try:
        with open_stream(path, compression) as stream:
            while head is None or done < head:
                block = bytes(stream.read(_BLOCK if head is None else min(_BLOCK, head - done)))
                if not block:
                    decoder.decode(b"", final=True)  # the whole file was read: a character cut at its end is not text
                    break
                decoder.decode(block)
                done += len(block)
    except UnicodeDecodeError:
        return False
    return True


def _sample_of(path: Path, compression: str | None, encoding: str) -> str:
    """The file's first complete lines as text: what its dialect is judged on."""
    with open_stream(path, compression) as stream:
        raw = bytes(stream.read(SNIFF_BYTES + 1))
    whole = len(raw) <= SNIFF_BYTES
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(raw[:SNIFF_BYTES], final=whole)
    text = text.removeprefix("\ufeff")
    return text if whole else text[: text.rfind("\n") + 1]


def _dialect_of(sample: str, encoding: str, nulls: Sequence[str], path: Path) -> Dialect:
    """Separator, quote and decimal mark, judged on the sample the way a person reading it would."""
    delimiter = _delimiter_of(sample)
    records = _records(sample, delimiter, '"')
    quote = "'" if _single_quoted(records[1:], nulls) else '"'
    if quote == "'":
        records = _records(sample, delimiter, quote)
    columns = _sampled_columns(records, nulls)
    decimal = _decimal_of(columns, path) if delimiter != "," else "."
    text = tuple(name for name, values in columns.items() if time_of_day_format(pd.Series(values)) is not None)
    return Dialect(encoding, delimiter, quote, decimal, text)


def _records(sample: str, delimiter: str, quote: str) -> list[list[str]]:
    """The sample's records (a quoted field may span lines); blank lines are skipped, as the reader does."""
    return [row for row in csv.reader(io.StringIO(sample), delimiter=delimiter, quotechar=quote) if row]


def _delimiter_of(sample: str) -> str:
    """The separator that splits every sampled record into the same number (> 1) of fields, the most fields winning.

    With none consistent, the one that splits the header most: the reader then names the first ragged line. A table
    of one column has none to find and reads with `,`.
    """
    widths = {d: [len(r) for r in _records(sample, d, '"')] or [0] for d in DELIMITERS}
    consistent = [d for d in DELIMITERS if widths[d][0] > 1 and len(set(widths[d])) == 1]
    best = max(consistent or DELIMITERS, key=lambda d: widths[d][0])  # ties: the first in DELIMITERS
    return best if widths[best][0] > 1 else ","


def _single_quoted(rows: list[list[str]], nulls: Sequence[str]) -> bool:
    """Every value but missing-value markers wrapped in `'` (as some published UCI files are).

    Then the quotes are not data.
    """
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


def numbers_without_word_markers(table: pa.Table, decimal: str) -> pa.Table:
    """`NA` and `None` made missing in each text column whose other values are all numbers or booleans."""
    for index, column in enumerate(table.columns):
        if not pa.types.is_string(column.type):
            continue
        words = pc.is_in(column, value_set=pa.array(WORD_NA_VALUES))
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
