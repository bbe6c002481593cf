"""Reading sources: CSV, Parquet, folders of parts, and every unusable source as a one-line error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.ingest import load_table, read_source
from flows.split import split_holdout
from generators.schema import BadInputError


def test_csv_and_parquet_give_the_same_table(tmp_path: Path, mixed_frame: pd.DataFrame) -> None:
    frame = mixed_frame.drop(columns=["joined", "member"])
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    from_csv, info_csv = read_source(tmp_path / "t.csv")
    from_parquet, info_parquet = read_source(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_dtype=False)
    assert (info_csv.format, info_parquet.format) == ("csv", "parquet")
    assert info_csv.rows == len(frame) and info_csv.columns == frame.shape[1]
    assert info_csv.sha256 != info_parquet.sha256


def test_folder_of_parts_is_one_table(tmp_path: Path, mixed_frame: pd.DataFrame) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    mixed_frame.iloc[:150].to_parquet(parts / "part-0.parquet", index=False)
    mixed_frame.iloc[150:].to_parquet(parts / "part-1.parquet", index=False)
    table = load_table(parts)
    assert table.source.rows == len(mixed_frame)
    assert table.frame["joined"].dtype == mixed_frame["joined"].dtype


def test_the_bundled_demo_table_loads() -> None:
    table = load_table(Path(__file__).parent.parent / "data" / "adult.parquet")
    assert table.frame.shape == (32_561, 15)
    assert table.schema["class"].categories == ("<=50K", ">50K")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "source not found"),
        (b"", "source is empty"),
        (b"a,b,c\n", "has a header but no rows"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" * 20, "binary content"),
        (b"a,b,c\n1,2,3\n4,5\n", "line 3 has 2 fields, expected 3"),
        (b"a,b,c\n1,2,3\n4,5,6,7\n", "line 3 has 4 fields, expected 3"),
        (b"PAR1 not really parquet", "unreadable Parquet"),
    ],
    ids=["missing", "empty", "header-only", "binary", "short-row", "long-row", "fake-parquet"],
)
def test_unusable_sources_are_one_line_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "source.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInputError, match=message) as caught:
        load_table(path)
    assert "\n" not in str(caught.value)


def test_a_ragged_row_is_named_but_its_content_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("name,ssn\nann,123-45-6789\nbob,987-65-4321,extra\n")
    with pytest.raises(BadInputError) as caught:
        load_table(path)
    assert "987-65-4321" not in str(caught.value)


def test_split_is_seeded_disjoint_and_complete(mixed_frame: pd.DataFrame) -> None:
    train, holdout = split_holdout(mixed_frame, 0.2, seed=3)
    again, _ = split_holdout(mixed_frame, 0.2, seed=3)
    other, _ = split_holdout(mixed_frame, 0.2, seed=4)
    assert len(holdout) == 80 and len(train) == 320
    assert set(train.customer_id).isdisjoint(holdout.customer_id)
    pd.testing.assert_frame_equal(train, again)
    assert not train.customer_id.equals(other.customer_id)


def test_split_refuses_tables_too_small_to_hold_out(mixed_frame: pd.DataFrame) -> None:
    with pytest.raises(BadInputError, match="too few"):
        split_holdout(mixed_frame.head(20), 0.2, seed=0)
