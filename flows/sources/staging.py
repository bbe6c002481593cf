"""A table of any size, read once: its schema and full-data facts, and the seeded, bounded rows a run works on.

Three steps, so that the middle one can fan out over workers (`flows.synthesize` runs it on Dask with `dask:`):

1. `plan_ingest`: the source's plan (`flows.sources.stream`: its parts, read apart) and the columns' kinds,
   decided on the table's first `Limits.chunk_rows` rows.
2. `stage_part`, once per part: its rows read in chunks and conformed to the kinds, each chunk's facts (nulls,
   ranges, categories) and its rows' keys (for the exact-copy check over every row) taken on the way. A part's
   chunks go to a local Parquet staging folder as they are read, except for a table of one part and one chunk,
   which stays in memory as it always did.
3. `assemble`: the facts joined into the schema, the seeded split of `flows.split` (by position, the same for a
   frame and for a staged table), then at most `train_rows` of the training side (what the generator is fitted on)
   and at most `check_rows` of the holdout (what the sampled checks compare with) read back, each staged chunk
   once; the staged rows are then removed.

Memory holds one chunk per worker, the keys (8 bytes a row) and the kept rows, never the table. On a table whose
sides are within the limits, the run sees every row, exactly as before these limits existed.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flows.release.publish import read_conformed
from flows.sources.stream import PartFacts, SourcePlan, plan_source
from flows.sources.table import SourceInfo
from flows.split import Limits, Stream, holdout_positions, seeded_subset, stream_seed
from generators.tabular.errors import BadInputError
from generators.tabular.inference import ChunkedInference, Facts, merged_facts
from generators.tabular.schema import Schema
from privacy.distance import CopyCounts, row_keys

log = logging.getLogger(__name__)

STAGING = "staging"  # under the run's folder: the conformed chunks of a table longer than one chunk


@dataclass(frozen=True)
class IngestPlan:
    """How a run reads its source: the source's parts and the columns' kinds (picklable: it goes to workers)."""

    source: SourcePlan
    inference: ChunkedInference
    limits: Limits
    started: float = field(default_factory=time.perf_counter)

    @property
    def parts(self) -> range:
        """The parts' indices, for `stage_part`."""
        return range(len(self.source.parts))


@dataclass(frozen=True)
class StagedPart:
    """One part of the source read and conformed: its chunks (in memory or staged), their keys and facts.

    A staged part's keys are staged too (8 bytes a row), so that neither a worker's result nor the driver holds
    two copies of every key.
    """

    chunks: tuple[pd.DataFrame | Path, ...]
    sizes: tuple[int, ...]
    keys: np.ndarray | Path
    facts: Facts | None
    read: PartFacts

    def row_keys(self) -> np.ndarray:
        """The part's rows' keys, in order."""
        return self.keys if isinstance(self.keys, np.ndarray) else np.load(self.keys)


@dataclass(frozen=True)
class Staged:
    """An ingested table, as a run uses it: the schema, the bounded rows, the split's sizes and every row's keys.

    `train`: the rows a generator is fitted on (the whole training side, or a seeded sample of `train_rows`).
    `holdout`: the holdout rows the checks read (whole, or a seeded sample of `check_rows`). `train_rows` and
    `holdout_rows`: the sizes of the split's two sides. `copies`: the keys of every training row and the count
    of real rows that repeat one, for the exact-copy check over every synthetic row.
    """

    schema: Schema
    source: SourceInfo
    train: pd.DataFrame
    holdout: pd.DataFrame
    train_rows: int
    holdout_rows: int
    copies: CopyCounts
    read_s: float

    @property
    def rows(self) -> int:
        """The table's rows."""
        return self.train_rows + self.holdout_rows

    @property
    def whole(self) -> bool:
        """Whether the run holds every row of the table (neither side sampled)."""
        return len(self.train) == self.train_rows and len(self.holdout) == self.holdout_rows


def plan_ingest(source: Any, na_values: Sequence[str] | None, overrides: dict[str, Any] | None, target: str | None,
                public_domain: bool, limits: Limits) -> IngestPlan:
    """The source's plan and the schema its first `limits.chunk_rows` rows give (bad input they show fails here).

    The parts' facts are added to that schema when they are read (`assemble`); the first rows', read again then,
    change nothing (facts are unions, minima and maxima).
    """
    plan = plan_source(source, na_values, overrides)
    head = _head(plan, limits.chunk_rows)
    inference = ChunkedInference(head, overrides, target, public_domain)
    inference.conform(head)  # the first rows' facts: a schema to check the config against before any part is read
    return IngestPlan(plan, inference, limits)


def stage_part(ingest: IngestPlan, index: int, folder: Path) -> StagedPart:
    """Read part `index` in chunks, conformed to the kinds, keyed, its facts taken; staged under `folder`.

    A table of one part that fits one chunk stays in memory; any other part's chunks are written as they are read.
    """
    reader = ingest.source.parts[index].chunks(ingest.limits.chunk_rows)
    schema = ingest.inference.schema()  # the kinds (the first rows' facts): all the keys need
    chunks: list[pd.DataFrame | Path] = []
    sizes, keys = [], []
    facts: Facts | None = None
    for number, chunk in enumerate(reader):
        frame, found = ingest.inference.read(chunk.reset_index(drop=True))
        facts = found if facts is None else merged_facts(facts, found)
        keys.append(row_keys(frame, schema))
        sizes.append(len(frame))
        chunks.append(frame)
        if number >= 1 or len(ingest.source.parts) > 1:  # more than one chunk: the part goes to disk
            chunks = [_stage(c, folder / f"part-{index:05d}-{i:05d}.parquet") if isinstance(c, pd.DataFrame) else c
                      for i, c in enumerate(chunks)]
    every_key = np.concatenate(keys) if keys else np.empty(0, np.uint64)
    if any(isinstance(chunk, Path) for chunk in chunks):
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"keys-{index:05d}.npy", every_key)
        return StagedPart(tuple(chunks), tuple(sizes), folder / f"keys-{index:05d}.npy", facts, reader.facts)
    return StagedPart(tuple(chunks), tuple(sizes), every_key, facts, reader.facts)


def assemble(ingest: IngestPlan, parts: Sequence[StagedPart], *, holdout: float, seed: int, folder: Path) -> Staged:
    """The staged parts as the run uses them (see the module's docstring); the staged chunks are removed after."""
    try:
        for part in parts:
            if part.facts is not None:
                ingest.inference.add(part.facts)
        schema = ingest.inference.schema()
        info = ingest.source.info([part.read for part in parts])
        every_key = np.concatenate([part.row_keys() for part in parts])
        if not len(every_key):
            raise BadInputError("the table has no rows")
        train_at, holdout_at = holdout_positions(len(every_key), holdout, seed)
        train_keys = every_key[train_at]
        train_keys.sort()  # in place: `CopyCounts` takes sorted keys as they are
        copies = CopyCounts.of(train_keys, every_key[holdout_at])
        del every_key, train_keys
        kept_train = seeded_subset(train_at, ingest.limits.train_rows, stream_seed(seed, Stream.TRAIN))
        kept_holdout = seeded_subset(holdout_at, ingest.limits.check_rows, stream_seed(seed, Stream.HOLDOUT))
        chunks = [chunk for part in parts for chunk in part.chunks]
        sizes = [size for part in parts for size in part.sizes]
        train, held = _rows_at(chunks, sizes, (kept_train, kept_holdout), schema)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    elapsed = time.perf_counter() - ingest.started
    log.info("ingested %s: %d rows in %d part(s), %.1f s; training on %d of %d rows, checking on %d of %d holdout "
             "rows", info.uri, info.rows, len(parts), elapsed, len(train), len(train_at), len(held), len(holdout_at))
    return Staged(schema, info, train, held, len(train_at), len(holdout_at), copies, elapsed)


def _head(plan: SourcePlan, rows: int) -> pd.DataFrame:
    """The table's first `rows` rows, across parts: what decides the columns' kinds."""
    frames: list[pd.DataFrame] = []
    held = 0
    for part in plan.parts:
        for chunk in part.chunks(rows):
            frames.append(chunk.iloc[: rows - held])
            held += len(frames[-1])
            if held >= rows:
                return pd.concat(frames, ignore_index=True)
    if not held:
        raise BadInputError("the table has no rows")
    return pd.concat(frames, ignore_index=True)


def _stage(frame: pd.DataFrame, path: Path) -> Path:
    """One conformed chunk as a Parquet file of the staging folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def _rows_at(chunks: Sequence[pd.DataFrame | Path], sizes: Sequence[int], wanted: Sequence[np.ndarray],
             schema: Schema) -> list[pd.DataFrame]:
    """For each sorted array of positions in `wanted`, those rows of the chunks, in order, as the schema reads them.

    One pass over the chunks whatever the number of arrays: each staged chunk is read once, and only if needed.
    """
    found: list[list[pd.DataFrame]] = [[] for _ in wanted]
    start = 0
    for chunk, size in zip(chunks, sizes, strict=True):
        inside = [positions[(positions >= start) & (positions < start + size)] - start for positions in wanted]
        if any(len(at) for at in inside):
            frame = chunk if isinstance(chunk, pd.DataFrame) else read_conformed(chunk, schema)
            for rows, at in zip(found, inside, strict=True):
                rows.append(frame.iloc[at])
        start += size
    return [pd.concat(rows, ignore_index=True) if len(rows) != 1 else rows[0].reset_index(drop=True)
            for rows in found]
