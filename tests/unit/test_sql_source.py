"""SQL sources on SQLite: the same frame as the file readers give, a chunk-free fingerprint, one-line errors."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from flows.config import RunConfig, SqlSource, load_config
from flows.sources import load_table, read_source
from generators.tabular.errors import BadInputError

ADULT = Path(__file__).resolve().parents[2] / "data" / "adult.parquet"


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_parquet(ADULT).head(600)


@pytest.fixture
def database(tmp_path: Path, adult: pd.DataFrame) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        adult.to_sql("adult", connection, index=False)
        connection.execute("CREATE TABLE mixed (a, b, c REAL, d BLOB)")
        connection.executemany("INSERT INTO mixed VALUES (?, ?, ?, ?)",
                               [(None, 1, 1, b"x"), (None, "two", 2.5, b"y"), (3, 3, None, b"z"), (4, 4, 4, None)])
        connection.execute("CREATE TABLE empty (a INTEGER)")
    connection.close()
    return path


def source(path: Path, **fields: object) -> SqlSource:
    return SqlSource.model_validate({"sql": f"sqlite:///{path}", **fields})


def test_a_table_reads_as_the_file_readers_read_it(database: Path, adult: pd.DataFrame, tmp_path: Path) -> None:
    adult.to_parquet(tmp_path / "adult.parquet", index=False)
    frame, info = read_source(source(database, table="adult"))
    pd.testing.assert_frame_equal(frame, adult)
    assert (info.format, info.query, info.rows, info.columns) == ("sql", 'SELECT * FROM "adult"', 600, 15)
    assert info.uri == f"sqlite:///{database}"
    from_sql, from_file = load_table(source(database, table="adult")), load_table(tmp_path / "adult.parquet")
    assert from_sql.schema == from_file.schema  # inferred downstream exactly as for the file


def test_a_query_reads_its_rows(database: Path, adult: pd.DataFrame) -> None:
    query = "SELECT age, workclass FROM adult WHERE age > 40"
    frame, info = read_source(source(database, query=query))
    expected = adult.loc[adult["age"] > 40, ["age", "workclass"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, expected)
    assert info.query == query and info.rows == len(expected)


@pytest.mark.parametrize("chunk_rows", [1, 7, 599])
def test_chunking_changes_neither_the_frame_nor_the_fingerprint(database: Path, chunk_rows: int) -> None:
    whole, info = read_source(source(database, table="adult"))
    chunked, chunked_info = read_source(source(database, table="adult", chunk_rows=chunk_rows))
    pd.testing.assert_frame_equal(chunked, whole)
    assert chunked_info.sha256 == info.sha256


def test_the_fingerprint_pins_the_rows(database: Path) -> None:
    first = read_source(source(database, table="adult"))[1].sha256
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE adult SET age = age + 1 WHERE rowid = 600")
    connection.close()
    assert read_source(source(database, table="adult"))[1].sha256 != first


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_types_follow_the_values_of_every_chunk(database: Path, chunk_rows: int) -> None:
    frame, info = read_source(source(database, table="mixed", chunk_rows=chunk_rows))
    assert frame["a"].dtype == "float64" and frame["a"].isna().sum() == 2  # nulls first, integers later
    assert frame["b"].tolist() == ["1", "two", "3", "4"]  # numbers beside a word: text, as SQLite holds them
    assert frame["c"].dtype == "float64"
    assert list(frame.columns) == ["a", "b", "c"]
    assert info.dropped == {"d": "raw bytes (binary) cannot be learned"}


BAD = {
    "unknown table": ({"table": "nope"}, "table 'nope' not found in sqlite:///"),
    "bad query": ({"query": "SELEC * FROM adult"}, "query failed on sqlite:///"),
    "query on a missing table": ({"query": "SELECT * FROM nope"}, "no such table: nope"),
    "not a query": ({"query": "DELETE FROM adult"}, "returns no rows to read (it must be a SELECT)"),
    "duplicate names": ({"query": "SELECT age, age FROM adult"}, "returns duplicate column names: age"),
    "empty table": ({"table": "empty"}, "no rows to read from sqlite:///"),
    "unset password variable": ({"table": "adult", "password_env": "SYNTHGATE_NO_SUCH_VAR"},
                                "environment variable SYNTHGATE_NO_SUCH_VAR (source.password_env) is not set"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line(database: Path, case: str) -> None:
    fields, expected = BAD[case]
    with pytest.raises(BadInputError) as caught:
        read_source(source(database, **fields))
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert read_source(source(database, table="adult"))[1].rows == 600  # a failed query wrote nothing


def test_a_missing_sqlite_file_is_refused_not_created(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="SQLite database not found"):
        read_source(source(tmp_path / "absent.db", table="t"))
    assert not (tmp_path / "absent.db").exists()


def test_a_missing_driver_or_dialect_is_one_line() -> None:
    with pytest.raises(BadInputError, match=r"^no driver for mysql \(No module named 'MySQLdb'\)"):
        read_source(SqlSource(sql="mysql://me@127.0.0.1/db", table="t"))
    with pytest.raises(BadInputError, match=r"^no driver for nosuch \("):
        read_source(SqlSource(sql="nosuch://me@127.0.0.1/db", table="t"))


def test_an_unreachable_server_is_one_line_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHGATE_TEST_PW", "hunter2-secret")
    spec = SqlSource(sql="postgresql+psycopg://me@127.0.0.1:1/db", table="t", password_env="SYNTHGATE_TEST_PW")
    with pytest.raises(BadInputError) as caught:
        read_source(spec)
    message = str(caught.value)
    assert message.startswith("cannot connect to postgresql+psycopg://me:***@127.0.0.1:1/db: ")
    assert "hunter2" not in message and "\n" not in message


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, "give exactly one of table and query"),
    ({"table": "t", "query": "SELECT 1"}, "give exactly one of table and query"),
    ({"query": "SELECT 1", "schema": "s"}, "schema goes with table"),
    ({"table": "t", "password_env": "A", "password_secret": "b"}, "at most one of password_env and password_secret"),
    ({"table": "t", "chunk_rows": 0}, "greater than 0"),
])
def test_the_config_refuses_an_incoherent_source(tmp_path: Path, fields: dict[str, object], expected: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"source: {{sql: 'sqlite:///x.db', {', '.join(f'{k}: {v!r}' for k, v in fields.items())}}}\n")
    with pytest.raises(BadInputError, match=expected):
        load_config(path)


def test_a_bad_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("source: {sql: 'no url with hunter2', table: t}\n")
    with pytest.raises(BadInputError) as caught:
        load_config(path)
    assert "not a SQLAlchemy URL" in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_password_in_the_url_is_warned_about_without_showing_it(caplog: pytest.LogCaptureFixture) -> None:
    # Listen on the config's own logger: a flow run earlier in the session may have stopped ours propagating
    # or disabled it (Prefect's logging set-up takes over the `flows` loggers).
    config_log = logging.getLogger("flows.config")
    config_log.addHandler(caplog.handler)
    disabled, config_log.disabled = config_log.disabled, False
    try:
        with caplog.at_level(logging.WARNING, logger="flows.config"):
            SqlSource(sql="postgresql+psycopg://me:hunter2@db.example/x", table="t")
    finally:
        config_log.removeHandler(caplog.handler)
        config_log.disabled = disabled
    assert "prefer password_env or password_secret" in caplog.text and "hunter2" not in caplog.text
    with pytest.raises(ValueError, match="the URL holds a password"):
        SqlSource(sql="postgresql+psycopg://me:hunter2@db.example/x", table="t", password_env="PW")


def test_yaml_takes_a_sqlite_file_beside_it_and_names_the_dataset(database: Path) -> None:
    config = database.parent / "run.yaml"
    config.write_text(f"source: {{sql: 'sqlite:///{database.name}', table: adult, schema: main}}\n")
    settings = load_config(config)
    assert isinstance(settings.source, SqlSource)
    assert settings.source.sql == f"sqlite:///{database}" and settings.source.db_schema == "main"
    assert settings.dataset == "adult"
    assert read_source(settings.source)[1].query == 'SELECT * FROM "main"."adult"'
    assert RunConfig(source=SqlSource(sql="sqlite:///x.db", query="SELECT 1")).dataset == "query"
    assert load_config(config, source=Path("a/b.csv")).source == Path("a/b.csv")  # --source PATH still wins
