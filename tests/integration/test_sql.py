"""SQL sources end to end: `synthgate run --config` on SQLite and on a real PostgreSQL server.

The PostgreSQL password is given through `password_env` and must never be written anywhere: not in the release,
not in Prefect's home (its database holds the runs' parameters and logs), not on stdout or stderr.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.postgres_server import Server, add_user, load_frame
from flows.cli import EXIT_BAD_INPUT
from flows.config import SqlSource
from flows.sources import plan_source, read_source
from tests.integration.postgres import postgres_server  # noqa: F401 (the `postgres` fixture)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Sq1-pa$$ w0rd@synthgate"  # URL-unsafe characters: every spelling of it must stay hidden
PASSWORD_VAR = "SYNTHGATE_TEST_DB_PASSWORD"


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_parquet(ROOT / "data" / "adult.parquet").head(600)


def run_cli(home: Path, config: Path, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """`synthgate run --config` from a clean shell whose Prefect home is `home` (so every file it writes is seen)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "OMP_NUM_THREADS": "1"}
    if password is not None:
        env[PASSWORD_VAR] = password
    command = [sys.executable, "-c", "from flows.cli import main; main()", "run", "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)


def write_config(path: Path, source: str) -> Path:
    path.write_text(f"source: {source}\ngenerator: gmm\nout: out\nseed: 0\n")
    return path


def only_manifest(out: Path, dataset: str) -> dict[str, object]:
    manifests = list(out.glob(f"{dataset}/*/*/manifest.json"))
    assert len(manifests) == 1, manifests
    return dict(json.loads(manifests[0].read_text()))


@pytest.mark.slow
def test_a_sqlite_query_is_released_with_its_provenance(tmp_path: Path, adult: pd.DataFrame) -> None:
    with sqlite3.connect(tmp_path / "shop.db") as connection:
        adult.to_sql("adult", connection, index=False)
    connection.close()
    query = "SELECT * FROM adult WHERE age >= 18"
    config = write_config(tmp_path / "run.yaml", f"{{sql: 'sqlite:///shop.db', query: '{query}', chunk_rows: 64}}")
    done = run_cli(tmp_path / "home", config)
    assert done.returncode == 0, done.stdout + done.stderr
    source = only_manifest(tmp_path / "out", "query")["source"]
    assert isinstance(source, dict)
    expected = read_source(SqlSource(sql=f"sqlite:///{tmp_path / 'shop.db'}", query=query))[1]
    assert (source["format"], source["query"], source["uri"]) == ("sql", query, f"sqlite:///{tmp_path / 'shop.db'}")
    assert (source["rows"], source["sha256"]) == (expected.rows, expected.sha256)


@pytest.fixture(scope="module")
def adult_on_postgres(postgres: Server, adult: pd.DataFrame) -> Server:
    add_user(postgres, "reader", PASSWORD)
    load_frame(postgres, "adult", adult)
    with postgres.connect() as connection:
        connection.execute("CREATE TABLE typed AS SELECT 1.25::numeric(10, 2) AS price, DATE '2024-02-29' AS day, "
                           "TIMESTAMPTZ '2024-02-29 10:30:00+00' AS at, TRUE AS flag, TIME '07:45' AS opens, "
                           "'x'::bytea AS raw")
    return postgres


@pytest.mark.slow
def test_postgres_types_map_to_plain_frame_types(adult_on_postgres: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_VAR, PASSWORD)
    frame, info = read_source(SqlSource(sql=adult_on_postgres.url("reader"), table="typed", password_env=PASSWORD_VAR))
    assert frame.to_dict("records") == [{"price": 1.25, "day": pd.Timestamp("2024-02-29"),
                                         "at": pd.Timestamp("2024-02-29 10:30:00", tz="UTC"), "flag": True,
                                         "opens": "07:45:00.000000"}]
    assert info.dropped == {"raw": "raw bytes (binary) cannot be learned"}
    assert PASSWORD not in info.uri and ":***@" in info.uri


@pytest.mark.slow
def test_a_postgres_table_streams_as_it_reads_and_its_plan_holds_no_password(
    adult_on_postgres: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_VAR, PASSWORD)
    for table in ("adult", "typed"):
        spec = SqlSource(sql=adult_on_postgres.url("reader"), table=table, password_env=PASSWORD_VAR, chunk_rows=64)
        frame, info = read_source(spec)
        plan = plan_source(spec)
        assert PASSWORD.encode() not in pickle.dumps(plan)  # what is shipped to a worker: it looks the password up
        reader = plan.parts[0].chunks(100)
        pd.testing.assert_frame_equal(pd.concat(list(reader), ignore_index=True), frame)
        assert plan.info([reader.facts]) == info


@pytest.mark.slow
def test_a_postgres_table_is_released_and_the_password_is_written_nowhere(
    adult_on_postgres: Server, adult: pd.DataFrame, tmp_path: Path
) -> None:
    source = f"{{sql: '{adult_on_postgres.url('reader')}', table: adult, password_env: {PASSWORD_VAR}}}"
    config = write_config(tmp_path / "run.yaml", source)
    home = tmp_path / "home"
    done = run_cli(home, config, PASSWORD)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = only_manifest(tmp_path / "out", "adult")
    source_record = manifest["source"]
    assert isinstance(source_record, dict)
    assert (source_record["format"], source_record["query"], source_record["rows"]) == ("sql", 'SELECT * FROM "adult"',
                                                                                       len(adult))
    assert source_record["uri"] == adult_on_postgres.url("reader").replace("reader@", "reader:***@")
    files = [p for folder in (tmp_path / "out", home) for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)  # Prefect's database (runs, parameters, logs) is searched too
    spellings = [PASSWORD.encode(), PASSWORD.replace("$", "%24").replace(" ", "%20").replace("@", "%40").encode()]
    leaks = [p for p in files if any(s in p.read_bytes() for s in spellings)]
    assert leaks == []
    assert PASSWORD not in done.stdout + done.stderr


@pytest.mark.slow
def test_a_wrong_postgres_password_is_exit_2_in_one_line_without_it(adult_on_postgres: Server, tmp_path: Path) -> None:
    source = f"{{sql: '{adult_on_postgres.url('reader')}', table: adult, password_env: {PASSWORD_VAR}}}"
    config = write_config(tmp_path / "run.yaml", source)
    wrong = PASSWORD + "-wrong"
    done = run_cli(tmp_path / "home", config, wrong)
    assert done.returncode == EXIT_BAD_INPUT, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and 'password authentication failed for user "reader"' in lines[0], done.stderr
    assert wrong not in done.stdout + done.stderr and PASSWORD not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()

