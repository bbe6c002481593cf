"""Sampling throughput: rows per second of each generator, fitted once at its defaults on a benchmark table.

    python -m benchmarks.throughput --dataset adult --rows 200000

The harness times one sample as large as the real table, where fixed costs (decoding set-up, regenerating
id columns) weigh; this times a large sample, best of `--repeats`, decoded to a DataFrame in the source's
dtypes: what a user asking for many rows gets. ddpm and rbm sample by iterating a chain (reverse diffusion,
Gibbs sweeps), are exempt from the throughput target and left out by default.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from benchmarks.datasets import DATASETS, load
from benchmarks.run import environment
from flows.split import split_holdout
from generators.registry import GENERATORS, create
from generators.tabular.inference import infer_schema

log = logging.getLogger("benchmarks")
CHAINED = ("ddpm", "rbm")  # sampled by iterating a chain: exempt from the throughput target


def measure(dataset: str, systems: list[str], rows: int, repeats: int, seed: int) -> list[dict[str, float | str]]:
    """Fit each system on the table's training part, then time `rows` sampled rows `repeats` times."""
    frame, schema = infer_schema(load(dataset, None, seed).frame)
    train, _ = split_holdout(frame, 0.2, seed)
    results: list[dict[str, float | str]] = []
    for name in systems:
        started = time.perf_counter()
        model = create(name, seed=seed).fit(train, schema)
        fit_s = time.perf_counter() - started
        times = []
        for repeat in range(repeats):
            started = time.perf_counter()
            model.sample(rows, seed=repeat)
            times.append(time.perf_counter() - started)
        best = min(times)
        results.append({"system": name, "fit_s": fit_s, "sample_s": best, "rows_per_s": rows / best})
        log.info("%s: fit %.1f s, %d rows in %.3f s (%.0f rows/s)", name, fit_s, rows, best, rows / best)
    return results


def markdown(results: list[dict[str, float | str]], dataset: str, rows: int, command: str) -> str:
    """A throughput run as markdown: machine, table, command, and each generator's rows/s against the target."""
    env = environment()
    lines = [
        f"## Sampling throughput {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {env['cores']} cores, GPU: {env['gpu']}, torch threads {torch.get_num_threads()}. "
        f"Table: {dataset}, generators fitted at their defaults on its training part; "
        f"{rows:,} rows sampled and decoded to a DataFrame, best of the repeats.",
        f"Command: `{command}`",
        "",
        "| generator | fit s | sample s | rows/s | target ≥ 200,000 rows/s |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        rate = float(r["rows_per_s"])
        lines.append(
            f"| {r['system']} | {float(r['fit_s']):.1f} | {float(r['sample_s']):.3f} | {rate:,.0f} | "
            f"{'met' if rate >= 200_000 else 'missed'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure each chosen generator's sampling throughput and append the results to the markdown file."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="adult")
    default = ",".join(n for n in GENERATORS if n not in CHAINED)
    parser.add_argument("--systems", default=default, help=f"comma-separated generators (default: {default})")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, default=Path(__file__).resolve().parent.parent / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("flows", "generators", "validation", "privacy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    unknown = sorted(set(args.systems.split(",")) - set(GENERATORS))
    if unknown:
        parser.error(f"unknown generator(s): {', '.join(unknown)}")
    results = measure(args.dataset, args.systems.split(","), args.rows, args.repeats, args.seed)
    command = "python -m benchmarks.throughput " + " ".join(argv if argv is not None else sys.argv[1:])
    with args.markdown.open("a") as handle:
        handle.write("\n" + markdown(results, args.dataset, args.rows, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
