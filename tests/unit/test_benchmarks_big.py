"""The Adult-like table generator: reproducible, chunk-independent, independent rows, Adult's schema and shape."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from benchmarks import big
from benchmarks.big import adult_like_chunk, write_adult_like
from benchmarks.datasets import ADULT

ROWS = 200_000


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    """The real table, with Adult's `?` as the nulls the generator writes."""
    return pd.read_parquet(ADULT).replace({"?": None})


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return adult_like_chunk(0, ROWS, seed=0)


def test_same_seed_same_rows_and_another_seed_other_rows() -> None:
    first = adult_like_chunk(0, 5_000, seed=7)
    pd.testing.assert_frame_equal(first, adult_like_chunk(0, 5_000, seed=7))
    assert not first.equals(adult_like_chunk(0, 5_000, seed=8))


def test_chunking_does_not_change_rows(table: pd.DataFrame) -> None:
    cuts = [0, 1, 65_535, 70_001, 131_072, 150_000]
    pieces = [adult_like_chunk(a, b - a, seed=0) for a, b in itertools.pairwise(cuts)]
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), table.iloc[:150_000])
    middle = adult_like_chunk(123_456, 1_000, seed=0)
    pd.testing.assert_frame_equal(middle, table.iloc[123_456:124_456].reset_index(drop=True))


def test_rows_repeat_only_as_rarely_as_independent_draws_do(table: pd.DataFrame) -> None:
    assert table.duplicated().mean() < 1e-4  # a few per million rows (the real Adult: 24 in 32,561)


def test_points_are_independent_uniforms_not_a_lattice() -> None:
    """Counts of 2**16 points in 2**10 equal cells vary as Poisson counts do (a lattice's would not vary at all).

    A stratified sample spreads rows more evenly than a model's independent draws, which the gate's nearest-
    neighbour checks read as a leak even in rows drawn from the network itself.
    """
    points = big._points(0, 2**16, seed=3)
    counts = np.bincount(np.floor(points * 2**10).astype(int), minlength=2**10)
    assert 0.8 < counts.var() / counts.mean() < 1.2
    assert points.min() >= 0.0 and points.max() < 1.0


def test_columns_types_and_labels_are_adults(table: pd.DataFrame, adult: pd.DataFrame) -> None:
    assert list(table.columns) == list(adult.columns)
    assert (table.dtypes == adult.dtypes).all()
    for name in big.LABELS:
        assert set(table[name].dropna()) == set(adult[name].dropna()), name
    assert set(table.columns[table.isna().any()]) == {"workclass", "occupation", "native-country"}
    for name in ("age", "hours-per-week", "education-num"):
        assert table[name].between(adult[name].min(), adult[name].max()).all(), name


def test_marginals_are_close_to_adult(table: pd.DataFrame, adult: pd.DataFrame) -> None:
    for name in [*big.LABELS, "age", "education-num", "hours-per-week"]:
        real = adult[name].value_counts(normalize=True, dropna=False)
        fake = table[name].value_counts(normalize=True, dropna=False)
        distance = 0.5 * real.subtract(fake, fill_value=0).abs().sum()
        assert distance < 0.05, (name, distance)
    for name in ("age", "fnlwgt", "capital-gain", "capital-loss", "hours-per-week"):
        assert table[name].mean() == pytest.approx(adult[name].mean(), rel=0.05), name
    for q in (0.1, 0.5, 0.9):
        assert table["fnlwgt"].quantile(q) == pytest.approx(adult["fnlwgt"].quantile(q), rel=0.03)
    assert (table["capital-gain"] == 0).mean() == pytest.approx((adult["capital-gain"] == 0).mean(), abs=0.01)


def test_dependencies_are_adults(table: pd.DataFrame, adult: pd.DataFrame) -> None:
    rich = table["class"] == ">50K"
    by_relationship = rich.groupby(table["relationship"]).mean()
    assert by_relationship["Husband"] > 0.35 and by_relationship["Own-child"] < 0.05
    by_education = rich.groupby(table["education"]).mean()
    assert by_education["Doctorate"] > 3 * by_education["HS-grad"] > 9 * by_education["7th-8th"]
    mapping = adult.groupby("education")["education-num"].first()
    assert (table["education-num"] == table["education"].map(mapping)).all()  # a function, Adult's
    female = (table["sex"] == "Female").groupby(table["relationship"]).mean()
    assert female["Wife"] > 0.99 and female["Husband"] < 0.01
    assert (table.loc[table["relationship"].isin(["Husband", "Wife"]), "marital-status"]
            .isin(["Married-civ-spouse", "Married-AF-spouse"]).all())
    assert table["occupation"].isna().equals(table["workclass"].isna() | (table["workclass"] == "Never-worked"))
    gain_rate = (table["capital-gain"] > 0).groupby(table["class"]).mean()
    assert gain_rate[">50K"] > 3 * gain_rate["<=50K"]
    assert ((table["capital-gain"] > 0) & (table["capital-loss"] > 0)).sum() == 0
    assert table["age"].corr(rich.astype(float)) > 0.15
    assert table["education-num"].corr(table["hours-per-week"]) > 0.08
    never_married = (table["marital-status"] == "Never-married").groupby(table["age"] < 25).mean()
    assert never_married[True] > 0.8 and never_married[False] < 0.3


def test_cli_writes_a_folder_of_parts(tmp_path, capsys) -> None:
    out = tmp_path / "adult"
    big.main(["--rows", "25000", "--out", str(out), "--chunk-rows", "10000", "--seed", "5"])
    assert sorted(p.name for p in out.iterdir()) == [f"part-0000{i}.parquet" for i in range(3)]
    read = pq.read_table(out)
    assert read.num_rows == 25_000
    assert read.schema.equals(big.SCHEMA)
    pd.testing.assert_frame_equal(read.to_pandas(), adult_like_chunk(0, 25_000, seed=5))
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["rows"] == 25_000 and line["bytes"] > 0
    with pytest.raises(FileExistsError):
        write_adult_like(out, 10)
    with pytest.raises(ValueError, match="at least 1"):
        write_adult_like(tmp_path / "none", 0)


def test_csv_is_one_file_with_empty_unknowns(tmp_path) -> None:
    path = write_adult_like(tmp_path / "adult.csv", 3_000, seed=2, chunk_rows=1_000, fmt="csv")
    read = pd.read_csv(path, keep_default_na=False, na_values=[""])
    expected = adult_like_chunk(0, 3_000, seed=2)
    pd.testing.assert_frame_equal(read.astype(object).where(read.notna(), None), expected.astype(object))
