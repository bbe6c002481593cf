"""SQL ingest at scale: a million Adult-like rows read from PostgreSQL through `flows.sources.load_table`.

`python -m benchmarks.sql_ingest --rows 1000000` starts a throwaway server (`benchmarks.postgres_server`), loads
rows sampled with replacement from data/adult.parquet (seeded) with COPY, then measures the ingest in a fresh
subprocess, so its peak RSS (`ru_maxrss`) is the reader's and the schema inference's alone. The target is a peak
under 1.5 GB: rows are streamed in chunks, never fetched all at once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.postgres_server import add_user, load_frame, running

ADULT = Path(__file__).resolve().parent.parent / "data" / "adult.parquet"
USER, PASSWORD_VAR = "bench", "SYNTHGATE_BENCH_PASSWORD"
TARGET_RSS_MB = 1536
_LOAD_ROWS = 200_000  # rows sampled and sent per COPY block, so loading never holds the million rows at once


def measure(url: str, chunk_rows: int) -> dict[str, float]:
    """Ingest the table once, in this process: wall seconds, peak RSS in MB, and the rows and columns read."""
    from flows.config import SqlSource
    from flows.sources import load_table

    started = time.perf_counter()
    table = load_table(SqlSource(sql=url, table="adult", password_env=PASSWORD_VAR, chunk_rows=chunk_rows))
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak_mb), "rows": table.source.rows,
            "columns": table.source.columns}


def adult_like(rows: int, seed: int) -> list[pd.DataFrame]:
    """`rows` rows drawn with replacement from Adult, in blocks (seeded: the same rows every run)."""
    adult = pd.read_parquet(ADULT)
    return [adult.sample(n=min(_LOAD_ROWS, rows - start), replace=True, random_state=seed + start)
            for start in range(0, rows, _LOAD_ROWS)]


def main(argv: list[str] | None = None) -> None:
    """Load the rows, measure the ingest in a subprocess, print one JSON line; exit 1 when over the target."""
    parser = argparse.ArgumentParser(description="Peak memory and time of a SQL ingest through load_table.")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)  # the subprocess's own side
    args = parser.parse_args(argv)
    if args.measure:
        sys.stdout.write(json.dumps(measure(args.measure, args.chunk_rows)) + "\n")
        return
    password = "bench-" + os.urandom(8).hex()
    with running() as server:
        add_user(server, USER, password)
        started = time.perf_counter()
        loaded = load_frame(server, "adult", adult_like(args.rows, args.seed))
        load_s = time.perf_counter() - started
        command = [sys.executable, "-m", "benchmarks.sql_ingest", "--measure", server.url(USER),
                   "--chunk-rows", str(args.chunk_rows)]
        done = subprocess.run(command, capture_output=True, text=True, check=True,
                              env={**os.environ, PASSWORD_VAR: password, "OMP_NUM_THREADS": "1"})
    result = {"rows_loaded": loaded, "load_s": round(load_s, 1), "chunk_rows": args.chunk_rows,
              **json.loads(done.stdout.strip().splitlines()[-1]), "machine": _machine(), "target_rss_mb": TARGET_RSS_MB}
    sys.stdout.write(json.dumps(result) + "\n")
    if result["peak_rss_mb"] >= TARGET_RSS_MB:
        sys.stdout.write(f"over target: peak RSS {result['peak_rss_mb']} MB >= {TARGET_RSS_MB} MB\n")
        raise SystemExit(1)


def _machine() -> str:
    memory_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:")), 0)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {memory_kb / 1024**2:.0f} GiB, " \
           f"Python {platform.python_version()}"


if __name__ == "__main__":
    main()
