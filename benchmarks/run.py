"""Benchmark runner: datasets x systems, each pair in its own forked process, scored by one code path.

    python -m benchmarks.run --mode quick            # make bench: subsampled tables, capped peers
    python -m benchmarks.run --mode full             # make bench-full: full tables, peers at defaults
    python -m benchmarks.run --mode full --calibration --systems auto,sdv-gaussiancopula,sdv-tvae
                                                     # the 9 UCI calibration tables, the default vs SDV

Each pair runs in a fork of this process (imports paid once, peak memory measured per pair, a crash or
timeout recorded instead of ending the run). Every table also gets its two references, the ceiling (its real
unseen rows) and the floor (its columns resampled independently), scored by the same code in the same run.
Results stream to JSON lines under benchmarks/results/;
at the end a markdown table is appended to BENCHMARKS.md and a quality-vs-fit-time plot saved beside
the JSON lines.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.datasets import DATASETS, BenchTable, calibration_tables, load
from benchmarks.report import append_markdown, plot
from benchmarks.systems import CEILING, REFERENCES, SDV_PEERS, System, all_systems, reference_rows
from flows.split import split_holdout
from generators.tabular.inference import infer_schema
from privacy.distance import evaluate_privacy
from validation.c2st import classifier_two_sample
from validation.fidelity import evaluate_diagnostic, evaluate_fidelity
from validation.utility import evaluate_utility

log = logging.getLogger("benchmarks")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Mode:
    """A benchmark mode: rows and timeout per pair, the peers it runs, our generators' budgets and table options.

    `capped`: non-default training budgets of our generators in this mode (the peers' caps are their own
    systems, e.g. sdv-ctgan-capped); `--systems` names run at their defaults unless listed here. `tables`:
    options of the tables' builders (sdmetrics' pair trends cost ~5 ms a column pair, whatever the rows:
    the 120-column table's 7,140 pairs take 36 s to score per system, its 40-column form's 780 pairs 4 s).
    """

    rows: int | None
    peers: tuple[str, ...]
    timeout_s: float
    capped: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)


# A quick run checks that everything runs and roughly where it stands, in minutes: the iterative models'
# training is capped at a fraction of their default budget, as the peer's CTGAN is at 10 epochs.
QUICK_CAPS: dict[str, dict[str, Any]] = {
    "vae": {"steps": 400},
    "autoencoder": {"steps": 500},
    "rbm": {"steps": 500},
    "gan": {"steps": 120},
    "ddpm": {"steps": 100},
}
MODES = {
    "quick": Mode(
        rows=1_000,
        peers=("sdv-gaussiancopula", "sdv-ctgan-capped"),
        timeout_s=120,
        capped=QUICK_CAPS,
        tables={"wide": {"width": 40}},
    ),
    "full": Mode(rows=None, peers=("sdv-gaussiancopula", "sdv-ctgan", "sdv-tvae"), timeout_s=3_600),
}


def evaluate_pair(table: BenchTable, system: System, seed: int) -> dict[str, Any]:
    """Fit, sample as many rows as the real table, and score: the one evaluation every system gets.

    The C2ST compares the training part with as many synthetic rows as the holdout holds (at most 10,000), for
    every system alike, so the ceiling (the holdout itself) is measured on the same footing. The ceiling has no
    privacy or utility figures: its rows are the holdout those measures compare against.
    """
    frame, schema = infer_schema(table.frame, target=table.target)
    train, holdout = split_holdout(frame, 0.2, seed)
    started = time.perf_counter()
    fitted = None if system.family == "reference" else system.fit(train, schema, seed)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    synthetic = reference_rows(system.name, train, holdout, len(frame), seed) if fitted is None else fitted.sample(
        len(frame))
    sample_s = time.perf_counter() - started
    fidelity = evaluate_fidelity(train, synthetic, schema)
    c2st = classifier_two_sample(train, synthetic, schema, rows=min(10_000, len(holdout)), seed=seed)
    row: dict[str, Any] = {
        "fit_s": fit_s,
        "sample_s": sample_s,
        "sample_rows": len(synthetic),
        "quality": fidelity.quality,
        "column_shapes": fidelity.column_shapes,
        "column_pair_trends": fidelity.column_pair_trends,
        "diagnostic": evaluate_diagnostic(train, synthetic, schema),
        "c2st_auc": c2st.auc,
        "c2st_auc_ci": list(c2st.auc_ci),
        "c2st_rows": c2st.rows,
        "c2st_telling": dict(list(c2st.importance.items())[:3]),
        **({"chosen": fitted.chosen} if fitted is not None and fitted.chosen else {}),
        "truths": [
            {"name": t.name, "planted": t.planted, "real": t.statistic(train), "synthetic": t.statistic(synthetic)}
            for t in table.truths
        ],
    }
    if system.name == CEILING:
        return row
    privacy = evaluate_privacy(train, holdout, synthetic, schema)
    row |= {
        "dcr_share": privacy.dcr_share,
        "exact_match_rate": privacy.exact_match_rate,
        "holdout_exact_match_rate": privacy.holdout_exact_match_rate,
    }
    if table.target is not None:
        utility = evaluate_utility(train, holdout, synthetic, schema, table.target, seed)
        row |= {
            "utility_metric": utility.metric,
            "utility_real": utility.real_score,
            "utility_synthetic": utility.synthetic_score,
        }
    return row


def _child(conn: Connection, table: BenchTable, system: System, seed: int, memory_gb: float) -> None:
    limit = int(memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # a blow-up fails this pair, not the machine
    try:
        row = {"status": "ok", **evaluate_pair(table, system, seed)}
    except BaseException as error:  # recorded in the results: the run goes on with the next pair
        row = {
            "status": "failed",
            "error": f"{type(error).__name__}: {error}"[:300],
            "trace": traceback.format_exc()[-2000:],
        }
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send(row)
    conn.close()


def run_pair(table: BenchTable, system: System, seed: int, timeout_s: float, memory_gb: float) -> dict[str, Any]:
    """One pair in a forked child, killed at `timeout_s`."""
    receive, send = mp.get_context("fork").Pipe(duplex=False)
    child = mp.get_context("fork").Process(target=_child, args=(send, table, system, seed, memory_gb))
    started = time.perf_counter()
    child.start()
    send.close()
    row: dict[str, Any]
    if receive.poll(timeout_s):
        try:
            row = receive.recv()
        except EOFError:
            row = {"status": "failed", "error": "the process died (killed for memory?)"}
    else:
        row = {"status": "timeout", "error": f"no result within {timeout_s:.0f} s"}
    child.join(5)
    if child.is_alive():
        child.kill()
        child.join()
    if child.exitcode not in (0, None) and row.get("status") == "ok":
        row["exit_code"] = child.exitcode
    return {
        "dataset": table.name,
        "rows": len(table.frame),
        "columns": table.frame.shape[1],
        "system": system.name,
        "family": system.family,
        "params": system.params,
        "wall_s": time.perf_counter() - started,
        **row,
    }


def environment() -> dict[str, Any]:
    """What a reader needs to compare runs: the machine and the versions."""
    from importlib import metadata

    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    versions = {}
    for package in ("synthgate", "torch", "sdmetrics", "sdv", "pandas", "scikit-learn"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cores": os.cpu_count(),
        "gpu": gpu,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every dataset x system pair of the mode, stream the rows to JSON lines, and append the markdown."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    calibration = calibration_tables()
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: " + ", ".join(DATASETS)
                        + " or a calibration table: " + (", ".join(calibration) or "(no calibration folder here)"))
    parser.add_argument("--calibration", action="store_true",
                        help="every calibration table (real UCI tables, benchmarks.calibrate's) instead of --datasets")
    parser.add_argument("--systems", default=None, help="comma-separated (default: every generator + the mode's peers)")
    parser.add_argument("--rows", type=int, default=None, help="subsample each table to this many rows")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gb", type=float, default=16.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--markdown", type=Path, default=RESULTS.parent.parent / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("flows", "generators", "validation", "privacy", "sdv", "SingleTableSynthesizer", "rdt", "copulas"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    mode = MODES[args.mode]
    systems = all_systems() | {name: System(name, "reference") for name in REFERENCES}
    for name, params in mode.capped.items():
        systems[name] = replace(systems[name], params=params)
    wanted = args.systems.split(",") if args.systems else [n for n, s in systems.items() if s.family == "synthgate"]
    if not args.systems:
        wanted += list(mode.peers)
    wanted = list(REFERENCES) + [n for n in wanted if n not in REFERENCES]  # every table's ceiling and floor
    if args.calibration and not calibration:
        parser.error("--calibration: no calibration folder on this machine (benchmarks.datasets.CALIBRATION_TABLES)")
    datasets = list(calibration) if args.calibration else args.datasets.split(",")
    unknown = sorted(set(wanted) - set(systems)) + sorted(set(datasets) - set(DATASETS) - set(calibration))
    if unknown:
        parser.error(f"unknown system(s) or dataset(s): {', '.join(unknown)}")
    if importlib.util.find_spec("sdv") is None:
        skipped = [n for n in wanted if n in SDV_PEERS]
        if skipped:
            log.warning("SDV is not installed (pip install -e '.[bench]'): skipping %s", ", ".join(skipped))
        wanted = [n for n in wanted if n not in SDV_PEERS]

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / f"{stamp}-{args.mode}.jsonl"
    rows = args.rows if args.rows is not None else mode.rows
    timeout = args.timeout if args.timeout is not None else mode.timeout_s
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []
    for dataset in datasets:
        table = load(dataset, rows, args.seed, **mode.tables.get(dataset, {}))
        for name in wanted:
            log.info("%s x %s (%d rows) ...", dataset, name, len(table.frame))
            row = run_pair(table, systems[name], args.seed, timeout, args.memory_gb)
            row["run"] = stamp
            results.append(row)
            with results_path.open("a") as handle:
                handle.write(json.dumps(row, default=str) + "\n")
            log.info("  %s: %s", row["status"], _summary(row))
    figure = plot(results, results_path.with_suffix(".png"))
    append_markdown(args.markdown, results, environment(), command.strip(), args.mode, results_path, figure)
    log.info("results: %s; table appended to %s", results_path, args.markdown)
    return 0


def _summary(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return str(row.get("error"))
    return f"fit {row['fit_s']:.1f} s, quality {row['quality']:.3f}, C2ST AUC {row['c2st_auc']:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
