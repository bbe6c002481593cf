"""The classifier two-sample test and the 3-way marginal distance.

Real unseen Adult rows look real, rows with no relationships between columns do not, a planted shift is named,
and awkward tables still work.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from conftest import make_mixed_frame, mixed_schema_for

from benchmarks.datasets import ADULT
from flows.sources import load_table
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from validation.c2st import C2stResult, classifier_two_sample
from validation.marginals import three_way_marginal_distance

ROWS = 3_000


@pytest.fixture(scope="module")
def adult() -> tuple[dict[str, pd.DataFrame], Schema]:
    """Disjoint real parts of Adult (train, holdout, honest) and `independent`.

    `honest` is real rows never trained on, as a synthetic table; `independent` is the training rows with every
    column shuffled on its own.
    """
    table = load_table(ADULT)
    order = np.random.default_rng(0).permutation(len(table.frame))
    parts = {name: table.frame.iloc[order[low:high]].reset_index(drop=True)
             for name, (low, high) in (("train", (0, 20_000)), ("holdout", (20_000, 26_000)),
                                       ("honest", (26_000, 32_000)))}
    rng = np.random.default_rng(1)
    parts["independent"] = parts["train"].apply(lambda column: rng.permutation(column.to_numpy()))
    return parts, table.schema


def test_real_unseen_rows_cannot_be_told_apart(adult: tuple[dict[str, pd.DataFrame], Schema]) -> None:
    parts, schema = adult
    result = classifier_two_sample(parts["train"], parts["honest"], schema, rows=ROWS)

    assert 0.44 <= result.auc <= 0.56, result
    assert result.auc_ci[0] <= result.auc <= result.auc_ci[1] and result.auc_ci[1] - result.auc_ci[0] < 0.06
    assert result.rows == ROWS and sorted(result.importance) == sorted(spec.name for spec in schema.learned)
    assert max(result.importance.values()) < 0.03


def test_columns_without_relationships_are_told_apart(adult: tuple[dict[str, pd.DataFrame], Schema]) -> None:
    parts, schema = adult
    result = classifier_two_sample(parts["train"], parts["independent"], schema, rows=ROWS)

    assert result.auc > 0.8 and result.auc_ci[0] > 0.75, result
    # education and education-num are one fact written twice: shuffled apart, that pair gives rows away first
    assert {result.worst_pairs[0][0], result.worst_pairs[0][1]} == {"education", "education-num"}
    assert result.worst_pairs[0][2] > 0.8
    assert [pair[2] for pair in result.worst_pairs] == sorted((pair[2] for pair in result.worst_pairs), reverse=True)


def test_a_planted_shift_is_the_most_telling_column(adult: tuple[dict[str, pd.DataFrame], Schema]) -> None:
    """Real unseen rows three years older: a subtle fault (AUC about 0.6), and age is named, far ahead."""
    parts, schema = adult
    result = classifier_two_sample(parts["train"], parts["honest"].assign(age=parts["honest"]["age"] + 3), schema,
                                   rows=ROWS)

    assert result.auc > 0.55 and result.auc_ci[0] > 0.5, result
    first, second = list(result.importance.items())[:2]
    assert first[0] == "age" and first[1] > 2 * second[1], result.importance
    assert list(result.importance.values()) == sorted(result.importance.values(), reverse=True)
    assert all("age" in pair[:2] for pair in result.worst_pairs[:3])


def test_the_3way_marginal_ratio_is_one_for_real_rows_and_large_without_relationships(
    adult: tuple[dict[str, pd.DataFrame], Schema],
) -> None:
    parts, schema = adult
    honest = three_way_marginal_distance(parts["train"], parts["honest"], schema, holdout=parts["holdout"])
    independent = three_way_marginal_distance(parts["train"], parts["independent"], schema, holdout=parts["holdout"])

    assert honest.order == 3 and honest.sets == honest.of == 455 and honest.rows == 6_000
    assert honest.ratio is not None and 0.85 <= honest.ratio <= 1.15, honest
    assert independent.ratio is not None and independent.ratio > 2.0, independent
    assert honest.holdout_distance == independent.holdout_distance  # the holdout's sample depends on the seed only


def test_the_ratio_compares_samples_of_the_same_size(adult: tuple[dict[str, pd.DataFrame], Schema]) -> None:
    """A small holdout against a large synthetic table: both distances on as many rows.

    So fresh real rows of any number still score about 1.0 (on unequal sizes the larger sample would look closer by
    noise).
    """
    parts, schema = adult
    result = three_way_marginal_distance(parts["train"], parts["honest"], schema, holdout=parts["holdout"].head(800))

    assert result.rows == 800 and result.ratio is not None and 0.85 <= result.ratio <= 1.15, result
    alone = three_way_marginal_distance(parts["train"], parts["honest"], schema)
    assert alone.rows == 6_000 and alone.holdout_distance is None and alone.ratio is None
    capped = three_way_marginal_distance(parts["train"], parts["honest"], schema, holdout=parts["holdout"],
                                         max_rows=1_000)
    assert capped.rows == 1_000 and capped.ratio is not None and 0.8 <= capped.ratio <= 1.2, capped


def test_the_same_seed_gives_the_same_result() -> None:
    real, synthetic = make_mixed_frame(400, 0), make_mixed_frame(300, 1)
    schema = mixed_schema_for(real)

    def c2st(seed: int) -> C2stResult:
        return dataclasses.replace(classifier_two_sample(real, synthetic, schema, rows=250, seed=seed), elapsed_s=0.0)

    assert c2st(3) == c2st(3) and c2st(3) != c2st(4)
    sampled = [three_way_marginal_distance(real, synthetic, schema, holdout=real, seed=seed, max_triples=5)
               for seed in (3, 3, 4)]
    assert sampled[0] == sampled[1] and sampled[0].sets == 5 and sampled[0].of == 20
    assert sampled[0].distance != sampled[2].distance


def _awkward(n: int, seed: int) -> pd.DataFrame:
    """Constant and all-null columns of each kind, naive datetimes and a few categories."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "constant": np.full(n, 3.0),
        "empty": np.full(n, np.nan),
        "empty_words": pd.Series([None] * n, dtype=object),
        "one_word": ["a"] * n,
        "day": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
        "colour": rng.choice(["red", "green", "blue"], n),
        "member": pd.array(rng.random(n) < 0.4, dtype="boolean"),
    })


AWKWARD = Schema((
    ColumnSpec("constant", ColumnKind.NUMERICAL, "float64"),
    ColumnSpec("empty", ColumnKind.NUMERICAL, "float64", nullable=True),
    ColumnSpec("empty_words", ColumnKind.CATEGORICAL, "object", nullable=True),
    ColumnSpec("one_word", ColumnKind.CATEGORICAL, "object"),
    ColumnSpec("day", ColumnKind.DATETIME, "datetime64[ns]"),
    ColumnSpec("colour", ColumnKind.CATEGORICAL, "object"),
    ColumnSpec("member", ColumnKind.BOOLEAN, "boolean"),
))


@pytest.mark.parametrize(("columns", "order"), [
    (("colour",), 1),
    (("colour", "day"), 2),
    (("colour", "one_word", "empty_words", "member"), 3),  # every column categorical
    (("constant", "empty", "empty_words", "one_word", "day", "colour", "member"), 3),
    (("empty",), 1),  # nothing but nulls on both sides
])
def test_awkward_tables_are_measured(columns: tuple[str, ...], order: int) -> None:
    schema = Schema(tuple(AWKWARD[name] for name in columns))
    real, synthetic, holdout = _awkward(300, 0), _awkward(250, 1), _awkward(120, 2)

    c2st = classifier_two_sample(real, synthetic, schema)
    marginals = three_way_marginal_distance(real, synthetic, schema, holdout=holdout)

    assert 0.3 <= c2st.auc <= 0.7 and c2st.auc_ci[0] <= c2st.auc <= c2st.auc_ci[1], c2st
    assert c2st.rows == 250 and sorted(c2st.importance) == sorted(columns)
    assert len(c2st.worst_pairs) == min(math.comb(len(columns), 2), 5)
    assert marginals.order == order and marginals.sets == math.comb(len(columns), order) and marginals.rows == 120
    assert 0.0 <= marginals.distance <= 1.0 and marginals.ratio is not None and math.isfinite(marginals.ratio)
    if columns == ("empty",):  # rows alike in every cell: exactly chance, exactly as close as fresh real rows
        assert c2st.auc == 0.5 and c2st.auc_ci == (0.5, 0.5) and marginals.ratio == 1.0


def test_values_in_a_column_that_is_all_null_in_the_real_rows_give_rows_away() -> None:
    real, synthetic = _awkward(300, 0), _awkward(300, 1).assign(empty=1.0)
    schema = Schema((AWKWARD["empty"], AWKWARD["colour"]))

    result = classifier_two_sample(real, synthetic, schema)

    assert result.auc > 0.99 and next(iter(result.importance)) == "empty"
    assert three_way_marginal_distance(real, synthetic, schema).distance == pytest.approx(1.0)


def test_datetimes_compare_as_instants_whatever_their_zone() -> None:
    """tz-aware real rows against naive (UTC) synthetic rows of other real rows: as alike as any two samples."""
    real, other = make_mixed_frame(400, 0), make_mixed_frame(400, 1)
    schema = mixed_schema_for(real)
    naive = other.assign(joined=other["joined"].dt.tz_convert("UTC").dt.tz_localize(None))

    aware, plain = (classifier_two_sample(real, table, schema) for table in (other, naive))

    assert plain.auc == pytest.approx(aware.auc) and plain.importance == pytest.approx(aware.importance)
    assert three_way_marginal_distance(real, naive, schema) == three_way_marginal_distance(real, other, schema)


def test_tiny_tables_give_no_auc_rather_than_an_error() -> None:
    result = classifier_two_sample(_awkward(3, 0), _awkward(1, 1), AWKWARD)

    assert math.isnan(result.auc) and result.rows == 1 and result.worst_pairs == ()
    empty = three_way_marginal_distance(_awkward(3, 0), _awkward(0, 1), AWKWARD, holdout=_awkward(2, 2))
    assert empty.rows == 0 and math.isnan(empty.distance)
