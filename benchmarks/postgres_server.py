"""A throwaway PostgreSQL server on 127.0.0.1: Debian's binaries, a temporary data folder, password auth.

Started by the SQL tests' fixture (`tests/integration/postgres.py`) and by `benchmarks.sql_ingest`, and always
stopped and deleted afterwards. PostgreSQL refuses to run as root, so under root the server runs as the
unprivileged `postgres` user (created as a system user when it is missing). Every client must give a password
(scram-sha-256), so a test of a wrong password means something.
"""

from __future__ import annotations

import io
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

BINARIES = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"
_RUN_AS = "postgres"
_COPY_ROWS = 100_000  # rows per CSV block sent through COPY
_TYPES = {"i": "bigint", "u": "bigint", "f": "double precision", "b": "boolean", "M": "timestamp"}


@dataclass(frozen=True)
class Server:
    """A running server: where it listens and its superuser's password."""

    port: int
    password: str
    host: str = "127.0.0.1"

    def url(self, user: str, database: str = "postgres") -> str:
        """A SQLAlchemy URL for `user` without any password (it is given apart, as a user should)."""
        return f"postgresql+psycopg://{user}@{self.host}:{self.port}/{database}"

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommitting superuser connection, to set the server up."""
        return psycopg.connect(host=self.host, port=self.port, user=SUPERUSER, password=self.password,
                               dbname="postgres", autocommit=True)


def find_bin() -> Path | None:
    """The newest installed PostgreSQL's binaries folder (the one holding `pg_ctl`), or None."""
    found = sorted(Path("/").glob(BINARIES.lstrip("/") + "/pg_ctl"), key=lambda p: _version(p.parent.parent.name))
    return found[-1].parent if found else None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@contextmanager
def running(*, timeout: float = 60.0) -> Iterator[Server]:
    """A fresh server in a temporary folder, stopped and deleted on the way out (whatever happened)."""
    binaries = find_bin()
    if binaries is None:
        raise FileNotFoundError(f"PostgreSQL is not installed (no {BINARIES}/pg_ctl): apt-get install postgresql")
    home = Path(tempfile.mkdtemp(prefix="synthgate-postgres-"))
    data, password = home / "data", secrets.token_urlsafe(16)
    (home / "pwfile").write_text(password + "\n")
    _hand_over(home)
    _run(binaries / "initdb", "-D", str(data), "-U", SUPERUSER, "--auth=scram-sha-256",
         f"--pwfile={home / 'pwfile'}", "--encoding=UTF8", "--locale=C.UTF-8", timeout=timeout)
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home}"
    try:
        _run(binaries / "pg_ctl", "-D", str(data), "-o", options, "-l", str(home / "log"), "-w",
             "-t", str(int(timeout)), "start", timeout=timeout + 10)
        yield Server(port=port, password=password)
    finally:
        _run(binaries / "pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop", timeout=timeout, check=False)
        shutil.rmtree(home, ignore_errors=True)


def add_user(server: Server, user: str, password: str) -> None:
    """A login role with a password that may read every table of the `postgres` database."""
    with server.connect() as connection:
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user),
                                                                            sql.Literal(password)))
        connection.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(user)))


def load_frame(server: Server, table: str, frames: pd.DataFrame | Sequence[pd.DataFrame]) -> int:
    """Create `table` typed after the (first) frame and fill it with COPY, block by block; the rows written."""
    parts = [frames] if isinstance(frames, pd.DataFrame) else list(frames)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(_TYPES.get(dtype.kind, "text")))
        for name, dtype in parts[0].dtypes.items()
    )
    written = 0
    with server.connect() as connection:
        connection.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), columns))
        copy = sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv)").format(sql.Identifier(table))
        with connection.cursor() as cursor, cursor.copy(copy) as pipe:
            for part in parts:
                for start in range(0, len(part), _COPY_ROWS):
                    block = io.StringIO()
                    part.iloc[start:start + _COPY_ROWS].to_csv(block, header=False, index=False)
                    pipe.write(block.getvalue())
                written += len(part)
    return written


def _hand_over(folder: Path) -> None:
    """Under root, give the folder to the unprivileged user the server runs as (created if missing)."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(_RUN_AS)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _RUN_AS],
                       check=True, capture_output=True)
    shutil.chown(folder, _RUN_AS)
    for path in folder.iterdir():
        shutil.chown(path, _RUN_AS)


def _run(program: Path, *args: str, timeout: float, check: bool = True) -> None:
    """Run a server binary (as the unprivileged user under root); a failure raises with its own output."""
    command = [str(program), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", _RUN_AS, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{program.name} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")


def _free_port() -> int:
    """A port nothing listens on now (the server binds it right after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
