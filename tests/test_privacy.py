"""Privacy distances: Gower against a brute-force reference, and planted leaks the checks must catch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_mixed_frame, mixed_schema_for

from generators.schema import BadInputError, ColumnKind, ColumnSpec, Schema
from privacy.distance import dcr_share, evaluate_privacy, exact_match_rate, gower_distance_chunks


def _split(n: int, train: int, holdout: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Schema]:
    """One population cut in three at random: train, holdout, and fresh rows standing in for synthetic."""
    frame = make_mixed_frame(n, seed)
    order = np.random.default_rng(seed).permutation(n)
    parts = [frame.iloc[idx].reset_index(drop=True) for idx in np.split(order, [train, train + holdout])]
    return parts[0], parts[1], parts[2], mixed_schema_for(frame)


def _brute_force_gower(query: pd.DataFrame, reference: pd.DataFrame) -> np.ndarray:
    """Gower written out column by column over all pairs, for the mixed frame's learned columns."""
    total = np.zeros((len(query), len(reference)))
    for name in ["age", "income", "joined"]:
        q, r = query[name], reference[name]
        if name == "joined":  # as UTC seconds, NaT (a sentinel integer) masked to NaN
            q, r = (
                pd.Series(
                    np.where(
                        c.isna(), np.nan, c.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("int64") / 1e9
                    )
                )
                for c in (q, r)
            )
        q, r = q.to_numpy(float), r.to_numpy(float)
        low, high = np.nanmin(r), np.nanmax(r)
        gap = np.abs(np.clip(q, low, high)[:, None] - r[None, :]) / (high - low)
        q_null, r_null = np.isnan(q)[:, None], np.isnan(r)[None, :]
        total += np.where(q_null & r_null, 0.0, np.where(q_null | r_null, 1.0, gap))
    for name in ["colour", "member", "city"]:
        q = query[name].astype(object).where(query[name].notna(), "<null>").to_numpy()
        r = reference[name].astype(object).where(reference[name].notna(), "<null>").to_numpy()
        total += q[:, None] != r[None, :]
    return total / 6


@pytest.mark.parametrize("onehot_max_levels", [512, 0], ids=["one-hot", "code-compared"])
def test_gower_matches_brute_force_in_chunks(onehot_max_levels: int) -> None:
    reference, query = make_mixed_frame(60, seed=3), make_mixed_frame(25, seed=4)
    schema = mixed_schema_for(reference)
    chunks = list(gower_distance_chunks(query, reference, schema, chunk_rows=7, onehot_max_levels=onehot_max_levels))
    assert [start for start, _ in chunks] == [0, 7, 14, 21]
    got = np.concatenate([d.numpy() for _, d in chunks])
    np.testing.assert_allclose(got, _brute_force_gower(query, reference), atol=1e-5)


def test_planted_leak_copied_training_rows() -> None:
    train, holdout, _, schema = _split(1200, 900, 300)
    result = evaluate_privacy(train, holdout, train, schema)
    assert result.dcr_share > 0.99
    assert result.dcr_p_value < 1e-6
    assert result.exact_match_rate == 1.0
    assert result.holdout_exact_match_rate == 0.0
    assert len(result.chunk_seconds) == 2  # 900 rows in chunks of 512


def test_planted_leak_of_half_the_rows_is_seen_whole() -> None:
    """Half the rows copied: expected share 0.70 at a 75/25 split. Subsampling train to the holdout's
    size would see a third of the copies and expect 0.58, under the gate's 0.60."""
    train, holdout, fresh, schema = _split(1800, 900, 300)
    synthetic = pd.concat([fresh.iloc[:300], train.iloc[:300]], ignore_index=True)
    assert 0.64 < dcr_share(train, holdout, synthetic, schema).share < 0.76


def test_fresh_rows_from_the_population_sit_near_half() -> None:
    train, holdout, fresh, schema = _split(1800, 900, 300)
    result = evaluate_privacy(train, holdout, fresh, schema)
    assert 0.42 < result.dcr_share < 0.58
    assert result.dcr_p_value > 0.05
    assert result.exact_match_rate == result.holdout_exact_match_rate == 0.0


def test_a_tie_between_train_and_holdout_counts_by_their_share() -> None:
    schema = Schema(
        (ColumnSpec("x", ColumnKind.NUMERICAL, "float64"), ColumnSpec("c", ColumnKind.CATEGORICAL, "object"))
    )
    train = pd.DataFrame({"x": [0.0, 0.0, 5.0, 9.0], "c": ["a", "a", "b", "b"]})
    holdout = pd.DataFrame({"x": [0.0, 7.0, 8.0, 9.5], "c": ["a", "b", "b", "b"]})
    synthetic = pd.DataFrame({"x": [0.0], "c": ["a"]})  # two copies in train, one in holdout
    # The row scores 2/3, the train share of the records at its distance; sizes are equal (p0 = 0.5).
    assert dcr_share(train, holdout, synthetic, schema).share == pytest.approx(2 / 3)


def test_exact_matches_survive_float_noise_and_zones_but_not_other_values(mixed_frame: pd.DataFrame) -> None:
    schema = mixed_schema_for(mixed_frame)
    reference = mixed_frame.iloc[:100]
    copies = reference.assign(
        income=reference["income"] * (1 + 1e-12),
        joined=reference["joined"].dt.tz_convert("UTC"),
        customer_id=-1,  # regenerated columns do not count
        email="someone@else.org",
    )
    assert exact_match_rate(copies, reference, schema) == 1.0
    moved = copies.assign(joined=copies["joined"] + pd.Timedelta(seconds=1))
    assert exact_match_rate(moved, reference, schema) == pytest.approx(reference["joined"].isna().mean())
    assert exact_match_rate(mixed_frame.iloc[100:], reference, schema) == 0.0


def test_holdout_duplicates_set_the_baseline() -> None:
    train, holdout, fresh, schema = _split(1200, 600, 200)
    holdout = pd.concat([holdout.iloc[:190], train.iloc[:10]], ignore_index=True)
    result = evaluate_privacy(train, holdout, fresh, schema)
    assert result.holdout_exact_match_rate == pytest.approx(10 / 200)
    assert result.exact_match_rate == 0.0


def test_empty_holdout_is_refused(mixed_frame: pd.DataFrame) -> None:
    schema = mixed_schema_for(mixed_frame)
    with pytest.raises(BadInputError, match="holdout"):
        evaluate_privacy(mixed_frame, mixed_frame.iloc[:0], mixed_frame, schema)
