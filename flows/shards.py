"""Synthetic rows in seeded shards, each written as its own Parquet part: memory constant in the rows asked for.

Shard i samples with a seed derived from the run's seed and i alone, so the same seed and shard size give the same
rows wherever each shard runs (in this process or on a Dask worker) and in whatever order. Each shard leaves its
part (as written, with the release's provenance in its metadata, ready to be published as is), its row count and
its rows' keys (8 bytes a row: the exact-copy check counts copies of every synthetic row against every training
row). The sampled checks then read a seeded sample of the parts (`sample_parts`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flows.release.publish import PARQUET_COMPRESSION, read_conformed
from flows.split import Stream, seeded_subset, stream_seed
from generators.base import Generator, sample_seed
from generators.tabular.errors import BadInputError
from generators.tabular.inference import as_written
from generators.tabular.schema import ColumnKind, Schema
from privacy.distance import CopyCounts, row_keys

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Shard:
    """One shard of a run's synthetic rows: its place, its size and its seed.

    Shard 0's seed is None: it samples as an unsharded sampling does (with the model's own seeds), so a table
    sampled in one shard gets exactly the rows it got before shards existed.
    """

    index: int
    rows: int
    seed: int | None

    @property
    def name(self) -> str:
        """The file name of its part."""
        return f"part-{self.index:05d}.parquet"


@dataclass(frozen=True)
class ShardResult:
    """A written shard: its part and its rows' keys (for the exact-copy check over every synthetic row)."""

    path: Path
    rows: int
    keys: np.ndarray

    def counted(self, copies: CopyCounts) -> CountedPart:
        """The part with its copies of training rows counted, its keys let go."""
        return CountedPart(self.path, self.rows, copies.copies_in(self.keys))


@dataclass(frozen=True)
class CountedPart:
    """A written shard and how many of its rows copy a training row."""

    path: Path
    rows: int
    copies: int


def plan_shards(rows: int, shard_rows: int, seed: int) -> tuple[Shard, ...]:
    """`rows` split into shards of `shard_rows` (the last one shorter), each seeded from `seed` and its index."""
    if rows < 1 or shard_rows < 1:
        raise ValueError(f"rows and shard_rows must be at least 1, got {rows} and {shard_rows}")
    sizes = [min(shard_rows, rows - start) for start in range(0, rows, shard_rows)]
    return tuple(Shard(index, size, sample_seed(seed, index) if index else None) for index, size in enumerate(sizes))


def sample_shard(model: Generator, shard: Shard, folder: Path, metadata: Mapping[bytes, bytes],
                 rebalance: str | None = None) -> ShardResult:
    """Sample one shard and write it, as published, to `folder`/its name (atomically: a part is whole or absent).

    `metadata`: the release's provenance, carried in the part's schema metadata.
    """
    frame = sample_synthetic(model, shard.rows, rebalance, seed=shard.seed)
    schema = model.encoder_.schema_
    keys = row_keys(frame, schema)
    table = pa.Table.from_pandas(as_written(frame, schema), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / shard.name
    temporary = path.with_suffix(".partial")
    pq.write_table(table, temporary, compression=PARQUET_COMPRESSION)
    os.replace(temporary, path)
    log.info("shard %d: %d rows written", shard.index, shard.rows)
    return ShardResult(path, shard.rows, keys)


def sample_synthetic(model: Generator, rows: int, rebalance: str | None = None, seed: int | None = None
                     ) -> pd.DataFrame:
    """`rows` synthetic rows; with `rebalance`, each value of that column gets an equal share.

    The shares are drawn by conditional sampling (native where the model has it), then shuffled. `seed`: None for
    the model's own (its sampling seed, and for the shares its seed).
    """
    if rebalance is None:
        log.info("sampling %d synthetic rows", rows)
        return model.sample(rows, seed=seed)
    values = rebalance_values(model.encoder_.schema_, rebalance)
    seed = model.seed if seed is None else seed
    log.info("sampling %d synthetic rows balanced over %d values of '%s'", rows, len(values), rebalance)
    shares = np.full(len(values), rows // len(values)) + (np.arange(len(values)) < rows % len(values))
    seeds = np.random.SeedSequence([seed, len(values)]).generate_state(len(values))
    parts = [model.sample(int(count), seed=int(s), conditions={rebalance: value})
             for value, count, s in zip(values, shares, seeds, strict=True)]
    order = np.random.default_rng(seed).permutation(rows)
    return pd.concat(parts, ignore_index=True).iloc[order].reset_index(drop=True)


def rebalance_values(schema: Schema, column: str) -> list[object]:
    """The values a rebalanced release spreads evenly: a categorical's categories or a boolean's two."""
    if column not in schema:
        raise BadInputError(f"cannot rebalance '{column}': no such column")
    spec = schema[column]
    if spec.kind is ColumnKind.BOOLEAN:
        return [False, True]
    if spec.kind is not ColumnKind.CATEGORICAL or not spec.categories:
        raise BadInputError(f"cannot rebalance '{column}': only categorical or boolean columns can be")
    return list(spec.categories)


def sample_parts(parts: Sequence[Path], rows: int, seed: int, schema: Schema) -> pd.DataFrame:
    """A seeded sample of at most `rows` rows of the Parquet parts, in order, read through `schema` (all if fewer).

    Each part is read once, and only when the sample takes rows from it.
    """
    sizes = [pq.ParquetFile(part).metadata.num_rows for part in parts]
    wanted = seeded_subset(np.arange(sum(sizes)), rows, stream_seed(seed, Stream.CHECKED_SYNTHETIC))
    frames, start = [], 0
    for part, size in zip(parts, sizes, strict=True):
        at = wanted[(wanted >= start) & (wanted < start + size)] - start
        if len(at):
            frames.append(read_conformed(part, schema.learned).iloc[at])
        start += size
    return pd.concat(frames, ignore_index=True)


def read_parts(paths: Sequence[Path], schema: Schema) -> Iterator[pd.DataFrame]:
    """The parts one at a time, each read through `schema`: a whole synthetic table in the memory of one part."""
    for path in paths:
        yield read_conformed(path, schema.learned)
