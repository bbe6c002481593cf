"""A PostgreSQL server for the SQL tests: started on 127.0.0.1 in a temporary folder, stopped afterwards.

The server itself is `benchmarks.postgres_server`'s (one copy, shared with `benchmarks.sql_ingest`). Skipped when
PostgreSQL is not installed, unless SYNTHGATE_POSTGRES=required (as `make test` sets), when it fails;
SYNTHGATE_POSTGRES=skip skips it even when installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from benchmarks.postgres_server import BINARIES, Server, find_bin, running

ENV = "SYNTHGATE_POSTGRES"


def _unavailable() -> str | None:
    """Why the server cannot run here, or None when it can (a failure when it is required)."""
    mode = os.environ.get(ENV, "")
    if mode == "skip":
        return f"{ENV}=skip"
    if find_bin() is not None:
        return None
    if mode == "required":
        pytest.fail(f"{ENV}=required but PostgreSQL is not installed (no {BINARIES}/pg_ctl)")
    return f"PostgreSQL is not installed (apt-get install postgresql); {ENV}=required makes this a failure"


@pytest.fixture(scope="module", name="postgres")
def postgres_server() -> Iterator[Server]:
    """A running server for the module's tests; its superuser's password is `Server.password`."""
    reason = _unavailable()
    if reason is not None:
        pytest.skip(reason)
    with running() as server:
        yield server
