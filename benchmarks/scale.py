"""The scaling table: a release of Adult-like tables of growing size, wall time per stage and peak memory.

    python -m benchmarks.scale --rows 100000 1000000 10000000 [--data DIR] [--generator NAME]

For each size: the table (`benchmarks.big`, seeded, written once as a folder of Parquet parts under `--data` and
reused), then `synthgate run` on it in a child process under `/usr/bin/time -v` (its peak RSS is the largest
resident size of the run's own process; the Prefect server it starts is a process of its own). The stage times
come from the run's manifest. Beside them, what loading the same table into pandas would take (a 100,000-row
slice measured deep, scaled): the memory a run would need without the bounded pipeline.
Results stream to `benchmarks/results/<time>-scale.jsonl`; a markdown table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from benchmarks.big import write_adult_like

log = logging.getLogger("benchmarks.scale")
RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("ingest_s", "fit_s", "sample_s", "validate_s", "privacy_s", "total_s")
_PANDAS_SLICE = 100_000


def main(argv: list[str] | None = None) -> None:
    """Run the scaling table for each `--rows` size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", required=True, help="table sizes to release")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "synthgate-big",
                        help="where the generated tables are kept (reused across runs)")
    parser.add_argument("--generator", default=None, help="generator to run (default: the product's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the generated tables afterwards")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    RESULTS.mkdir(exist_ok=True)
    results = RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-scale.jsonl"
    rows_out = []
    for rows in args.rows:
        row = measure(rows, args.data, args.generator, args.seed)
        rows_out.append(row)
        with results.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        if not args.keep:
            shutil.rmtree(args.data / _name(rows), ignore_errors=True)
    sys.stdout.write(markdown(rows_out) + f"\nresults: {results}\n")


def measure(rows: int, data: Path, generator: str | None, seed: int) -> dict[str, Any]:
    """One size: generate (or reuse) the table, release it in a child process, read its manifest and peak RSS."""
    table = data / _name(rows)
    generated_s = None
    if not table.exists():
        start = time.perf_counter()
        write_adult_like(table, rows, seed=seed)
        generated_s = time.perf_counter() - start
    out = Path(tempfile.mkdtemp(prefix="synthgate-scale-"))
    command = [sys.executable, "-c", "from flows.cli import main; main()", "run", "--source", str(table),
               "--out", str(out), "--name", "big", "--seed", str(seed)]
    if generator is not None:
        command += ["--generator", generator]
    log.info("releasing %d rows: %s", rows, " ".join(command))
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    wall = time.perf_counter() - start
    try:
        manifest = _manifest(out / "big")
        peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        return {
            "rows": rows,
            "exit": done.returncode,
            "wall_s": round(wall, 1),
            "peak_rss_mb": round(int(peak.group(1)) / 1024) if peak else None,
            "generated_s": None if generated_s is None else round(generated_s, 1),
            "parquet_mb": round(sum(f.stat().st_size for f in table.rglob("*.parquet")) / 2**20),
            "pandas_mb": round(pandas_bytes(table) / 2**20),
            "passed": manifest.get("gate", {}).get("passed"),
            "failed": [check["name"] for check in manifest.get("gate", {}).get("checks", []) if not check["passed"]],
            "generator": (manifest.get("generator") or {}).get("name"),
            "split": manifest.get("split"),
            "sampling": manifest.get("sampling"),
            **{stage: (manifest.get("timings") or {}).get(stage) for stage in STAGES},
            "stderr_tail": done.stderr[-2000:] if done.returncode not in (0, 3) else None,
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def pandas_bytes(table: Path) -> float:
    """What the whole table would take as one pandas frame: a slice measured deep, scaled to every row."""
    dataset = ds.dataset(table, format="parquet")
    rows = dataset.count_rows()
    head = dataset.head(min(_PANDAS_SLICE, rows)).to_pandas()
    return float(head.memory_usage(deep=True).sum()) * rows / len(head)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The scaling table as markdown: one line per size."""
    header = ("| rows | exit | published | generator | fitted on | ingest s | fit s | sample s | validate s "
              "| privacy s | run total s | wall s | peak RSS MB | Parquet MB | as one pandas frame MB |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        fitted = (row.get("split") or {}).get("fitted_rows")
        cells = [f"{row['rows']:,}", row["exit"], row["passed"], row["generator"], f"{fitted:,}" if fitted else "—",
                 *(row.get(stage) for stage in STAGES), row["wall_s"], row["peak_rss_mb"], row["parquet_mb"],
                 row["pandas_mb"]]
        lines.append("| " + " | ".join("—" if cell is None else str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def _manifest(dataset: Path) -> dict[str, Any]:
    found = sorted(dataset.glob("*/*/manifest.json"))
    return json.loads(found[-1].read_text()) if found else {}


def _name(rows: int) -> str:
    return f"adult-like-{rows}"


if __name__ == "__main__":
    main()
