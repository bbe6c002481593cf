"""A table read in chunks gives the run what the whole table gives it, in bounded memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.sources.staging import Staged, assemble, plan_ingest, stage_part
from flows.split import Limits, bounded_rows, holdout_positions, seeded_subset, split_holdout
from generators.tabular.errors import BadInputError
from generators.tabular.inference import infer_schema
from privacy.distance import CopyCounts, copy_excess, row_keys


def _table(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Mixed kinds whose facts change after the first chunks: a late null, a late category, a late extreme."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 90, rows),
        "income": rng.lognormal(10, 1, rows).round(2),
        "city": rng.choice(["Paris", "Lyon", "Nice"], rows),
        "member": rng.random(rows) < 0.3,
    })
    frame.loc[rows - 5, "city"] = "Brest"  # a category only the last chunk holds
    frame.loc[rows - 7, "income"] = np.nan  # a null only the last chunk holds
    frame.loc[rows - 9, "age"] = 120  # the range widens late
    return frame


def _stage(frame: pd.DataFrame, tmp_path: Path, chunk_rows: int, parts: int = 1, **limits: int) -> Staged:
    """The frame written as a CSV (one part) or a folder of Parquet parts, then ingested as a run ingests it."""
    source = tmp_path / f"table-{chunk_rows}-{parts}-{len(limits)}"
    if parts == 1:
        source = source.with_suffix(".csv")
        frame.to_csv(source, index=False)
    else:
        source.mkdir()
        for index, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
            frame.iloc[rows].to_parquet(source / f"part-{index}.parquet", index=False)
    plan = plan_ingest(source, None, None, None, False, Limits(chunk_rows=chunk_rows, **limits))
    folder = tmp_path / "run" / "staging"
    staged = [stage_part(plan, index, folder) for index in plan.parts]
    return assemble(plan, staged, holdout=0.2, seed=3, folder=folder)


def test_chunked_ingest_gives_the_whole_tables_schema_split_and_keys(tmp_path: Path) -> None:
    frame = _table()
    whole = _stage(frame, tmp_path, chunk_rows=10_000)
    chunked = _stage(frame, tmp_path, chunk_rows=400)
    in_parts = _stage(frame, tmp_path, chunk_rows=400, parts=3)
    for other in (chunked, in_parts):
        assert other.schema.names == whole.schema.names
        pd.testing.assert_frame_equal(other.train, whole.train, check_dtype=other is chunked)
        np.testing.assert_array_equal(other.copies.train_keys, whole.copies.train_keys)
    assert chunked.schema == whole.schema
    assert chunked.schema["city"].categories == ("Brest", "Lyon", "Nice", "Paris")
    assert chunked.schema["income"].nullable and chunked.schema["age"].bounds[1] == 120
    pd.testing.assert_frame_equal(chunked.train, whole.train)
    pd.testing.assert_frame_equal(chunked.holdout, whole.holdout)
    np.testing.assert_array_equal(chunked.copies.train_keys, whole.copies.train_keys)
    assert not (tmp_path / "run" / "staging").exists()  # the staged rows never outlive the ingest


def test_a_table_within_the_limits_is_split_as_a_frame_is(tmp_path: Path) -> None:
    frame = _table()
    staged = _stage(frame, tmp_path, chunk_rows=400)
    conformed, _ = infer_schema(pd.read_csv(tmp_path / "table-400-1-0.csv"))
    train, holdout = split_holdout(conformed, 0.2, 3)
    pd.testing.assert_frame_equal(staged.train, train)
    pd.testing.assert_frame_equal(staged.holdout, holdout)
    assert staged.whole and (staged.train_rows, staged.holdout_rows) == (2400, 600)


def test_the_bounded_samples_are_seeded_subsets_of_their_side(tmp_path: Path) -> None:
    frame = _table().assign(row=np.arange(3000).astype(float))
    staged = _stage(frame, tmp_path, chunk_rows=400, train_rows=500, check_rows=100)
    again = _stage(frame, tmp_path, chunk_rows=1000, train_rows=500, check_rows=100)
    train_at, holdout_at = holdout_positions(3000, 0.2, 3)
    assert len(staged.train) == 500 and set(staged.train["row"]) <= set(train_at.astype(float))
    assert len(staged.holdout) == 100 and set(staged.holdout["row"]) <= set(holdout_at.astype(float))
    assert staged.train["row"].is_monotonic_increasing
    pd.testing.assert_frame_equal(staged.train, again.train)
    assert not staged.whole and staged.train_rows == 2400
    # Exact copies are still judged against every training row, not the sample.
    assert len(staged.copies.train_keys) == 2400


def test_copies_counted_in_parts_equal_copies_counted_whole() -> None:
    frame = _table()
    _, schema = infer_schema(frame)
    train, holdout = frame.iloc[:2000], frame.iloc[2000:2600]
    synthetic = pd.concat([frame.iloc[2600:], train.iloc[:50]], ignore_index=True)
    whole = copy_excess(train, holdout, synthetic, schema, alpha=0.001)
    counts = CopyCounts.of(row_keys(train, schema), row_keys(holdout, schema))
    parts = [synthetic.iloc[:200], synthetic.iloc[200:]]
    copies = sum(counts.copies_in(row_keys(part, schema)) for part in parts)
    assert copies == 50
    assert counts.excess(copies, len(synthetic), alpha=0.001) == whole


def test_row_keys_read_values_as_written_whatever_the_frame() -> None:
    frame = pd.DataFrame({"flag": [True, False, None], "code": ["a", "b", None], "x": [1.0, 2.0, np.nan]})
    _, schema = infer_schema(frame.assign(flag=frame["flag"].astype("boolean")))
    as_text = frame.assign(flag=["True", "False", None])
    np.testing.assert_array_equal(row_keys(frame, schema), row_keys(as_text, schema))
    assert len(set(row_keys(frame, schema))) == 3
    np.testing.assert_array_equal(row_keys(frame.iloc[1:], schema), row_keys(frame, schema)[1:])


def test_a_source_without_rows_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no rows"):
        _stage(_table().iloc[:0], tmp_path, chunk_rows=400)
    assert not (tmp_path / "run" / "staging").exists()


def test_seeded_subsets_keep_order_and_repeat() -> None:
    positions = np.arange(100, 1100)
    subset = seeded_subset(positions, 50, seed=1)
    assert len(subset) == 50 and np.all(np.diff(subset) > 0)
    np.testing.assert_array_equal(subset, seeded_subset(positions, 50, seed=1))
    assert seeded_subset(positions, 5000, seed=1) is positions
    frame = pd.DataFrame({"x": range(10)})
    assert bounded_rows(frame, 20, seed=0) is frame and len(bounded_rows(frame, 4, seed=0)) == 4
