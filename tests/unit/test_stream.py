"""Streamed sources: chunks of every part make `read_source`'s frame, the plan's facts its `SourceInfo`.

Every chunk has the plan's types, a late value that does not fit is a one-line error that never echoes it, and
memory stays bounded by the chunk.
"""

from __future__ import annotations

import bz2
import codecs
import decimal
import json
import os
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from conftest import gzip_bytes, make_mixed_frame, zstd_bytes

from flows.config import SqlSource
from flows.sources import SourceInfo, read_source
from flows.sources import stream as streaming
from flows.sources.stream import SourcePlan, plan_source
from generators.tabular.errors import BadInputError

ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path("/work/shared/datasets")
PUBLIC = [*sorted((DATASETS / "calibration").glob("*.csv")), DATASETS / "adult.csv", ROOT / "data" / "adult.parquet"]
ROWS = "name,city,amount\nAnn,Köln,1.5\nBob,Zürich,2.25\nCé,Paris,3\n"
MARKERS = ["", "?", "N/A", "NaN", "nan", "NULL", "null", "NA", "None"]


def streamed(
    source: str | Path | SqlSource, chunk_rows: int, na_values: list[str] | None = None,
    columns: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, SourceInfo, SourcePlan]:
    """Every part read from a pickled copy of the plan (as a worker gets it), then the facts combined."""
    plan = pickle.loads(pickle.dumps(plan_source(source, na_values, columns)))
    readers = [part.chunks(chunk_rows) for part in plan.parts]
    chunks = [chunk for reader in readers for chunk in reader]
    expected = plan.schema.empty_table().to_pandas().dtypes
    for chunk in chunks:
        assert 0 < len(chunk) <= chunk_rows
        for name in chunk.columns:
            assert _same_type(chunk[name], expected[name]), f"{name}: {chunk[name].dtype} in a {expected[name]} column"
    return pd.concat(chunks, ignore_index=True), plan.info([reader.facts for reader in readers]), plan


def _same_type(column: pd.Series, expected: Any) -> bool:
    """The plan's dtype, or what pandas makes of integers (booleans) with a missing value: floats (objects)."""
    if str(column.dtype) == str(expected):
        return True
    if not column.isna().any():
        return False
    return (expected.kind in "iu" and column.dtype == "float64") or (expected.kind == "b" and column.dtype == object)


def assert_streams_as_read(
    source: str | Path | SqlSource, chunk_rows: int, na_values: list[str] | None = None
) -> SourcePlan:
    frame, info = read_source(source, na_values)
    got, got_info, plan = streamed(source, chunk_rows, na_values)
    pd.testing.assert_frame_equal(got, frame.reset_index(drop=True))
    assert got_info == info
    return plan


@pytest.mark.parametrize("path", PUBLIC, ids=[p.name for p in PUBLIC])
def test_public_tables_stream_as_they_read(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not found")
    plan = assert_streams_as_read(path, 1_000 if path.stat().st_size > 1e6 else 97)
    assert plan.stored_sha256() == read_source(path)[1].sha256


# --- the shapes the readers handle: encodings, separators, markers, compression, folders, Parquet types ---



def _file(name: str, content: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return build


def _marker_table() -> bytes:
    lines = [f"{m},{float(i)},{'None' if i % 2 else 'Mild'},{m}" for i, m in enumerate(MARKERS)]
    return ("losses,score,allergy,note\n" + "\n".join(lines) + "\n1.5,NA,NA,x\n").encode()


def _csv_parts(folder: Path) -> Path:
    (folder / "part-0.csv.gz").write_bytes(gzip_bytes(ROWS.encode()))
    (folder / "part-1.csv").write_text(ROWS)
    (folder / "notes.txt").write_text("not a part")
    return folder


def _mixed_csv(folder: Path) -> Path:
    make_mixed_frame().to_csv(folder / "mixed.csv", index=False)
    return folder / "mixed.csv"


def _mixed_parquet(folder: Path) -> Path:
    make_mixed_frame().to_parquet(folder / "mixed.parquet", index=False)
    return folder / "mixed.parquet"


def _parquet_parts(folder: Path) -> Path:
    frame = make_mixed_frame()
    frame.iloc[:150].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[150:].to_parquet(folder / "part-1.parquet", index=False)
    return folder


def _nested_parquet(folder: Path) -> Path:
    n = 12
    table = pa.table({
        "x": np.arange(n) * 1.5,
        "tags": pa.array([[1, 2]] * n),
        "blob": pa.array([b"ab"] * n),
        "price": pa.array([decimal.Decimal("1.50")] * n),
        "colour": pa.array(["red", "blue"] * (n // 2)).dictionary_encode(),
        "at": pa.array([3600 * i for i in range(n)], pa.time32("s")),
    })
    pq.write_table(table, folder / "nested.parquet")
    return folder / "nested.parquet"


def _indexed_parquet(folder: Path) -> Path:
    make_mixed_frame().iloc[5:].set_index("customer_id").to_parquet(folder / "indexed.parquet")
    return folder / "indexed.parquet"


def _compressed_parquet(folder: Path) -> Path:
    buffer = pa.BufferOutputStream()
    make_mixed_frame().to_parquet(buffer, index=False)
    (folder / "t.parquet.gz").write_bytes(gzip_bytes(buffer.getvalue().to_pybytes()))
    return folder / "t.parquet.gz"


SHAPES: dict[str, Callable[[Path], Path]] = {
    "utf-8": _file("t.csv", ROWS.encode()),
    "cp1252": _file("t.csv", ROWS.replace("Ann", "Ann €").encode("cp1252")),
    "latin-1": _file("t.csv", ROWS.encode("latin-1") + b"Dee,x\x81y,4\n"),
    "utf-16-bom": _file("t.csv", ROWS.encode("utf-16")),
    "utf-8-bom-semicolon-decimal-comma": _file("t.csv", codecs.BOM_UTF8 + b"name;amount\nAnn;1,5\nBob;2\n"),
    "gzip": _file("t.csv.gz", gzip_bytes(ROWS.encode())),
    "bz2": _file("t.csv.bz2", bz2.compress(ROWS.encode())),
    "zstd": _file("t.csv.zst", zstd_bytes(ROWS.encode())),
    "gzip-named-csv": _file("t.csv", gzip_bytes(ROWS.encode())),
    "tab-decimal-comma": _file("t.csv", b"name\tamount\tn\nAnn\t1,5\t3\nBob\t2,25\t4\nCy\t3\t5\n"),
    "pipe": _file("t.csv", b"name|amount|n\nAnn|1.5|3\nBob|2.25|4\nCy|3|5\n"),
    "quoted-separator": _file("t.csv", b'name,amount,n\n"Ann, Jr.",1.5,3\nBob,2.25,4\nCy,3,5\n'),
    "single-quoted": _file("t.csv", b"age,caps,grade\n'40-49','yes','3'\n'50-59',?,'1'\n'40-49','no','2'\n"),
    "missing-value-markers": _file("t.csv", _marker_table()),
    "times-of-day": _file("t.csv", b"at,hm\n10:49:41,07:05\n23:00:01,18:30\n00:00:00,00:00\n"),
    "numbers-and-words": _file("t.csv", ("code,v\n" + "".join(
        f"{c},{i}\n" for i, c in enumerate(["12", "7", "abc", "3.5"] * 10))).encode()),
    "folder-of-csv-parts": _csv_parts,
    "mixed-csv": _mixed_csv,
    "mixed-parquet": _mixed_parquet,
    "folder-of-parquet-parts": _parquet_parts,
    "nested-parquet": _nested_parquet,
    "parquet-with-a-stored-index": _indexed_parquet,
    "gzip-parquet": _compressed_parquet,
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_streams_as_it_reads(tmp_path: Path, shape: str) -> None:
    assert_streams_as_read(SHAPES[shape](tmp_path), chunk_rows=2)


def test_given_missing_value_markers_stream_as_they_read(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("n,word\n1,-\n-,None\n3,?\n")
    assert_streams_as_read(path, chunk_rows=1, na_values=["-", "None"])


def _hive(root: Path, fmt: str) -> Path:
    frame = make_mixed_frame().drop(columns=["joined", "member"])
    folders = ["year=2020/month=01", "year=2020/month=02", "year=2021/month=__HIVE_DEFAULT_PARTITION__",
               "year=2021/month=12"]
    for i, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        part = frame.iloc[i * 100:(i + 1) * 100]
        part.to_parquet(root / folder / "part-0.parquet", index=False) if fmt == "parquet" else part.to_csv(
            root / folder / "part-0.csv", index=False)
    (root / "_SUCCESS").write_text("")
    return root


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_hive_partition_keys_become_columns_as_pyarrow_types_them(tmp_path: Path, fmt: str) -> None:
    root = _hive(tmp_path / "dataset", fmt)
    plan = assert_streams_as_read(root, chunk_rows=30)
    assert len(plan.parts) == 4 and plan.schema.names[-2:] == ["year", "month"]
    frame, _ = read_source(root)
    dataset = pads.dataset(root, format=fmt, partitioning="hive", exclude_invalid_files=True)
    expected = dataset.to_table().to_pandas()
    compared = list(frame.columns) if fmt == "parquet" else ["year", "month"]  # pyarrow's CSV reading: not ours
    pd.testing.assert_frame_equal(frame[compared], expected[compared])
    assert frame["month"].isna().sum() == 100 and frame["year"].dtype == "int32"


def test_hive_folders_must_agree_and_keys_must_not_be_columns(tmp_path: Path) -> None:
    (tmp_path / "a" / "k=1").mkdir(parents=True)
    (tmp_path / "a" / "k=1" / "p.csv").write_text("x\n1\n")
    (tmp_path / "a" / "p.csv").write_text("x\n1\n")
    (tmp_path / "b" / "x=1").mkdir(parents=True)
    (tmp_path / "b" / "x=1" / "p.csv").write_text("x\n1\n")
    for folder, message in [("a", "do not all sit under the same key=value folders"), ("b", "partition key 'x' of")]:
        for read in (read_source, plan_source):
            with pytest.raises(BadInputError, match=message):
                read(tmp_path / folder)


def test_a_big_parquet_file_is_read_in_parts_of_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_mixed_frame().to_parquet(tmp_path / "t.parquet", index=False, row_group_size=50)
    monkeypatch.setattr(streaming, "PART_ROWS", 120)
    plan = assert_streams_as_read(tmp_path / "t.parquet", chunk_rows=33)
    assert [part.row_groups for part in plan.parts] == [(0, 1), (2, 3), (4, 5), (6, 7)]  # type: ignore[attr-defined]


def test_parts_read_in_any_order_combine_to_the_same_facts(tmp_path: Path) -> None:
    root = _hive(tmp_path / "dataset", "csv")
    plan = plan_source(root)
    facts = {}
    for index in reversed(range(len(plan.parts))):
        reader = plan.parts[index].chunks(7)
        with pytest.raises(RuntimeError, match="once every chunk"):
            _ = reader.facts
        for _ in reader:
            pass
        facts[index] = reader.facts
    info = plan.info([facts[i] for i in range(len(plan.parts))], stored_sha256=plan.stored_sha256())
    assert info == read_source(root)[1]
    with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
        next(plan.parts[0].chunks(0))


# --- bad input: what read_source refuses, the plan refuses with the same line ---

EARLY = {
    "empty": b"",
    "header-only": b"a,b,c\n",
    "binary": b"\x7fELF\x02\x01\x01\x00\x00\x00" * 20,
    "short-row": b"a,b,c\n1,2,3\n4,5\n",
    "fake-parquet": b"PAR1 not really parquet",
    "utf-16-without-bom": ROWS.encode("utf-16-le"),
    "lying-bom": codecs.BOM_UTF8 + b"a,b\n1,\xff\n",
    "xlsx": b"PK\x03\x04" + bytes(200),
    "both-decimal-marks": b"a;b\n1,5;2.5\n2,5;3.5\n",
    "duplicate-names": b"a,a\n1,2\n",
}


@pytest.mark.parametrize("case", list(EARLY))
def test_bad_input_seen_early_is_refused_by_the_plan_as_read_source_refuses_it(tmp_path: Path, case: str) -> None:
    path = tmp_path / "source.csv"
    path.write_bytes(EARLY[case])
    assert_same_refusal(path)


def assert_same_refusal(source: Path) -> None:
    with pytest.raises(BadInputError) as read:
        read_source(source)
    with pytest.raises(BadInputError) as planned:
        plan_source(source)
    assert str(planned.value) == str(read.value) and "\n" not in str(planned.value)


@pytest.mark.parametrize("folder", ["missing", "no-data-files", "mixed-formats", "different-columns"])
def test_a_bad_folder_is_refused_by_the_plan_as_read_source_refuses_it(tmp_path: Path, folder: str) -> None:
    root = tmp_path / folder
    if folder != "missing":
        root.mkdir()
        (root / "notes.txt").write_text("x")
    if folder == "mixed-formats":
        (root / "a.csv").write_text("x\n1\n")
        pd.DataFrame({"x": [1]}).to_parquet(root / "b.parquet")
    if folder == "different-columns":
        (root / "a.csv").write_text("x\n1\n")
        (root / "b.csv").write_text("y\n1\n")
    assert_same_refusal(root)


def _late(tmp_path: Path, rows: int, late: str) -> tuple[Path, int]:
    """A CSV whose first `rows` rows are plain numbers and words, then the `late` line; and that line's number."""
    path = tmp_path / "t.csv"
    path.write_text("n,word\n" + "".join(f"{i},w{i % 7}\n" for i in range(rows)) + late + "\n" + "5,w\n")
    return path, rows + 2


@pytest.fixture
def small_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """Types judged on the first 64 KiB, so a few thousand rows are past them."""
    monkeypatch.setattr(streaming, "TYPING_BYTES", 1 << 16)


def test_a_late_value_that_does_not_fit_its_column_is_named_by_line_not_content(
    tmp_path: Path, small_head: None
) -> None:
    path, line = _late(tmp_path, 20_000, "123-45-6789,w")
    with pytest.raises(BadInputError) as caught:
        list(plan_source(path).parts[0].chunks(1_000))
    message = str(caught.value)
    assert message.startswith(f"column 'n': a value in line {line} of {path} is not int64")
    assert "declare the column's kind in the config (columns: {n: categorical}" in message
    assert "123-45-6789" not in message and "\n" not in message
    # declared as a category, it streams as text: as read_source reads the whole column
    got, _, plan = streamed(path, 1_000, columns={"n": "categorical"})
    assert plan.schema.field("n").type == pa.string()
    pd.testing.assert_frame_equal(got, read_source(path)[0])


def test_late_word_markers_in_a_number_column_are_missing_as_in_the_whole_file(
    tmp_path: Path, small_head: None
) -> None:
    path, _ = _late(tmp_path, 20_000, "NA,None")
    plan = assert_streams_as_read(path, chunk_rows=3_000)
    assert plan.schema.field("n").type == pa.int64()
    assert read_source(path)[0]["word"].iloc[-2] == "None"  # in a column of words, a word


def test_a_late_ragged_line_is_named_as_read_source_names_it(tmp_path: Path, small_head: None) -> None:
    path, line = _late(tmp_path, 20_000, "7,secret-value,extra")
    with pytest.raises(BadInputError) as read:
        read_source(path)
    with pytest.raises(BadInputError) as streamed_error:
        list(plan_source(path).parts[0].chunks(1_000))
    assert str(streamed_error.value) == str(read.value)
    assert f"line {line} has 3 fields, expected 2" in str(read.value) and "secret" not in str(read.value)


@pytest.mark.parametrize(("header", "late", "message"), [
    (b"n,word", b"7,caf\xe9", r"^line 20002 of .* is not utf-8 text, as the file's first bytes are"),
    ("n,wörd".encode("cp1252"), b"7,x\x81y", r"^part of .* is not cp1252 text, as the file's first bytes are"),
], ids=["utf-8", "cp1252"])
def test_late_bytes_of_another_encoding_are_refused_naming_where(
    tmp_path: Path, small_head: None, header: bytes, late: bytes, message: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(header + b"\n" + "".join(f"{i},w{i % 7}\n" for i in range(20_000)).encode() + late + b"\n")
    with pytest.raises(BadInputError, match=message) as caught:
        list(plan_source(path).parts[0].chunks(1_000))
    assert "caf" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_compressed_file_cut_past_its_head_fails_while_streaming_in_one_line(
    tmp_path: Path, small_head: None
) -> None:
    rng = np.random.default_rng(0)
    text = "a,b\n" + "".join(f"{x:.6f},{y}\n" for x, y in zip(rng.random(60_000), rng.integers(0, 9, 60_000),
                                                             strict=True))
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip_bytes(text.encode())[:-100])
    plan = plan_source(path)
    with pytest.raises(BadInputError, match=r"^cannot read ") as caught:
        list(plan.parts[0].chunks(10_000))
    assert "\n" not in str(caught.value)


# --- SQL: the query run again by its part, its rows' digest taken as they come ---

@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        pd.read_parquet(ROOT / "data" / "adult.parquet").head(600).to_sql("adult", connection, index=False)
        connection.execute("CREATE TABLE mixed (a, b, c REAL, d BLOB)")
        connection.executemany("INSERT INTO mixed VALUES (?, ?, ?, ?)",
                               [(None, 1, 1, b"x"), (None, "two", 2.5, b"y"), (3, 3, None, b"z"), (4, 4, 4, None)])
        connection.execute("CREATE TABLE late (v)")
        connection.executemany("INSERT INTO late VALUES (?)", [(i,) for i in range(20)] + [("private",), (3,)])
    connection.close()
    return path


def _sql(path: Path, **fields: Any) -> SqlSource:
    return SqlSource.model_validate({"sql": f"sqlite:///{path}", **fields})


@pytest.mark.parametrize("chunk_rows", [7, 1_000])
def test_a_sql_table_streams_as_it_reads(database: Path, chunk_rows: int) -> None:
    assert_streams_as_read(_sql(database, table="adult"), chunk_rows)
    assert_streams_as_read(_sql(database, query="SELECT age, workclass FROM adult WHERE age > 40"), chunk_rows)


def test_sql_types_judged_on_the_first_rows_take_in_later_chunks(database: Path) -> None:
    plan = assert_streams_as_read(_sql(database, table="mixed", chunk_rows=1), chunk_rows=1)
    assert plan.known.dropped == {"d": "raw bytes (binary) cannot be learned"}
    with pytest.raises(ValueError, match="a query has no stored bytes"):
        plan.stored_sha256()


def test_a_late_sql_value_that_does_not_fit_is_named_by_rows(database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "TYPING_ROWS", 10)
    with pytest.raises(BadInputError) as caught:
        list(plan_source(_sql(database, table="late", chunk_rows=5)).parts[0].chunks(7))
    message = str(caught.value)
    assert message.startswith("column 'v': a value in rows 15-21 of sqlite:///") and "is not int64" in message
    assert "private" not in message and "declare the column's kind" in message
    got, _, _ = streamed(_sql(database, table="late", chunk_rows=5), 7, columns={"v": "text"})
    pd.testing.assert_frame_equal(got, read_source(_sql(database, table="late"))[0])


def test_sql_bad_input_is_refused_by_the_plan_as_read_source_refuses_it(database: Path) -> None:
    for fields in ({"table": "nope"}, {"query": "DELETE FROM adult"}, {"query": "SELECT * FROM mixed WHERE 0"}):
        with pytest.raises(BadInputError) as read:
            read_source(_sql(database, **fields))
        with pytest.raises(BadInputError) as planned:
            plan_source(_sql(database, **fields))
        assert str(planned.value) == str(read.value)


# --- memory: a chunk's worth, never the file's ---

# Peak resident memory from /proc (VmHWM): a child's ru_maxrss counts its parent's memory at the fork.
_MEASURE = """
import json, sys
from flows.sources.stream import plan_source
def memory(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))
start = memory("VmRSS:")
plan = plan_source(sys.argv[1])
rows, warm = 0, None
for part in plan.parts:
    for chunk in part.chunks(100_000):
        rows += len(chunk)
        warm = memory("VmHWM:") if warm is None and rows >= 500_000 else warm
print(json.dumps({"rows": rows, "start": start, "warm": warm, "end": memory("VmHWM:")}))
"""


def test_streaming_memory_is_bounded_by_the_chunk_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    _write_wide_csv(path, rows=2_000_000)
    size = path.stat().st_size
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    try:
        run = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, env=env,
                             timeout=120, check=True)
    finally:
        path.unlink()
    measured = json.loads(run.stdout)
    assert measured["rows"] == 2_000_000
    # a constant (~110-160 MiB here, with the allocator's slack: the reader's read-ahead, the typing head, a chunk in
    # Arrow and pandas), where a whole read holds 3-5 times the file; and it does not grow as the reading goes on
    assert measured["end"] - measured["start"] < size, (measured, size)
    assert measured["end"] - measured["warm"] < size / 10, (measured, size)


def _write_wide_csv(path: Path, rows: int, piece: int = 250_000) -> None:
    """An Adult-wide table (~190 bytes a row), written a piece at a time."""
    rng = np.random.default_rng(0)
    cities = np.array([f"city-{i}" for i in range(500)])
    notes = np.array([f"a note of some length, number {i}" for i in range(1000)])
    comments = np.array([f"a longer free-text comment about the customer, number {i}" for i in range(5000)])
    schema = pa.schema([("id", pa.int64()), ("age", pa.int64()), ("income", pa.float64()), ("score", pa.float64()),
                        ("city", pa.string()), ("note", pa.string()), ("comment", pa.string()), ("flag", pa.bool_())])
    with pacsv.CSVWriter(path, schema) as writer:
        for start in range(0, rows, piece):
            writer.write_table(pa.table({
                "id": np.arange(start, start + piece), "age": rng.integers(18, 90, piece),
                "income": np.round(rng.gamma(2, 20_000, piece), 2), "score": rng.random(piece),
                "city": cities[rng.integers(0, len(cities), piece)], "note": notes[rng.integers(0, len(notes), piece)],
                "comment": comments[rng.integers(0, len(comments), piece)], "flag": rng.random(piece) < 0.3,
            }, schema))
