"""Calibrate the gate on tables nobody tuned it on: does it pass real unseen rows and refuse planted faults?

Real rows never trained on must pass, and planted fidelity faults and privacy leaks must be refused, each by
the check meant for it.

    python -m benchmarks.calibrate                                # all ten tables x 3 shapes x 20 seeds (hours)
    python -m benchmarks.calibrate --tables banknote,ecoli --seeds 2 --shapes thirds --jobs 2
    python -m benchmarks.calibrate --release --tables ecoli       # the default generator's release of each table

Each table (the bundled Adult and the UCI tables of `--data-dir`) is read once, as published, through
synthgate's own reader. Each seed splits its raw rows into train, holdout and a third part of real rows never
trained on, in one of the shapes `thirds`, `60/20/20` or `4000/2000/2000` (tables of 8,000 rows or more).
Every case then writes the three parts as Parquet and runs `synthgate evaluate`'s library functions on them,
so the schema is inferred from the train part exactly as a user's run would infer it:

- `honest`: the third part itself as the "synthetic" table; it should pass.
- fidelity faults planted into the third part, each column chosen by a fixed rule from the train part:
  `shuffled` (one column of the most associated pair), `merged` (a common category folded into the most
  common), `shifted` (+1 SD on the most varied number), `nulled` (30% nulls in the column with fewest nulls).
- privacy leaks planted into it, at the same size: `copy` (training rows), `copies5` (5% training rows),
  `noisy_copy` (training rows + 1%-SD noise), `near_copies1` (1% of the training rows as noisy copies),
  `isolated` (the 20 most isolated training rows as noisy copies).

One JSON line per case goes to `--out`/<UTC stamp>-calibrate.jsonl; a markdown summary (honest pass rates,
refusal rates, the checks that refused honest rows) is printed and optionally written to `--markdown`.
A crash of the gate is a finding: it is recorded as `crashed` with its one-line error and the run goes on.

`--release` runs `synthgate run` (the generator's whole release) on each table instead, in a subprocess,
and records the exit code, the failed checks from the manifest and the time.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from benchmarks.datasets import ADULT, CALIBRATION_TABLES, ROOT, calibration_tables
from flows.config import AUTO_GENERATOR, RunConfig
from flows.gate import Verdict, judge_rows
from flows.release.publish import MANIFEST, REFUSED, RELEASES
from flows.sources import read_source
from flows.steps import conform_to, read_tables
from generators.registry import GENERATORS
from generators.tabular.formats import fit_format, regenerate
from generators.tabular.inference import infer_schema
from generators.tabular.schema import ColumnKind, Schema
from privacy.distance import distance_evidence
from validation.comparison import compare_columns

log = logging.getLogger("benchmarks")
Record = dict[str, Any]  # one JSON line of the results
RESULTS = Path(__file__).resolve().parent / "results"
QUIET_LOGGERS = ("flows", "generators", "validation", "privacy", "great_expectations", "sdmetrics", "prefect")

# The split shapes: (train, holdout, third) row counts for a table of n rows, None where the shape does not fit.
SHAPES: dict[str, Callable[[int], tuple[int, int, int] | None]] = {
    "thirds": lambda n: (n - 2 * (n // 3), n // 3, n // 3),
    "60/20/20": lambda n: (n - 2 * round(0.2 * n), round(0.2 * n), round(0.2 * n)),
    "4000/2000/2000": lambda n: (4_000, 2_000, 2_000) if n >= 8_000 else None,
}
MIN_ASSOCIATION = 0.5  # a weaker pair may not be one sdmetrics counts as a trend to keep
MIN_CATEGORY_SHARE = 0.10
MAX_MODE_SHARE = 0.90  # a column whose most common value holds more is near-constant: no pair to shuffle
NULL_SHARE = 0.30
NOISE_SD = 0.01  # near-copies: Gaussian noise of 1% of each numerical column's standard deviation
COPY_SHARE = 0.05
NEAR_COPY_SHARE = 0.01
ISOLATED_ROWS = 20
RELEASE_VERDICTS = {0: "published", 3: "refused", 2: "bad input", 1: "crash"}
# Every field of a case's record; a case leaves out those that do not apply to its status.
RECORD_FIELDS = ("table", "shape", "seed", "case", "rows", "train_rows", "holdout_rows", "synthetic_rows", "status",
                 "applicable", "reason", "planted", "expected", "passed", "failed", "refused_by_expected",
                 "expected_checked", "error", "elapsed_s")


class NotApplicable(Exception):
    """The table has no column the case can plant its fault into; the message says why."""


@dataclass(frozen=True)
class Parts:
    """One seeded split of a raw table, with the schema `synthgate evaluate` infers from its train part.

    `learned` is the train part conformed to that schema: numbers as numbers.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    third: pd.DataFrame
    learned: pd.DataFrame
    schema: Schema
    seed: int


@dataclass(frozen=True)
class Plant:
    """The "synthetic" table of a case, what was planted in it, and the checks meant to refuse it.

    Each check is given by its name, or by a prefix ending in `*`; the honest case has no checks.
    """

    synthetic: pd.DataFrame
    planted: str
    expected: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pair:
    """Two learned columns, in schema order, and the strength of their real association (its absolute value)."""

    first: str
    second: str
    association: float


@dataclass(frozen=True, eq=False)
class Task:
    """One case of one seeded split of one table: what a worker process needs, the raw table included."""

    table: str
    frame: pd.DataFrame = field(repr=False)
    shape: str
    seed: int
    case: str


@dataclass(frozen=True)
class ReleaseTask:
    """One table's release by one generator: what a worker process running `run_release` needs."""

    table: str
    source: Path
    generator: str


def split(frame: pd.DataFrame, shape: str, seed: int) -> Parts:
    """Disjoint parts of the raw rows in the shape's sizes, by a seeded permutation; schema from train."""
    sizes = SHAPES[shape](len(frame))
    if sizes is None:
        raise ValueError(f"shape {shape} does not fit a table of {len(frame)} rows")
    order = np.random.default_rng(seed).permutation(len(frame))
    cuts = np.cumsum(sizes)
    train, holdout, third = (frame.iloc[np.sort(rows)].reset_index(drop=True)
                             for rows in np.split(order[: cuts[-1]], cuts[:-1]))
    learned, schema = infer_schema(train)
    return Parts(train, holdout, regenerated(third, frame, schema, seed), learned, schema, seed)


def regenerated(third: pd.DataFrame, real: pd.DataFrame, schema: Schema, seed: int) -> pd.DataFrame:
    """The third part with its id, PII and text values regenerated as every release regenerates them.

    They become fresh values of the real values' shapes, never a real one: the honest case is real unseen rows
    for the learned columns, and a patient seen twice must not turn its second visit's id into a "leak".
    """
    rng = np.random.default_rng([seed, 17])
    fresh = {}
    for spec in schema.columns:
        if not spec.kind.is_learned:
            values = regenerate(fit_format(real[spec.name], spec), len(third), rng)
            fresh[spec.name] = values.where(third[spec.name].notna().to_numpy(), None)
    return third.assign(**fresh)


def honest(parts: Parts, rng: np.random.Generator) -> Plant:
    """The third part itself, real rows never trained on: the case the gate must pass."""
    return Plant(parts.third, "real rows never trained on")


def shuffled(parts: Parts, rng: np.random.Generator) -> Plant:
    """The pair's later column (schema order) permuted: each column keeps its shape, the pair loses its trend."""
    pair = strongest_pair(parts.learned, parts.schema)
    if pair is None or pair.association < MIN_ASSOCIATION:
        raise NotApplicable(f"no pair of learned columns associated >= {MIN_ASSOCIATION}")
    third = parts.third.assign(**{pair.second: rng.permutation(parts.third[pair.second].to_numpy())})
    return Plant(third, f"shuffled {pair.second} (association {pair.association:.2f} with {pair.first})",
                 (f"fidelity.pair_trend[{pair.first}|{pair.second}]",))


def merged(parts: Parts, rng: np.random.Generator) -> Plant:
    """The largest category that is not its column's most frequent (>= 10% of train), merged into the most frequent.

    A common category is lost. The largest such category is the one a table of this size can miss least by
    chance, so the fault is as visible as the table allows.
    """
    best: tuple[float, str, Any, Any] | None = None
    for spec in parts.schema.of_kind(ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        counts = parts.train[spec.name].value_counts(normalize=True)
        if len(counts) >= 2 and counts.iloc[1] >= MIN_CATEGORY_SHARE and (best is None or counts.iloc[1] > best[0]):
            best = (float(counts.iloc[1]), spec.name, counts.index[0], counts.index[1])
    if best is None:
        raise NotApplicable(f"no categorical or boolean column with two categories of >= {MIN_CATEGORY_SHARE:.0%} "
                            "of train")
    _, name, first, second = best
    column = parts.third[name]
    return Plant(parts.third.assign(**{name: column.where(column != second, first)}),
                 f"{name}: {second!r} merged into {first!r}", (f"fidelity.category_coverage[{name}]",))


def shifted(parts: Parts, rng: np.random.Generator) -> Plant:
    """The numerical column with the most distinct training values, moved up by one training standard deviation.

    On a tie, the first such column in schema order is moved.
    """
    numbers = [spec.name for spec in parts.schema.of_kind(ColumnKind.NUMERICAL)
               if parts.learned[spec.name].std() > 0]
    if not numbers:
        raise NotApplicable("no numerical column with a positive standard deviation in train")
    name = max(numbers, key=lambda column: parts.learned[column].nunique())
    sd = float(parts.learned[name].std())
    return Plant(parts.third.assign(**{name: _numbers(parts.third[name]) + sd}), f"{name} + {sd:.4g} (1 SD)",
                 (f"fidelity.column_shape[{name}]",))


def nulled(parts: Parts, rng: np.random.Generator) -> Plant:
    """30% of the values (seeded positions) of the learned column with the fewest training nulls set to null."""
    if not parts.schema.learned:
        raise NotApplicable("no learned column")
    spec = min(parts.schema.learned, key=lambda s: int(parts.learned[s.name].isna().sum()))
    mask = np.zeros(len(parts.third), dtype=bool)
    mask[rng.choice(len(parts.third), round(NULL_SHARE * len(parts.third)), replace=False)] = True
    column = parts.third[spec.name]
    values = _numbers(column).where(~mask) if spec.kind is ColumnKind.NUMERICAL else column.astype(object).where(
        ~mask, None)
    return Plant(parts.third.assign(**{spec.name: values}), f"{spec.name}: {mask.sum()} of {len(mask)} set to null",
                 (f"fidelity.null_drift[{spec.name}]",))


def copy(parts: Parts, rng: np.random.Generator) -> Plant:
    """Training rows as the whole synthetic table, for the exact-copy check to refuse."""
    return Plant(_copies(parts, rng), "training rows as the synthetic table", ("privacy.exact_match_rate",))


def copies5(parts: Parts, rng: np.random.Generator) -> Plant:
    """The third part with `COPY_SHARE` of its rows replaced by training rows, for the exact-copy check to refuse."""
    count = min(max(1, round(COPY_SHARE * len(parts.third))), len(parts.train))
    rows = _training_rows(parts, rng.choice(len(parts.train), count, replace=False))
    return Plant(_in_place_of(parts.third, rows, rng), f"{count} synthetic rows replaced by training rows",
                 ("privacy.exact_match_rate",))


def noisy_copy(parts: Parts, rng: np.random.Generator) -> Plant:
    """Training rows with 1%-SD noise on every number, for the DCR share or the membership checks to refuse."""
    return Plant(_with_noise(_copies(parts, rng), parts, rng), "training rows + 1%-SD noise on every number",
                 ("privacy.dcr_share", "privacy.membership_*"))


def near_copies1(parts: Parts, rng: np.random.Generator) -> Plant:
    """Noisy copies of `NEAR_COPY_SHARE` of the training rows in place of third-part rows, for membership TPR."""
    count = min(max(1, round(NEAR_COPY_SHARE * len(parts.train))), len(parts.third))
    rows = _with_noise(_training_rows(parts, rng.choice(len(parts.train), count, replace=False)), parts, rng)
    return Plant(_in_place_of(parts.third, rows, rng), f"{count} training rows + 1%-SD noise in place of synthetic",
                 ("privacy.membership_tpr*",))


def isolated(parts: Parts, rng: np.random.Generator) -> Plant:
    """Noisy copies of the `ISOLATED_ROWS` most isolated training rows in place of third-part rows."""
    chosen = most_isolated(parts)[: min(ISOLATED_ROWS, len(parts.third))]
    rows = _with_noise(_training_rows(parts, chosen), parts, rng)
    return Plant(_in_place_of(parts.third, rows, rng), f"{len(rows)} most isolated training rows + 1%-SD noise",
                 ("privacy.isolated_reproduced",))


CASES: dict[str, Callable[[Parts, np.random.Generator], Plant]] = {
    "honest": honest,
    "shuffled": shuffled,
    "merged": merged,
    "shifted": shifted,
    "nulled": nulled,
    "copy": copy,
    "copies5": copies5,
    "noisy_copy": noisy_copy,
    "near_copies1": near_copies1,
    "isolated": isolated,
}


def _copies(parts: Parts, rng: np.random.Generator) -> pd.DataFrame:
    """As many training rows as the third part, drawn with replacement only when train is smaller."""
    n = len(parts.third)
    return _training_rows(parts, rng.choice(len(parts.train), n, replace=len(parts.train) < n))


def _training_rows(parts: Parts, rows: np.ndarray) -> pd.DataFrame:
    """Training rows as a leaking generator would emit them: learned columns copied, id, PII and text regenerated.

    Id, PII and text values are regenerated as every release regenerates them, so that the leak is caught by
    the checks meant for copies, not by the real identifiers no generator outputs.
    """
    return regenerated(parts.train.iloc[rows].reset_index(drop=True), parts.train, parts.schema, parts.seed)


def _with_noise(rows: pd.DataFrame, parts: Parts, rng: np.random.Generator) -> pd.DataFrame:
    """`rows` with Gaussian noise of 1% of the training SD on every numerical column, clipped to the training range.

    Other columns are kept. A near-copy that stays inside the real domain is a privacy leak only, which the
    privacy checks, not the validity ones, must catch.
    """
    noisy = {}
    for spec in parts.schema.of_kind(ColumnKind.NUMERICAL):
        real = parts.learned[spec.name]
        sd = float(np.nan_to_num(real.std()))
        moved = _numbers(rows[spec.name]) + rng.normal(0.0, NOISE_SD * sd, len(rows))
        noisy[spec.name] = moved.clip(real.min(), real.max())
    return rows.assign(**noisy)


def _in_place_of(third: pd.DataFrame, rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The third part with `rows` at seeded positions in place of its own rows (size kept, dtypes widened)."""
    together = pd.concat([third, rows], ignore_index=True)
    order = np.arange(len(third))
    order[rng.choice(len(third), len(rows), replace=False)] = len(third) + np.arange(len(rows))
    return together.iloc[order].reset_index(drop=True)


def _numbers(column: pd.Series) -> pd.Series:
    return pd.to_numeric(column, errors="coerce").astype(float)


def strongest_pair(learned: pd.DataFrame, schema: Schema) -> Pair | None:
    """The gate's own strongly associated pair (`validation.comparison`) with the largest real association.

    Only pairs whose two columns are not near-constant (most common value under 90% of train) count: shuffling
    a column that is one value almost everywhere changes too few rows to be a fault anyone could see.
    """
    spread = {spec.name: learned[spec.name].value_counts(normalize=True, dropna=False).iloc[0] < MAX_MODE_SHARE
              for spec in schema.learned}
    pairs = compare_columns(learned, learned, schema).pairs
    candidates = [(abs(c.real_association), key) for key, c in pairs.items() if all(spread[n] for n in key.split("|"))]
    if not candidates:
        return None
    association, key = max(candidates)
    first, second = key.split("|", 1)
    return Pair(first, second, association)


def most_isolated(parts: Parts) -> np.ndarray:
    """Positions in train of the training rows the gate's outlier check follows, most isolated first."""
    holdout = conform_to(parts.holdout, parts.schema, "holdout")
    third = conform_to(parts.third, parts.schema, "synthetic")
    return distance_evidence(parts.learned, holdout, third, parts.schema, seed=parts.seed).isolated_rows


def run_case(task: Task) -> Record:
    """Split, plant and judge one case; the record says what was planted and what the gate made of it."""
    started = time.perf_counter()
    record: Record = {"table": task.table, "shape": task.shape, "seed": task.seed, "case": task.case,
                              "rows": len(task.frame)}
    try:
        parts = split(task.frame, task.shape, task.seed)
        record |= {"train_rows": len(parts.train), "holdout_rows": len(parts.holdout)}
        plant = CASES[task.case](parts, np.random.default_rng([task.seed, zlib.crc32(task.case.encode())]))
        record |= {"synthetic_rows": len(plant.synthetic), "planted": plant.planted, "expected": list(plant.expected)}
        record |= {"status": "ok", "applicable": True, **outcome(plant, judge(parts, plant.synthetic))}
    except NotApplicable as reason:
        record |= {"status": "not applicable", "applicable": False, "reason": str(reason)}
    except Exception as err:  # a crash of the gate is a finding: recorded, and the run goes on
        record |= {"status": "crashed", "applicable": True, "error": _one_line(err)}
    record["elapsed_s"] = round(time.perf_counter() - started, 3)
    return record


def judge(parts: Parts, synthetic: pd.DataFrame) -> Verdict:
    """`synthgate evaluate`'s verdict on the three tables, without its figures and documents.

    The tables are read through the files it reads, in a folder deleted afterwards.
    """
    config = RunConfig(seed=parts.seed)
    with tempfile.TemporaryDirectory(prefix="synthgate-calibrate-") as folder:
        train, holdout, third = (Path(folder) / f"{role}.parquet" for role in ("train", "holdout", "synthetic"))
        for path, frame in ((train, parts.train), (holdout, parts.holdout), (third, synthetic)):
            frame.to_parquet(path, index=False)
        tables = read_tables(train, holdout, third, config)
    return judge_rows(tables.train, tables.holdout, tables.synthetic, tables.schema, seed=config.seed,
                      thresholds=config.gate.thresholds())


def outcome(plant: Plant, verdict: Verdict) -> Record:
    """The verdict, each failed check with its value and threshold, and for a planted case whether it was caught.

    For a planted case: whether a check meant for it refused it (`refused_by_expected`) and whether the gate
    ran such a check at all (`expected_checked`).
    """
    failed = [{"name": c.name, "value": _finite(c.value), "threshold": c.threshold} for c in verdict.failed]
    meant = plant.expected
    return {"passed": verdict.passed, "failed": failed,
            "refused_by_expected": any(_matches(c.name, meant) for c in verdict.failed) if meant else None,
            "expected_checked": any(_matches(c.name, meant) for c in verdict.checks) if meant else None}


def _matches(name: str, expected: Iterable[str]) -> bool:
    return any(name == e or (e.endswith("*") and name.startswith(e[:-1])) for e in expected)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _one_line(err: BaseException) -> str:
    """The error's type and first line, and the innermost line of our code it came from (a finding to chase)."""
    text = str(err).strip().splitlines()
    ours = [frame for frame in traceback.extract_tb(err.__traceback__)
            if frame.filename.startswith(str(ROOT)) and "/.venv/" not in frame.filename]
    where = f" (at {Path(ours[-1].filename).relative_to(ROOT)}:{ours[-1].lineno})" if ours else ""
    return f"{type(err).__name__}: {text[0][:240] if text else ''}{where}"


def run_release(task: ReleaseTask) -> Record:
    """`synthgate run --source TABLE --seed 0` in a subprocess, with its own Prefect home; nothing kept."""
    with tempfile.TemporaryDirectory(prefix="synthgate-calibrate-release-") as folder:
        command = [sys.executable, "-c", "from flows.cli import main; main()", "run", "--source", str(task.source),
                   "--out", folder, "--name", task.table, "--seed", "0", "--generator", task.generator]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              env={**os.environ, "PREFECT_HOME": str(Path(folder) / "prefect")})
        elapsed = time.perf_counter() - started
        manifest = _release_manifest(Path(folder) / task.table)
    gate = manifest.get("gate", {})
    failed = [{"name": c["name"], "value": c["value"], "threshold": c["threshold"]}
              for c in gate.get("checks", []) if not c["passed"]]
    errors = done.stderr.strip().splitlines() if done.returncode not in (0, 3) else []
    chosen = manifest.get("generator", {}).get("name")
    generator = task.generator if chosen in (None, task.generator) else f"{task.generator} → {chosen}"
    return {"table": task.table, "generator": generator, "rows": manifest.get("source", {}).get("rows"),
            "exit_code": done.returncode, "verdict": RELEASE_VERDICTS.get(done.returncode, f"exit {done.returncode}"),
            "quality": manifest.get("metrics", {}).get("fidelity", {}).get("quality"), "failed": failed,
            "error": errors[-1] if errors else None, "elapsed_s": round(elapsed, 1)}


def _release_manifest(dataset: Path) -> dict[str, Any]:
    """The run's manifest, published or refused; empty when the run wrote none (bad input, crash)."""
    found = sorted([*dataset.glob(f"{RELEASES}/*/{MANIFEST}"), *dataset.glob(f"{REFUSED}/*/{MANIFEST}")])
    return json.loads(found[0].read_text()) if found else {}


T = TypeVar("T")


def run_all(function: Callable[[T], Record], tasks: list[T], jobs: int) -> Iterator[Record]:
    """`function` over the tasks, in order: in this process, or in `jobs` single-threaded worker processes."""
    if jobs == 1:
        yield from map(function, tasks)
        return
    os.environ["OMP_NUM_THREADS"] = "1"  # read by torch and BLAS when a spawned worker imports them
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=quiet_libraries) as pool:
        yield from pool.map(function, tasks)


def quiet_libraries() -> None:
    """Only errors from the libraries (their warnings are in the checks' verdicts); the benchmark's own log stays."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")


def table_sources(data_dir: Path) -> dict[str, Path]:
    """Adult (bundled) and every CSV of the calibration folder, by stem."""
    return {"adult": ADULT, **calibration_tables(data_dir)}


def calibration_tasks(frames: dict[str, pd.DataFrame], shapes: list[str], seeds: int, cases: list[str]) -> list[Task]:
    """Every case of every seed of every table and shape, skipping the shapes a table has too few rows for."""
    tasks = []
    for table, frame in frames.items():
        for shape in shapes:
            if SHAPES[shape](len(frame)) is None:
                log.info("%s: %d rows, too few for the %s shape: skipped", table, len(frame), shape)
                continue
            tasks += [Task(table, frame, shape, seed, case) for seed in range(seeds) for case in cases]
    return tasks


def write_records(records: Iterable[Record], path: Path, describe: Callable[[Record], str]) -> list[Record]:
    """Append each record to the JSON lines as it comes, logging it; all of them at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    with path.open("a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            log.info("%s", describe(record))
            kept.append(record)
    return kept


def describe_case(record: Record) -> str:
    """One progress line for a finished case: its verdict and time, or why it did not run."""
    head = f"{record['table']} {record['shape']} seed {record['seed']} {record['case']}:"
    if record["status"] != "ok":
        return f"{head} {record['status']} ({record.get('reason') or record.get('error')})"
    verdict = "passed" if record["passed"] else f"refused by {', '.join(c['name'] for c in record['failed'])}"
    return f"{head} {verdict} in {record['elapsed_s']:.1f} s"


def describe_release(record: Record) -> str:
    """One progress line for a finished release: its verdict and time."""
    return f"{record['table']} x {record['generator']}: {record['verdict']} in {record['elapsed_s']:.0f} s"


def calibration_markdown(records: list[Record], seeds: int) -> str:
    """The honest pass rates and the planted cases' refusal rates per table and shape, then what lies behind them.

    That is what refused honest rows, what refused the planted cases, what was not applicable or crashed, and
    the time per case.
    """
    runs = pd.DataFrame(records).reindex(columns=list(RECORD_FIELDS))
    sections = [_rates_table(runs, seeds), _honest_refusals(runs), _planted_refusals(runs), _not_applicable(runs),
                _crashes(runs), _timings(runs)]
    return "\n\n".join(section for section in sections if section) + "\n"


def _rates_table(runs: pd.DataFrame, seeds: int) -> str:
    cases = [case for case in CASES if case in set(runs["case"])]
    lines = [f"Gate calibration, {seeds} seeded splits per table and shape. Honest: passed / runs. Planted: "
             "refused / applicable runs (refused by the check meant for it); n/a: no suitable column; "
             "crashes counted apart.", "",
             "| table | shape | train/holdout/synthetic | " + " | ".join(cases) + " |",
             "|---|---|---|" + "---|" * len(cases)]
    for (table, shape), group in runs.groupby(["table", "shape"], sort=False):
        size = "/".join(str(n) for n in SHAPES[shape](int(group["rows"].iloc[0])) or ())
        cells = [_rate_cell(group[group["case"] == case], case) for case in cases]
        lines.append(f"| {table} | {shape} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rate_cell(runs: pd.DataFrame, case: str) -> str:
    ok = runs[runs["status"] == "ok"]
    crashed = int((runs["status"] == "crashed").sum())
    crash = f" +{crashed} crashed" if crashed else ""
    if case == "honest":
        return f"{int(ok['passed'].sum())}/{len(ok)}{crash}"
    if ok.empty and not crashed:
        return "n/a"
    refused = int((~ok["passed"].astype(bool)).sum())
    return f"{refused}/{len(ok)} ({int(ok['refused_by_expected'].astype(bool).sum())}){crash}"


def _honest_refusals(runs: pd.DataFrame) -> str:
    honest_runs = runs[(runs["case"] == "honest") & (runs["status"] == "ok")]
    failed = [{"table": r.table, "shape": r.shape, "check": c["name"], "value": c["value"], "threshold": c["threshold"]}
              for r in honest_runs.itertuples() for c in r.failed]
    if not failed:
        return f"No honest run was refused ({len(honest_runs)} judged)."
    lines = ["Checks that refused honest runs (real rows never trained on):", "",
             "| table | check | honest runs refused | by shape | values (threshold) |", "|---|---|---|---|---|"]
    for (table, check), group in pd.DataFrame(failed).groupby(["table", "check"], sort=False):
        total = int((honest_runs["table"] == table).sum())
        shapes = ", ".join(f"{shape} {count}" for shape, count in group["shape"].value_counts(sort=False).items())
        values = group["value"].dropna()
        spread = "n/a" if values.empty else f"{values.min():.4g}–{values.max():.4g}"
        lines.append(f"| {table} | `{_cell(check)}` | {len(group)} of {total} | {shapes} | "
                     f"{spread} ({group['threshold'].iloc[0]:.4g}) |")
    return "\n".join(lines)


def _planted_refusals(runs: pd.DataFrame) -> str:
    planted = runs[(runs["case"] != "honest") & (runs["status"] == "ok")]
    if planted.empty:
        return ""
    lines = ["What refused the planted cases (check families, over all tables):", "",
             "| case | refused | by its check | its check ran | refusing checks (runs) |", "|---|---|---|---|---|"]
    for case in [case for case in CASES if case in set(planted["case"])]:
        group = planted[planted["case"] == case]
        per_run = pd.Series([name for failed in group["failed"]
                             for name in sorted({c["name"].split("[")[0] for c in failed})])
        top = ", ".join(f"`{name}` {count}" for name, count in per_run.value_counts().head(6).items()) or "none"
        counts = [int((~group["passed"].astype(bool)).sum()), int(group["refused_by_expected"].astype(bool).sum()),
                  int(group["expected_checked"].astype(bool).sum())]
        lines.append(f"| {case} | " + " | ".join(f"{count}/{len(group)}" for count in counts) + f" | {top} |")
    return "\n".join(lines)


def _not_applicable(runs: pd.DataFrame) -> str:
    skipped = runs[runs["status"] == "not applicable"].drop_duplicates(["table", "case", "reason"])
    if skipped.empty:
        return ""
    return "Not applicable:\n\n" + "\n".join(f"- {r.table} {r.case}: {r.reason}" for r in skipped.itertuples())


def _crashes(runs: pd.DataFrame) -> str:
    crashed = runs[runs["status"] == "crashed"]
    if crashed.empty:
        return ""
    lines = ["Crashes:", ""]
    for (case, error), group in crashed.groupby(["case", "error"], sort=False):
        first = group.iloc[0]
        lines.append(f"- {case}, {len(group)} run(s), e.g. {first['table']} {first['shape']} seed {first['seed']}: "
                     f"{error}")
    return "\n".join(lines)


def _timings(runs: pd.DataFrame) -> str:
    judged = runs[runs["status"] != "not applicable"]
    lines = ["Seconds per case (split, plant and the whole evaluate):", "",
             "| case | runs | median | max | total |", "|---|---|---|---|---|"]
    for case in [case for case in CASES if case in set(judged["case"])]:
        seconds = judged.loc[judged["case"] == case, "elapsed_s"]
        lines.append(f"| {case} | {len(seconds)} | {seconds.median():.1f} | {seconds.max():.1f} | "
                     f"{seconds.sum():.0f} |")
    return "\n".join(lines)


def release_markdown(records: list[Record]) -> str:
    """A markdown table of the releases: rows, generator, verdict, quality, failed checks (or error) and time."""
    lines = ["| table | rows | generator | verdict | quality | failed checks | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        failed = ", ".join(f"`{_cell(c['name'])}` {_number(c['value'])} ({_number(c['threshold'])})"
                           for c in r["failed"])
        detail = failed or _cell(r["error"] or "")
        lines.append(f"| {r['table']} | {r['rows'] if r['rows'] is not None else '–'} | {r['generator']} | "
                     f"{r['verdict']} | {_number(r['quality'])} | {detail} | {r['elapsed_s']:.0f} |")
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _cell(text: str) -> str:
    """Text for a markdown table cell: a pair's `a|b` would otherwise split the cell."""
    return text.replace("|", "\\|")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, every table, shape, case and generator checked, and each chosen table's source found."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default=None, help="comma-separated (default: adult and every calibration table)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--seeds", type=int, default=20, help="seeded splits per table and shape: 0 .. N-1")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes, one case per task")
    parser.add_argument("--release", action="store_true", help="each table's release by the generator instead")
    parser.add_argument("--generator", default=AUTO_GENERATOR, help="the generator of --release (default: auto)")
    parser.add_argument("--data-dir", type=Path, default=CALIBRATION_TABLES, help="folder of the calibration CSVs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON lines")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the summary to this file")
    args = parser.parse_args(argv)
    sources = table_sources(args.data_dir)
    args.tables = args.tables.split(",") if args.tables else list(sources)
    args.shapes, args.cases = args.shapes.split(","), args.cases.split(",")
    unknown = [*(set(args.tables) - set(sources)), *(set(args.shapes) - set(SHAPES)), *(set(args.cases) - set(CASES))]
    if unknown:
        parser.error(f"unknown table(s), shape(s) or case(s): {', '.join(sorted(unknown))}")
    if args.generator not in {*GENERATORS, AUTO_GENERATOR}:
        parser.error(f"unknown generator {args.generator}; known: {', '.join(sorted([*GENERATORS, AUTO_GENERATOR]))}")
    if args.jobs < 1 or args.seeds < 1:
        parser.error("--jobs and --seeds must be at least 1")
    args.sources = {table: sources[table] for table in args.tables}
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the calibration (or `--release`), record every case, and print the markdown summary."""
    args = parse_args(argv)
    quiet_libraries()
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if args.release:
        tasks = [ReleaseTask(table, source, args.generator) for table, source in args.sources.items()]
        path = args.out / f"{stamp}-calibrate-release.jsonl"
        markdown = release_markdown(write_records(run_all(run_release, tasks, args.jobs), path, describe_release))
    else:
        frames = {table: read_source(source)[0] for table, source in args.sources.items()}
        path = args.out / f"{stamp}-calibrate.jsonl"
        records = write_records(run_all(run_case, calibration_tasks(frames, args.shapes, args.seeds, args.cases),
                                        args.jobs), path, describe_case)
        markdown = calibration_markdown(records, args.seeds)
    command = "python -m benchmarks.calibrate " + " ".join(sys.argv[1:] if argv is None else argv)
    markdown += (f"\nTotal {time.perf_counter() - started:.0f} s with {args.jobs} job(s); records: {path}\n"
                 f"Command: `{command.strip()}`\n")
    print(markdown)
    if args.markdown is not None:
        args.markdown.write_text(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
