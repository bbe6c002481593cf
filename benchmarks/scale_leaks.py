"""Planted privacy leaks among a million synthetic rows: the bounded checks of a big release still refuse them.

    python -m benchmarks.scale_leaks --rows 1000000

The release path of `flows.synthesize`, step by step as library calls: an Adult-like table (`benchmarks.big`) read
in chunks into its bounded training and holdout samples (`plan_ingest`, `stage_part`, `assemble`); the training
sample is what a model would be fitted on. The honest synthetic table is as many fresh rows of the same
distribution (the generator's rows beyond the table's: no model's error, and no row of the table), written in parts
of `shard_rows` as a release's shards are. Then each case rewrites the parts and the run's own checks judge them
(`rows_to_check`, the audits on seeded samples, the exact copies counted on every row, the outlier check against
every part; `judge`):

- `honest`: the fresh rows as they are;
- `copies5`: 5 % of the synthetic rows replaced by copies of training rows the model saw;
- `near_copies1`: 1 % replaced by such rows with 1 %-of-SD noise on every number;
- `isolated20`: the 20 most isolated training rows (as the outlier check ranks them), with that noise, in place
  of 20 synthetic rows.

A leak can only come from rows the model saw, so the plants are drawn from the training sample, as a memorising
model would emit them. Prints one line per case: the verdict, the refusing checks and the time the checks took.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.big import adult_like_chunk, write_adult_like
from flows.config import RunConfig, load_config
from flows.gate import audit_and_judge
from flows.release.publish import read_conformed
from flows.shards import CountedPart
from flows.sources.staging import Staged, assemble, plan_ingest, stage_part
from flows.steps import rows_to_check
from generators.tabular.inference import as_written
from generators.tabular.schema import Schema
from privacy.distance import PrivacyConfig, distance_evidence, row_keys

log = logging.getLogger("benchmarks.scale_leaks")
Plant = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


def main(argv: list[str] | None = None) -> None:
    """Generate the table, stage it, fit, sample, and judge each planted case."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="synthgate-leaks-") as work:
        folder = Path(work)
        table = write_adult_like(folder / "table", args.rows, seed=args.seed)
        config = load_config(None, source=table, seed=args.seed)
        staged = _stage(config, folder)
        schema = staged.schema
        paths = _fresh_parts(folder / "fresh", args.rows, config.shard_rows, args.seed, schema)
        outliers = _most_isolated(staged, paths, config)
        cases: dict[str, Plant] = {
            "honest": lambda frame, rng: frame,
            "copies5": lambda frame, rng: _replace(frame, staged.train, 0.05, rng, noise=False, schema=schema),
            "near_copies1": lambda frame, rng: _replace(frame, staged.train, 0.01, rng, noise=True, schema=schema),
            "isolated20": _isolated_plant(outliers, args.rows, args.seed, schema),
        }
        lines = [f"rows {args.rows:,}: training sample {len(staged.train):,} of {staged.train_rows:,} training rows, "
                 f"checks on samples of {config.check_rows:,} rows", "| case | verdict | refused by | checks s |",
                 "|---|---|---|---|"]
        for name, plant in cases.items():
            lines.append(_judge_case(name, paths, plant, staged, config, folder))
    sys.stdout.write("\n".join(lines) + "\n")


def _stage(config: RunConfig, folder: Path) -> Staged:
    """The table ingested as a run ingests it (`flows.sources.staging`)."""
    plan = plan_ingest(config.source, None, None, None, False, config.limits)
    parts = [stage_part(plan, index, folder / "staging") for index in plan.parts]
    return assemble(plan, parts, holdout=config.holdout, seed=config.seed, folder=folder / "staging")


def _most_isolated(staged: Staged, paths: list[Path], config: RunConfig) -> pd.DataFrame:
    """The 20 training rows the outlier check ranks most isolated, among the rows it reads."""
    checked = rows_to_check(staged, [CountedPart(path, pq.ParquetFile(path).metadata.num_rows, 0) for path in paths],
                            config)
    evidence = distance_evidence(checked.train, checked.holdout, checked.synthetic, staged.schema,
                                 config=PrivacyConfig(alpha=config.gate.alpha))
    return checked.train.iloc[evidence.isolated_rows[:20]].reset_index(drop=True)


def _fresh_parts(folder: Path, rows: int, shard_rows: int, seed: int, schema: Schema) -> list[Path]:
    """The honest synthetic table: the generator's `rows` rows after the table's, in parts as a release writes."""
    folder.mkdir(parents=True)
    paths = []
    for index, start in enumerate(range(0, rows, shard_rows)):
        frame = adult_like_chunk(rows + start, min(shard_rows, rows - start), seed)
        paths.append(folder / f"part-{index:05d}.parquet")
        pq.write_table(pa.Table.from_pandas(as_written(frame, schema), preserve_index=False), paths[-1])
    return paths


def _replace(frame: pd.DataFrame, source: pd.DataFrame, share: float, rng: np.random.Generator, *, noise: bool,
             schema: Schema) -> pd.DataFrame:
    """`share` of the part's rows replaced by training rows (with noise, or exact)."""
    at = rng.choice(len(frame), size=round(share * len(frame)), replace=False)
    rows = source.iloc[rng.integers(0, len(source), len(at))].reset_index(drop=True)
    return _placed(frame, _noisy(rows, source, rng) if noise else rows, at, schema)


def _isolated_plant(outliers: pd.DataFrame, rows: int, seed: int, schema: Schema) -> Plant:
    """Noisy copies of the outliers at 20 seeded positions of the whole table (most parts get none)."""
    positions = np.sort(np.random.default_rng(seed).choice(rows, size=len(outliers), replace=False))
    state = {"start": 0}

    def plant(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        start, state["start"] = state["start"], state["start"] + len(frame)
        inside = (positions >= start) & (positions < start + len(frame))
        if not inside.any():
            return frame
        return _placed(frame, _noisy(outliers[inside].reset_index(drop=True), outliers, rng),
                       positions[inside] - start, schema)

    return plant


def _noisy(rows: pd.DataFrame, scale_of: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The rows with every number moved by noise of 1 % of its column's standard deviation."""
    numbers = rows.select_dtypes("number").columns
    spread = scale_of[numbers].std().to_numpy()
    return rows.assign(**{name: rows[name] + rng.normal(0, 0.01 * sd, len(rows)) for name, sd in zip(numbers, spread,
                                                                                                     strict=True)})


def _placed(frame: pd.DataFrame, rows: pd.DataFrame, at: np.ndarray, schema: Schema) -> pd.DataFrame:
    """The part with `rows`, as a release writes them, in place of its rows at positions `at`."""
    written = as_written(rows, schema)
    out = frame.copy()
    for name in out.columns:
        out.loc[at, name] = written[name].to_numpy() if name in written else out.loc[at, name]
    return out


def _judge_case(name: str, paths: list[Path], plant: Plant, staged: Staged, config: RunConfig, folder: Path) -> str:
    """Plant into a copy of the parts, then run the release's checks on them; one line of result."""
    rng = np.random.default_rng(1)
    parts = list(_planted_parts(paths, plant, folder / name, staged, rng))
    start = time.perf_counter()
    checked = rows_to_check(staged, parts, config)
    verdict = audit_and_judge(checked.train, checked.holdout, checked.synthetic, staged.schema, seed=config.seed,
                              thresholds=config.gate.thresholds(), copies=checked.copies,
                              every_synthetic=checked.every_synthetic)[2]
    refused = ", ".join(check.name for check in verdict.failed) or "—"
    return (f"| {name} | {'published' if verdict.passed else 'refused'} | {refused} | "
            f"{time.perf_counter() - start:.0f} s |")


def _planted_parts(paths: list[Path], plant: Plant, folder: Path, staged: Staged,
                   rng: np.random.Generator) -> Iterator[CountedPart]:
    folder.mkdir(parents=True)
    schema: Schema = staged.schema
    for path in paths:
        frame = plant(pq.read_table(path).to_pandas(), rng)
        target = folder / path.name
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), target)
        keys = row_keys(read_conformed(target, schema.learned), schema)
        yield CountedPart(target, len(frame), staged.copies.copies_in(keys))


if __name__ == "__main__":
    main()
