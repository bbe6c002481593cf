"""Reading sources: CSV as real exports write it, Parquet and folders of parts.

Every unusable source reads as a one-line error.
"""

from __future__ import annotations

import bz2
import codecs
import decimal
import hashlib
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import gzip_bytes, zstd_bytes

from flows.config import RunConfig
from flows.sources import load_table, read_source
from flows.sources.csv import DEFAULT_NA_VALUES
from flows.split import split_holdout
from generators.tabular.errors import BadInputError
from generators.tabular.inference import as_written
from generators.tabular.schema import ColumnKind


def test_csv_and_parquet_give_the_same_table(tmp_path: Path, mixed_frame: pd.DataFrame) -> None:
    frame = mixed_frame.drop(columns=["joined", "member"])
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    from_csv, info_csv = read_source(tmp_path / "t.csv")
    from_parquet, info_parquet = read_source(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_dtype=False)
    assert (info_csv.format, info_parquet.format) == ("csv", "parquet")
    assert info_csv.rows == len(frame) and info_csv.columns == frame.shape[1]
    assert info_csv.sha256 != info_parquet.sha256


def test_folder_of_parts_is_one_table(tmp_path: Path, mixed_frame: pd.DataFrame) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    mixed_frame.iloc[:150].to_parquet(parts / "part-0.parquet", index=False)
    mixed_frame.iloc[150:].to_parquet(parts / "part-1.parquet", index=False)
    table = load_table(parts)
    assert table.source.rows == len(mixed_frame)
    assert table.frame["joined"].dtype == mixed_frame["joined"].dtype


def test_the_bundled_demo_table_loads() -> None:
    table = load_table(Path(__file__).parents[2] / "data" / "adult.parquet")
    assert table.frame.shape == (32_561, 15)
    assert table.schema["class"].categories == ("<=50K", ">50K")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "source not found"),
        (b"", "source is empty"),
        (b"a,b,c\n", "has a header but no rows"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" * 20, "binary content"),
        (b"a,b,c\n1,2,3\n4,5\n", "line 3 has 2 fields, expected 3"),
        (b"a,b,c\n1,2,3\n4,5,6,7\n", "line 3 has 4 fields, expected 3"),
        (b"PAR1 not really parquet", "unreadable Parquet"),
    ],
    ids=["missing", "empty", "header-only", "binary", "short-row", "long-row", "fake-parquet"],
)
def test_unusable_sources_are_one_line_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "source.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInputError, match=message) as caught:
        load_table(path)
    assert "\n" not in str(caught.value)


def test_a_ragged_row_is_named_but_its_content_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("name,ssn\nann,123-45-6789\nbob,987-65-4321,extra\n")
    with pytest.raises(BadInputError) as caught:
        load_table(path)
    assert "987-65-4321" not in str(caught.value)


def test_split_is_seeded_disjoint_and_complete(mixed_frame: pd.DataFrame) -> None:
    train, holdout = split_holdout(mixed_frame, 0.2, seed=3)
    again, _ = split_holdout(mixed_frame, 0.2, seed=3)
    other, _ = split_holdout(mixed_frame, 0.2, seed=4)
    assert len(holdout) == 80 and len(train) == 320
    assert set(train.customer_id).isdisjoint(holdout.customer_id)
    pd.testing.assert_frame_equal(train, again)
    assert not train.customer_id.equals(other.customer_id)


def test_split_refuses_tables_too_small_to_hold_out(mixed_frame: pd.DataFrame) -> None:
    with pytest.raises(BadInputError, match="too few"):
        split_holdout(mixed_frame.head(20), 0.2, seed=0)


# --- CSV as real exports write it: encodings, separators, decimal commas, quotes, compression, markers ---

ROWS = "name,city,amount\nAnn,Köln,1.5\nBob,Zürich,2.25\nCé,Paris,3\n"




@pytest.mark.parametrize("pack", [lambda b: b, gzip_bytes], ids=["plain", "gzip"])
def test_a_utf8_bom_is_not_part_of_the_first_column_name(tmp_path: Path, pack: Callable[[bytes], bytes]) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(pack(codecs.BOM_UTF8 + b"name;amount\nAnn;1,5\nBob;2\n"))
    frame, info = read_source(path)
    assert list(frame.columns) == ["name", "amount"]
    assert frame["amount"].tolist() == [1.5, 2.0]
    assert info.encoding == "utf-8-sig"


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (ROWS.replace("Ann", "Ann €").encode("cp1252"), "cp1252"),
        (ROWS.encode("latin-1") + b"Dee,x\x81y,4\n", "latin-1"),  # 0x81 is undefined in cp1252
        (ROWS.encode("utf-16"), "utf-16"),
        (ROWS.encode("utf-8"), "utf-8"),
    ],
    ids=["cp1252", "latin-1", "utf-16-bom", "utf-8"],
)
def test_the_encoding_is_detected_and_recorded(tmp_path: Path, encoded: bytes, encoding: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(encoded)
    table = load_table(path)
    assert table.frame["city"].tolist()[:3] == ["Köln", "Zürich", "Paris"]
    assert table.source.encoding == encoding
    assert table.source.to_dict()["encoding"] == encoding


@pytest.mark.parametrize(
    ("text", "delimiter", "decimal"),
    [
        ("name;amount;n\nAnn;1,5;3\nBob;2,25;4\nCy;3;5\n", ";", ","),
        ("name\tamount\tn\nAnn\t1,5\t3\nBob\t2,25\t4\nCy\t3\t5\n", "\t", ","),
        ("name|amount|n\nAnn|1.5|3\nBob|2.25|4\nCy|3|5\n", "|", "."),
        ("name;amount;n\nAnn;1.5;3\nBob;2.25;4\nCy;3;5\n", ";", "."),
        ('name,amount,n\n"Ann, Jr.",1.5,3\nBob,2.25,4\nCy,3,5\n', ",", "."),
    ],
    ids=["semicolon-comma", "tab-comma", "pipe-point", "semicolon-point", "comma-quoted"],
)
def test_separator_and_decimal_mark_are_detected(tmp_path: Path, text: str, delimiter: str, decimal: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    table = load_table(path)
    assert list(table.frame.columns) == ["name", "amount", "n"]
    assert table.frame["amount"].tolist() == [1.5, 2.25, 3.0]
    assert table.schema["amount"].kind is ColumnKind.NUMERICAL
    assert (table.source.delimiter, table.source.decimal) == (delimiter, decimal)


def test_a_file_with_both_decimal_marks_is_refused_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a;b\n1,5;2.5\n2,5;3.5\n")
    with pytest.raises(BadInputError, match=r"cannot tell the decimal mark .*'a' writes numbers like 1,5"):
        load_table(path)


def test_values_all_in_single_quotes_are_unquoted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("age,caps,grade\n'40-49','yes','3'\n'50-59',?,'1'\n'40-49','no','2'\n")
    table = load_table(path)
    assert table.schema["age"].categories == ("40-49", "50-59")
    assert table.frame["caps"].isna().tolist() == [False, True, False]
    assert table.source.quote == "'"


@pytest.mark.parametrize(
    ("name", "pack", "compression"),
    [
        ("t.csv.gz", gzip_bytes, "gzip"),
        ("t.csv.bz2", bz2.compress, "bz2"),
        ("t.csv.zst", zstd_bytes, "zstd"),
        ("t.csv", gzip_bytes, "gzip"),  # told by the bytes, not by the name
    ],
    ids=["gzip", "bz2", "zstd", "gzip-named-csv"],
)
def test_compressed_csv_is_read_and_hashed_as_stored(
    tmp_path: Path, name: str, pack: Callable[[bytes], bytes], compression: str
) -> None:
    stored = pack(ROWS.encode())
    path = tmp_path / name
    path.write_bytes(stored)
    frame, info = read_source(path)
    assert frame["name"].tolist() == ["Ann", "Bob", "Cé"]
    assert info.compression == compression
    assert info.sha256 == hashlib.sha256(stored).hexdigest()


def test_a_folder_may_hold_compressed_parts(tmp_path: Path) -> None:
    (tmp_path / "part-0.csv.gz").write_bytes(gzip_bytes(ROWS.encode()))
    (tmp_path / "part-1.csv").write_text(ROWS)
    (tmp_path / "notes.txt").write_text("not a part")
    frame, info = read_source(tmp_path)
    assert len(frame) == 6 and info.compression == "gzip"


@pytest.mark.parametrize("kept", [40, -100], ids=["cut-in-its-head", "cut-near-its-end"])
def test_a_truncated_compressed_file_is_a_one_line_error(tmp_path: Path, kept: int) -> None:
    rng = np.random.default_rng(0)
    numbers = zip(rng.random(60_000), rng.integers(0, 9, 60_000), strict=True)
    text = "a,b\n" + "".join(f"{x:.6f},{y}\n" for x, y in numbers)
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip_bytes(text.encode())[:kept])
    with pytest.raises(BadInputError, match=r"^(cannot decompress gzip source|cannot read) ") as caught:
        load_table(path)
    assert "\n" not in str(caught.value)


def test_default_missing_value_markers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    markers = ["", "?", "N/A", "NaN", "nan", "NULL", "null", "NA", "None"]
    lines = [f"{m},{float(i)},{'None' if i % 2 else 'Mild'},{m}" for i, m in enumerate(markers)]
    path.write_text("losses,score,allergy,note\n" + "\n".join(lines) + "\n1.5,NA,NA,x\n")
    table = load_table(path)
    assert table.schema["losses"].kind is ColumnKind.NUMERICAL and table.frame["losses"].isna().sum() == 9
    assert table.schema["score"].kind is ColumnKind.NUMERICAL and table.frame["score"].isna().sum() == 1
    # in a column of words, None and NA can be answers: kept as values, never dropped silently
    assert set(table.schema["allergy"].categories) == {"Mild", "NA", "None"}
    assert table.frame["note"].isna().sum() == 7 and set(table.schema["note"].categories) == {"NA", "None", "x"}
    assert table.source.na_values == DEFAULT_NA_VALUES


def test_na_values_replace_the_markers_in_every_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("n,word\n1,-\n-,None\n3,?\n")
    table = load_table(path, na_values=["-", "None"])
    assert table.frame["n"].tolist()[::2] == [1, 3] and table.frame["n"].isna().tolist() == [False, True, False]
    assert table.frame["word"].tolist() == [None, None, "?"]
    assert table.source.na_values == ("-", "None")
    assert RunConfig(na_values=["-"]).na_values == ["-"]


def test_times_of_day_keep_the_text_they_were_written_in(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("at,hm\n10:49:41,07:05\n23:00:01,18:30\n00:00:00,00:00\n")
    table = load_table(path)
    assert as_written(table.frame, table.schema)["hm"].tolist() == ["07:05", "18:30", "00:00"]
    assert (table.schema["at"].datetime_format, table.schema["hm"].datetime_format) == ("%H:%M:%S", "%H:%M")


def test_numbers_mixed_with_words_are_categorical(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("code,v\n" + "".join(f"{c},{i}\n" for i, c in enumerate(["12", "7", "abc", "3.5"] * 10)))
    table = load_table(path)
    assert table.schema["code"].kind is ColumnKind.CATEGORICAL
    assert table.schema["code"].categories == ("12", "3.5", "7", "abc")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_infinite_numbers_are_one_line_errors_without_warnings(tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame({"x": [1.0, np.inf, -np.inf, 2.0] * 5, "y": range(20)})
    path = tmp_path / f"t.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, index=False)
    with warnings.catch_warnings(record=True) as shown, pytest.raises(BadInputError) as caught:
        warnings.simplefilter("always")
        load_table(path)
    assert str(caught.value) == "column 'x' holds infinite values (inf or -inf); make them missing"
    assert shown == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (ROWS.encode("utf-16-le"), "looks like UTF-16 text without a byte-order mark"),
        (codecs.BOM_UTF8 + b"a,b\n1,\xff\n", "starts with a utf-8-sig byte-order mark but is not utf-8-sig text"),
        (b"PK\x03\x04" + bytes(200), "is a ZIP archive"),
    ],
    ids=["utf-16-without-bom", "lying-bom", "xlsx"],
)
def test_undecodable_text_is_refused_naming_the_encoding(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=message) as caught:
        load_table(path)
    assert "\n" not in str(caught.value)


# --- Parquet types no model can learn ---

def _nested_table(n: int = 12) -> pa.Table:
    return pa.table(
        {
            "x": np.arange(n) * 1.5,
            "tags": pa.array([[1, 2]] * n),
            "meta": pa.array([{"a": 1}] * n),
            "blob": pa.array([b"ab"] * n),
            "pairs": pa.array([[("k", 1)]] * n, type=pa.map_(pa.string(), pa.int64())),
            "coded_bytes": pa.array([b"a", b"b"] * (n // 2)).dictionary_encode(),
            "price": pa.array([decimal.Decimal("1.50")] * n),
            "colour": pa.array(["red", "blue"] * (n // 2)).dictionary_encode(),
        }
    )


def test_parquet_columns_no_model_can_learn_are_dropped_and_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_nested_table(), path)
    with caplog.at_level(logging.WARNING, logger="flows.sources"):
        table = load_table(path)
    assert list(table.frame.columns) == ["x", "price", "colour"]
    assert table.frame["price"].dtype == "float64"  # decimals are numbers, not Python objects
    assert set(table.source.dropped) == {"tags", "meta", "blob", "pairs", "coded_bytes"}
    assert "nested values (list<" in table.source.dropped["tags"]
    assert "raw bytes" in table.source.dropped["blob"]
    assert table.source.to_dict()["dropped"] == table.source.dropped
    assert sorted(r.getMessage().split("'")[1] for r in caplog.records) == sorted(table.source.dropped)


def test_a_parquet_table_with_nothing_learnable_is_refused_naming_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_nested_table().select(["tags", "blob"]), path)
    with pytest.raises(BadInputError, match=r"no column a model can learn: 'tags' \(nested.*'blob' \(raw bytes"):
        load_table(path)
