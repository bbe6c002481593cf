"""Privacy distances: Gower and the fold DCR against brute force, and planted leaks the checks must catch."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from conftest import make_mixed_frame, mixed_schema_for

from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from privacy.distance import (
    PrivacyConfig,
    PrivacyResult,
    distance_evidence,
    evaluate_privacy,
    exact_match_rate,
    gower_distance_chunks,
)


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


LEARNED = ["age", "income", "colour", "member", "city", "joined"]
ATTACKS = ("distance", "density", "ensemble")


def _tpr_bounds(result: PrivacyResult, fpr: float) -> list[tuple[float, float]]:
    """Every attack's TPR interval at the false-positive rate `fpr`."""
    return [result.membership[attack].tpr[fpr].ci for attack in ATTACKS]
FAST = PrivacyConfig(half_subsets=2, small_subsets=1, subset_rows=300)


def _noisy(frame: pd.DataFrame, scale: float, seed: int) -> pd.DataFrame:
    """`frame` with Gaussian noise of `scale` times each numerical column's standard deviation."""
    rng = np.random.default_rng(seed)
    noise = {name: frame[name] + rng.normal(0, scale * frame[name].std(), len(frame)) for name in ["age", "income"]}
    return frame.assign(**noise)


def test_fold_dcr_matches_brute_force_with_a_wrapped_last_fold() -> None:
    train, holdout, fresh, schema = _split(160, 110, 40, seed=5)  # 3 folds of 40: the last wraps 10 rows
    synthetic = pd.concat([fresh.iloc[:5], train.iloc[:5]], ignore_index=True)
    evidence = distance_evidence(train, holdout, synthetic, schema, seed=7, config=FAST)
    assert evidence.folds.shape == (3, 40)
    assert sorted(set(evidence.folds.ravel())) == list(range(110))
    assert all(len(set(fold)) == 40 for fold in evidence.folds)
    real = pd.concat([train, holdout], ignore_index=True)
    brute = _brute_force_gower(synthetic, real)  # ranges from all real rows, as in the evidence
    to_holdout = brute[:, 110:].min(axis=1, keepdims=True)
    to_folds = np.stack([brute[:, fold].min(axis=1) for fold in evidence.folds], axis=1)
    expected = (to_folds < to_holdout) + 0.5 * np.isclose(to_folds, to_holdout, atol=1e-6)
    np.testing.assert_allclose(evidence.fold_wins, expected)
    decider = evidence.real_rows[evidence.fold_nearest] + np.where(evidence.fold_nearest >= 110, 110, 0)
    deciding = brute[np.arange(10)[:, None], decider]  # the deciding real row is the nearer of fold and holdout
    np.testing.assert_allclose(deciding, np.minimum(to_folds, to_holdout), atol=1e-6)
    first, second = np.sort(brute[:, :110], axis=1)[:, :2].T
    np.testing.assert_allclose(evidence.synthetic_nndr, np.where(second > 0, first / second, 1.0), atol=1e-4)


def test_a_tie_between_fold_and_holdout_counts_half() -> None:
    schema = Schema(
        (ColumnSpec("x", ColumnKind.NUMERICAL, "float64"), ColumnSpec("c", ColumnKind.CATEGORICAL, "object"))
    )
    train = pd.DataFrame({"x": [0.0, 5.0, 9.0], "c": ["a", "b", "b"]})
    holdout = pd.DataFrame({"x": [0.0, 7.0, 8.0], "c": ["a", "b", "b"]})
    synthetic = pd.DataFrame({"x": [0.0, 9.0, 7.0], "c": ["a", "b", "b"]})  # a tie, a train copy, a holdout copy
    config = dataclasses.replace(FAST, density_k=1, isolated_k=1)
    evidence = distance_evidence(train, holdout, synthetic, schema, config=config)
    np.testing.assert_array_equal(evidence.fold_wins[:, 0], [0.5, 1.0, 0.0])
    assert evidence.dcr_share == 0.5


def test_honest_rows_pass_every_distance_check() -> None:
    """Each interval holds its honest value: noise alone never puts a lower bound past it."""
    train, holdout, fresh, schema = _split(3000, 1500, 750)
    result = evaluate_privacy(train, holdout, fresh, schema, config=FAST)
    assert result.alpha == 0.001
    assert result.dcr_share_ci[0] < 0.5 < result.dcr_share_ci[1] and result.dcr_p_value > 0.01
    assert result.exact_match_rate == result.holdout_exact_match_rate == result.exact_match_excess == 0.0
    assert result.exact_match_excess_ci[0] <= 0 <= result.exact_match_excess_ci[1]
    assert result.nndr_low_share_ci[0] == 0.05 < result.nndr_low_share_ci[1]  # a rate at 5% false positives
    assert result.subset_dcr_share_ci[0] < 0.5
    assert len(result.subset_columns) in (3, 4)  # half of six learned columns, or a small subset of three
    for attack in ("distance", "density"):
        auc = result.membership[attack].auc
        assert auc.ci[0] <= auc.auc <= auc.ci[1] and auc.ci[0] < 0.5 < auc.ci[1]
    # the ensemble's out-of-fold scores share two models' noise, which DeLong's interval leaves out
    ensemble = result.membership["ensemble"].auc
    assert ensemble.ci[0] <= ensemble.auc <= ensemble.ci[1] and 0.4 < ensemble.auc < 0.6
    assert result.membership_low_fpr == 0.005
    for fpr in (0.005, 0.01, 0.1):
        assert all(low == fpr < high for low, high in _tpr_bounds(result, fpr)), fpr
    assert result.isolated_k == result.isolated_holdout_k >= 20  # as many isolated rows of each, at least 20
    assert result.isolated_excess_ci[0] < 0 < result.isolated_excess_ci[1]


def test_planted_leak_copied_training_rows() -> None:
    train, holdout, _, schema = _split(1200, 900, 300)
    result = evaluate_privacy(train, holdout, train, schema, config=FAST)
    assert result.dcr_share == pytest.approx(0.5 + 0.5 / 3, abs=0.02)  # 1 on the copy's fold, 1/2 on two others
    assert result.dcr_share_ci[0] > 0.6 and result.dcr_p_value < 1e-6
    assert result.exact_match_rate == 1.0
    assert result.holdout_exact_match_rate == 0.0
    assert result.exact_match_excess_ci[0] > 0.9
    assert result.nndr_low_share_ci[0] > 0.9
    assert result.membership["distance"].auc.auc > 0.9 and result.membership["distance"].auc.ci[0] > 0.85
    assert all(low > 0.9 for low, _ in _tpr_bounds(result, 0.005))
    assert result.isolated_reproduced == result.isolated_k and result.isolated_min_ratio == 0.0
    assert result.isolated_excess_ci[0] > 0.5


def test_planted_leak_noisy_copies_are_caught_by_distances() -> None:
    """Training rows with 1% noise on the numbers: no exact match, but DCR, NNDR and membership see them."""
    train, holdout, _, schema = _split(1600, 1200, 400)
    result = evaluate_privacy(train, holdout, _noisy(train.iloc[:800], 0.01, seed=1), schema, config=FAST)
    assert result.exact_match_rate < 0.2  # only rows whose numbers are all null stay exact copies
    assert result.dcr_share_ci[0] > 0.6 and result.dcr_p_value < 1e-6
    assert result.nndr_low_share_ci[0] > 0.5
    assert result.membership["distance"].auc.ci[0] > 0.7
    assert result.membership["density"].auc.ci[0] > 0.55
    assert all(low > 0.3 for low, _ in _tpr_bounds(result, 0.005))  # 2/3 of the members copied


def test_planted_leak_of_the_most_isolated_rows_is_caught_by_the_outlier_check() -> None:
    train, holdout, fresh, schema = _split(3000, 1500, 750)
    honest = distance_evidence(train, holdout, fresh, schema, config=FAST)
    planted = pd.concat([fresh, train.iloc[honest.isolated_rows]], ignore_index=True)
    result = evaluate_privacy(train, holdout, planted, schema, config=FAST)
    assert result.isolated_k == len(honest.isolated_rows) == result.isolated_reproduced
    assert result.isolated_min_ratio == 0.0 and result.isolated_holdout_reproduced == 0
    assert result.isolated_excess_ci[0] > 0.5 and result.isolated_p_value < 1e-6
    assert result.dcr_share_ci[0] < 0.5  # a few dozen rows in 790: invisible to the average-case checks


def test_a_copy_on_some_columns_shows_in_a_column_subset() -> None:
    """Synthetic rows whose numbers come from training rows and whose categories are fresh."""
    train, holdout, fresh, schema = _split(2400, 1200, 600)
    synthetic = fresh.assign(**{name: train[name].iloc[:600].to_numpy() for name in ["age", "income", "joined"]})
    config = dataclasses.replace(FAST, half_subsets=8, subset_rows=600)
    result = evaluate_privacy(train, holdout, synthetic, schema, config=config)
    assert result.subset_dcr_share > result.dcr_share + 0.1
    assert result.subset_dcr_share_ci[0] > 0.55 > result.dcr_share_ci[0]
    assert {"age", "income", "joined"} <= set(result.subset_columns)


def test_the_seed_fixes_every_number() -> None:
    train, holdout, fresh, schema = _split(900, 450, 300)
    first, again, other = (
        dataclasses.replace(evaluate_privacy(train, holdout, fresh, schema, seed=seed, config=FAST), elapsed_s=0.0)
        for seed in (3, 3, 4)
    )
    assert first == again
    assert first != other


def test_the_evidence_shapes_follow_the_split() -> None:
    train, holdout, fresh, schema = _split(720, 500, 120)
    evidence = distance_evidence(train, holdout, fresh.iloc[:90], schema, config=FAST)
    n_folds = math.ceil(500 / 120)
    assert evidence.fold_wins.shape == evidence.fold_nearest.shape == (90, n_folds)
    assert evidence.to_synthetic.shape == (620, 5)  # the 1st to 5th nearest synthetic rows of every real row
    assert np.all(np.diff(evidence.to_synthetic, axis=1) >= 0)
    assert evidence.holdout_nndr.shape == (120,)
    assert evidence.real_radius.shape == evidence.isolation.shape == evidence.is_member.shape == (620,)
    assert evidence.is_member.sum() == 500
    assert sorted(evidence.real_rows[:500]) == list(range(500)) and sorted(evidence.real_rows[500:]) == list(range(120))
    isolation_of = dict(zip(evidence.real_rows[:500], evidence.isolation[:500], strict=True))
    assert np.all(np.diff([isolation_of[row] for row in evidence.isolated_rows]) <= 0)


def test_isolation_and_the_density_reference_exclude_only_the_row_itself() -> None:
    """Every real row's nearest other real row, members and non-members alike, against brute force.

    A row with an exact twin among the real rows has isolation 0.
    """
    train, holdout, fresh, schema = _split(260, 150, 60, seed=2)
    holdout = pd.concat([holdout.iloc[:59], train.iloc[:1]], ignore_index=True)  # a training row's twin
    evidence = distance_evidence(train, holdout, fresh, schema, config=FAST)
    real = pd.concat([train, holdout], ignore_index=True)
    brute = _brute_force_gower(real, real)
    np.fill_diagonal(brute, np.inf)
    order = evidence.real_rows + np.where(evidence.is_member, 0, 150)
    np.testing.assert_allclose(evidence.isolation, brute.min(axis=1)[order], atol=1e-5)
    np.testing.assert_array_equal(evidence.isolation, evidence.real_radius)  # density_k = 1
    assert evidence.isolation[order == 0][0] == evidence.isolation[order == 209][0] == 0.0


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
    result = evaluate_privacy(train, holdout, fresh, schema, config=FAST)
    # real rows never trained on: 10 of the holdout rows and none of the training rows (each left out of its
    # own reference) copy a training row
    honest = 10 / (len(train) + len(holdout))
    assert result.holdout_exact_match_rate == pytest.approx(honest)
    assert result.exact_match_rate == 0.0
    assert result.exact_match_excess == pytest.approx(-honest) and result.exact_match_excess_ci[0] < -0.01


def test_a_holdout_larger_than_train_is_sampled_down_for_the_dcr_only() -> None:
    train, holdout, fresh, schema = _split(900, 300, 450)
    evidence = distance_evidence(train, holdout, fresh, schema, config=FAST)
    assert evidence.folds.shape == (1, 300) and sorted(evidence.folds[0]) == list(range(300))
    assert evidence.holdout_nndr.shape == (450,) and evidence.is_member.sum() == 300
    result = evaluate_privacy(train, holdout, fresh, schema, config=FAST)
    assert result.dcr_share_ci[0] < 0.5 < result.dcr_share_ci[1]
    copies = evaluate_privacy(train, holdout, train, schema, config=FAST)
    assert copies.dcr_share == 1.0 and copies.dcr_share_ci[0] > 0.9  # one fold: all of train


def test_duplicating_synthetic_rows_does_not_narrow_the_dcr_interval() -> None:
    """Rows that share their nearest real row win or lose together.

    Ten copies of each synthetic row are no more evidence than one, which a binomial interval over synthetic rows
    would ignore.
    """
    train, holdout, fresh, schema = _split(2400, 1200, 600)
    once = evaluate_privacy(train, holdout, fresh, schema, config=FAST)
    tenfold = evaluate_privacy(train, holdout, pd.concat([fresh] * 10, ignore_index=True), schema, config=FAST)
    assert tenfold.dcr_share == pytest.approx(once.dcr_share)
    width = once.dcr_share_ci[1] - once.dcr_share_ci[0]
    assert tenfold.dcr_share_ci[1] - tenfold.dcr_share_ci[0] == pytest.approx(width, rel=0.01)


@pytest.mark.parametrize(("rows", "message"), [((200, 0, 50), "holdout"), ((1, 1, 1), "at least 2")])
def test_unusable_splits_are_refused(mixed_frame: pd.DataFrame, rows: tuple[int, int, int], message: str) -> None:
    train, holdout, synthetic = mixed_frame.iloc[: rows[0]], mixed_frame.iloc[: rows[1]], mixed_frame.iloc[: rows[2]]
    with pytest.raises(BadInputError, match=message):
        evaluate_privacy(train, holdout, synthetic, mixed_schema_for(mixed_frame))
