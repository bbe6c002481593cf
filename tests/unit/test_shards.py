"""Sharded sampling: the same seed and shard size give the same rows, whatever order the shards run in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.release.publish import read_conformed
from flows.shards import plan_shards, sample_parts, sample_shard
from generators.registry import create
from generators.tabular.inference import infer_schema
from privacy.distance import CopyCounts, row_keys

METADATA = {b"synthgate.release_id": b"r1"}


@pytest.fixture(scope="module")
def fitted() -> object:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=600), "c": rng.choice(["a", "b", "c"], 600)})
    conformed, schema = infer_schema(frame)
    return create("cart", {}, seed=0).fit(conformed, schema)


def test_shards_cover_the_rows_with_seeds_of_their_own() -> None:
    plan = plan_shards(1050, 250, seed=7)
    assert [shard.rows for shard in plan] == [250, 250, 250, 250, 50]
    assert len({shard.seed for shard in plan}) == 5
    assert plan == plan_shards(1050, 250, seed=7) and plan != plan_shards(1050, 250, seed=8)
    assert plan_shards(100, 250, seed=7)[0].seed == plan[0].seed  # a shard's seed depends on its index alone


def test_shards_repeat_in_any_order_and_carry_their_keys(fitted: object, tmp_path: Path) -> None:
    plan = plan_shards(900, 300, seed=1)
    forward = [sample_shard(fitted, shard, tmp_path / "a", METADATA) for shard in plan]
    backward = [sample_shard(fitted, shard, tmp_path / "b", METADATA) for shard in reversed(plan)][::-1]
    schema = fitted.encoder_.schema_
    for one, other in zip(forward, backward, strict=True):
        pd.testing.assert_frame_equal(read_conformed(one.path, schema.learned),
                                      read_conformed(other.path, schema.learned))
        np.testing.assert_array_equal(one.keys, row_keys(read_conformed(one.path, schema.learned), schema))
        assert pq.read_schema(one.path).metadata[b"synthgate.release_id"] == b"r1"
    assert not list((tmp_path / "a").glob("*.partial"))
    first, second = (read_conformed(part.path, schema.learned) for part in forward[:2])
    assert not first.equals(second)  # shards draw different rows


def test_copies_are_counted_per_part(fitted: object, tmp_path: Path) -> None:
    part = sample_shard(fitted, plan_shards(200, 200, seed=0)[0], tmp_path, METADATA)
    schema = fitted.encoder_.schema_
    rows = read_conformed(part.path, schema.learned)
    counts = CopyCounts.of(row_keys(rows.iloc[:30], schema), row_keys(rows.iloc[:0], schema))
    assert part.counted(counts).copies >= 30


def test_the_checks_sample_is_seeded_and_bounded(fitted: object, tmp_path: Path) -> None:
    parts = [sample_shard(fitted, shard, tmp_path, METADATA).path for shard in plan_shards(1000, 300, seed=0)]
    schema = fitted.encoder_.schema_
    sample = sample_parts(parts, 120, seed=0, schema=schema)
    assert len(sample) == 120
    pd.testing.assert_frame_equal(sample, sample_parts(parts, 120, seed=0, schema=schema))
    every = sample_parts(parts, 5000, seed=0, schema=schema)
    every_part = [read_conformed(path, schema.learned) for path in parts]
    pd.testing.assert_frame_equal(every, pd.concat(every_part, ignore_index=True))
