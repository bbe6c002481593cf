"""Fidelity: the sdmetrics metadata, the frame handed to it, and planted faults the report must catch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_mixed_frame

from generators.tabular.inference import infer_schema
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from validation.fidelity import evaluate_fidelity
from validation.metadata import to_sdmetrics_frame, to_sdmetrics_metadata

LEARNED = ["age", "income", "colour", "member", "city", "joined"]


def test_metadata_maps_every_kind(mixed_schema: Schema) -> None:
    text = Schema((ColumnSpec("note", ColumnKind.TEXT, "object"),))
    assert to_sdmetrics_metadata(mixed_schema) == {
        "columns": {
            "customer_id": {"sdtype": "id"},
            "email": {"sdtype": "pii", "pii": True},
            "age": {"sdtype": "numerical"},
            "income": {"sdtype": "numerical"},
            "colour": {"sdtype": "categorical"},
            "member": {"sdtype": "boolean"},
            "city": {"sdtype": "categorical"},
            "joined": {"sdtype": "datetime"},
        }
    }
    assert to_sdmetrics_metadata(text) == {"columns": {"note": {"sdtype": "unknown", "pii": True}}}


def test_metadata_keeps_a_datetime_format() -> None:
    schema = Schema((ColumnSpec("day", ColumnKind.DATETIME, "object", datetime_format="%Y-%m-%d"),))
    assert to_sdmetrics_metadata(schema) == {"columns": {"day": {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"}}}


def test_sdmetrics_frame_holds_utc_naive_instants(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    out = to_sdmetrics_frame(mixed_frame, mixed_schema)
    assert out["joined"].dt.tz is None
    expected = mixed_frame["joined"].dt.tz_convert("UTC").dt.tz_localize(None)
    pd.testing.assert_series_equal(out["joined"], expected)
    assert mixed_frame["joined"].dt.tz is not None  # the caller's frame is left alone


def test_identical_frames_score_one_on_learned_columns_only(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    result = evaluate_fidelity(mixed_frame, mixed_frame, mixed_schema)
    assert sorted(result.per_column) == sorted(LEARNED)
    assert all(score == pytest.approx(1.0) for score in result.per_column.values())
    assert result.per_pair and all(score == pytest.approx(1.0) for score in result.per_pair.values())
    assert result.quality == pytest.approx(1.0)
    assert result.errors == {}
    assert result.elapsed_s > 0


def test_zone_of_the_synthetic_datetimes_does_not_matter(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    synthetic = mixed_frame.assign(joined=mixed_frame["joined"].dt.tz_convert("UTC").dt.tz_localize(None))
    assert evaluate_fidelity(mixed_frame, synthetic, mixed_schema).per_column["joined"] == pytest.approx(1.0)


def test_planted_shift_lowers_that_columns_shape_score(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    fresh = make_mixed_frame(seed=1)
    faulty = fresh.assign(age=fresh["age"] + 30)
    clean_scores = evaluate_fidelity(mixed_frame, fresh, mixed_schema)
    faulty_scores = evaluate_fidelity(mixed_frame, faulty, mixed_schema)
    assert clean_scores.per_column["age"] > 0.85
    assert faulty_scores.per_column["age"] < 0.6
    assert {k: v for k, v in faulty_scores.per_column.items() if k != "age"} == pytest.approx(
        {k: v for k, v in clean_scores.per_column.items() if k != "age"}
    )
    assert faulty_scores.column_shapes < clean_scores.column_shapes


def test_planted_shuffle_breaks_the_pair_trend_but_not_the_shape() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    real = pd.DataFrame({"x": x, "y": x + rng.normal(scale=0.3, size=600), "z": rng.normal(size=600)})
    schema = Schema(tuple(ColumnSpec(c, ColumnKind.NUMERICAL, "float64") for c in real))
    shuffled = real.assign(y=rng.permutation(real["y"].to_numpy()))
    result = evaluate_fidelity(real, shuffled, schema)
    assert result.per_column["y"] == pytest.approx(1.0)  # same values, so the same shape
    assert list(result.per_pair) == ["x|y"]  # only the correlated pair counts
    assert result.per_pair["x|y"] < 0.6
    assert result.column_pair_trends == pytest.approx(result.per_pair["x|y"])


def test_a_column_that_cannot_be_scored_is_reported(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    from validation.comparison import compare_columns

    synthetic = mixed_frame.assign(income=np.nan)
    result = evaluate_fidelity(mixed_frame, synthetic, mixed_schema)
    assert np.isnan(result.per_column["income"])
    # No score exists for a column without values: not an sdmetrics failure, but judged by our own checks.
    assert "income" in result.undefined and result.errors == {}
    # sdmetrics averages over what it could score: the hole does not show in the quality itself ...
    assert result.column_shapes == pytest.approx(1.0)
    # ... while the column comparison sees it plainly.
    compared = compare_columns(mixed_frame, synthetic, mixed_schema)
    assert compared.shapes["income"].value == 0.0 and compared.nulls["income"].p_value < 1e-12


def test_a_pair_with_one_complete_row_has_no_score_rather_than_an_error() -> None:
    """Two mostly-null numbers that share one complete row in the synthetic part: no correlation exists.

    They are horse_colic's nasogastric_reflux_ph and abdomcentesis_total_protein on a small split.
    """
    rng = np.random.default_rng(0)
    n = 200
    a = rng.normal(size=n)
    real = pd.DataFrame({"a": a, "b": a + 0.1 * rng.normal(size=n)})
    real.loc[: n // 2, "a"] = np.nan
    real.loc[n // 2 + 20 :, "b"] = np.nan
    synthetic = real.copy()
    synthetic.loc[n // 2 + 2 :, "b"] = np.nan  # one row left where both hold a value
    schema = Schema(tuple(ColumnSpec(c, ColumnKind.NUMERICAL, "float64", nullable=True) for c in real))
    result = evaluate_fidelity(real, synthetic, schema)
    assert result.errors == {} and "a|b" in result.undefined


def test_utility_copes_with_high_cardinality_features_and_tells_copies_from_noise() -> None:
    from validation.utility import evaluate_utility

    rng = np.random.default_rng(0)
    n = 3_000
    signal = rng.standard_normal(n)
    frame = pd.DataFrame(
        {
            "town": rng.choice([f"t{i}" for i in range(2_000)], n).astype(object),  # > 255 levels
            "x": signal + 0.3 * rng.standard_normal(n),
            "label": np.where(signal > 0, "yes", "no").astype(object),
        }
    )
    _, schema = infer_schema(frame)
    train, holdout = frame.iloc[:2_000], frame.iloc[2_000:]
    faithful = evaluate_utility(train, holdout, train, schema, "label")
    broken = train.assign(label=rng.permutation(train["label"].to_numpy()))
    useless = evaluate_utility(train, holdout, broken, schema, "label")
    assert faithful.real_score > 0.8 and abs(faithful.ratio - 1) < 1e-9 and faithful.lift_kept == pytest.approx(1)
    assert faithful.real_lift_p < 1e-6 and faithful.gap_p > 0.4  # same model, same predictions: no gap
    assert faithful.baseline_score == pytest.approx(0.5, abs=0.02)  # macro-F1 of guessing by the priors
    assert useless.synthetic_score < 0.65 < faithful.synthetic_score
    assert useless.lift_kept < 0.5 and useless.gap_p < 1e-6


def test_utility_without_signal_says_the_real_model_is_no_better_than_guessing() -> None:
    from validation.utility import evaluate_utility

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=1_500), "b": rng.normal(size=1_500),
                          "label": rng.choice(["p", "q"], 1_500).astype(object)})
    _, schema = infer_schema(frame)
    result = evaluate_utility(frame.iloc[:1_000], frame.iloc[1_000:], frame.iloc[:1_000], schema, "label")
    assert result.real_lift_p > 0.05


def test_regression_utility_lifts_over_the_mean() -> None:
    from validation.utility import evaluate_utility

    rng = np.random.default_rng(2)
    x = rng.normal(size=2_000)
    frame = pd.DataFrame({"x": x, "y": 2 * x + 0.1 * rng.normal(size=2_000)})
    _, schema = infer_schema(frame)
    result = evaluate_utility(frame.iloc[:1_500], frame.iloc[1_500:], frame.iloc[:1_500], schema, "y")
    assert result.metric == "r2" and result.real_score > 0.95
    assert result.baseline_score == pytest.approx(0.0, abs=0.02) and result.lift_kept == pytest.approx(1.0)


def test_coverage_sees_a_merged_category_that_shape_scores_hide() -> None:
    from validation.drift import category_coverage

    rng = np.random.default_rng(1)
    n = 4_000
    real = pd.DataFrame({"x": rng.normal(size=n), "level": rng.choice(["a", "b", "c", "rare"], n,
                                                                        p=[0.6, 0.3, 0.0985, 0.0015])})
    _, schema = infer_schema(real)
    honest = real.sample(frac=1, random_state=2).reset_index(drop=True).iloc[:1_000]
    clean = category_coverage(real, honest, schema)
    # "rare" (6 rows) is expected 1.5 times in 1,000 rows: not held to coverage, so losing it is no fault.
    assert clean.coverage == {"level": 1.0} and clean.missing == {}
    faulty = honest.assign(level=honest["level"].replace({"c": "b"}))
    coverage = category_coverage(real, faulty, schema)
    assert coverage.coverage["level"] == pytest.approx(2 / 3)
    assert coverage.missing == {"level": ("c",)}
    # Held categories must be so common that a faithful table misses one with probability below alpha.
    assert coverage.expected_count == pytest.approx(max(10.0, np.log(3 / 0.001)))


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"x": [1.0, 2.0], "label": ["y", "n"]}, "label"),  # a conventional label name
        ({"x": [1.0, 2.0], "grade": ["a", "b"]}, "grade"),  # the last column, categorical with few classes
        ({"grade": ["a", "b"], "x": [1.0, 2.0]}, None),  # the last column is numerical: nothing to infer
    ],
)
def test_target_inference(columns: dict[str, list[object]], expected: str | None) -> None:
    from generators.tabular.schema import infer_target

    overrides = {name: "categorical" for name in ("grade", "label") if name in columns}
    _, schema = infer_schema(pd.DataFrame(columns), overrides)
    assert infer_target(schema) == expected
