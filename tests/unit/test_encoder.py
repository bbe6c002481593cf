"""The encoder is reversible, keeps dtypes, and describes its matrix truthfully."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch

from generators.tabular.encoder import EncoderConfig, EncoderPrivacy, TabularEncoder, fit_modes
from generators.tabular.errors import BadInputError
from generators.tabular.inference import infer_schema
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema


@pytest.fixture
def encoder(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> TabularEncoder:
    return TabularEncoder().fit(mixed_frame, mixed_schema, seed=0)


def test_round_trip_restores_learned_values_and_every_dtype(encoder: TabularEncoder, mixed_frame: pd.DataFrame) -> None:
    back = encoder.inverse_transform(encoder.transform(mixed_frame), seed=0)
    assert list(back.columns) == list(mixed_frame.columns)
    assert back.dtypes.equals(mixed_frame.dtypes)
    pd.testing.assert_series_equal(back["age"], mixed_frame["age"])
    np.testing.assert_allclose(back["income"], mixed_frame["income"], rtol=1e-6)
    assert back["income"].isna().equals(mixed_frame["income"].isna())
    assert back["colour"].isna().equals(mixed_frame["colour"].isna())
    assert (back["colour"].dropna() == mixed_frame["colour"].dropna()).all()
    pd.testing.assert_series_equal(back["member"], mixed_frame["member"])
    pd.testing.assert_series_equal(back["city"], mixed_frame["city"])
    pd.testing.assert_series_equal(back["joined"], mixed_frame["joined"])  # hourly data: decoded exactly


def test_regenerated_columns_hold_no_real_value(encoder: TabularEncoder, mixed_frame: pd.DataFrame) -> None:
    back = encoder.inverse_transform(encoder.transform(mixed_frame), seed=0)
    for column in ("customer_id", "email"):
        assert not back[column].isin(mixed_frame[column]).any()


def test_layout_tiles_the_matrix_with_the_right_activations(encoder: TabularEncoder, mixed_frame: pd.DataFrame) -> None:
    x = encoder.transform(mixed_frame)
    assert x.dtype == torch.float32 and x.shape == (len(mixed_frame), encoder.width_)
    assert [s.start for s in encoder.layout_] == [0] + [s.stop for s in encoder.layout_[:-1]]
    assert encoder.layout_[-1].stop == encoder.width_
    activation = {"value": "tanh", "mode": "softmax", "category": "softmax", "flag": "sigmoid", "null": "sigmoid"}
    assert all(s.activation == activation[s.role] for s in encoder.layout_)
    assert {s.column for s in encoder.layout_} == {"age", "income", "colour", "member", "city", "joined"}
    for span in encoder.layout_:
        block = x[:, span.start : span.stop]
        if span.activation == "softmax":
            assert torch.equal(block.sum(dim=1), torch.ones(len(x)))
        if span.activation == "sigmoid":
            assert set(block.unique().tolist()) <= {0.0, 1.0}
    assert (x[:, [s.start for s in encoder.layout_ if s.role == "value"]].abs() < 1.5).float().mean() > 0.99


def test_missing_values_get_their_own_slot(encoder: TabularEncoder, mixed_frame: pd.DataFrame) -> None:
    x = encoder.transform(mixed_frame)
    null = next(s for s in encoder.layout_ if s.column == "income" and s.role == "null")
    assert torch.equal(x[:, null.start].bool(), torch.from_numpy(mixed_frame["income"].isna().to_numpy()))
    colour = next(s for s in encoder.layout_ if s.column == "colour")
    assert colour.width == 5  # blue, green, red, the rare violet, and missing
    assert not any(s.role == "null" for s in encoder.layout_ if s.column == "age")


def test_mode_specific_normalisation_finds_the_modes() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-50, 1, 3000), rng.normal(50, 5, 7000), [1e4]])
    means, stds, weights = fit_modes(x, EncoderConfig(), rng)
    assert weights.sum() == pytest.approx(1.0)
    heavy = weights > 0.05
    assert means[heavy].min() == pytest.approx(-50, abs=1) and means[heavy].max() == pytest.approx(50, abs=2)
    assert stds[heavy].min() == pytest.approx(1, rel=0.3)
    assert (weights >= EncoderConfig().min_mode_weight).all()  # the lone outlier's mode is pruned
    assert np.all(np.diff(means) > 0)


def test_a_constant_column_encodes_without_dividing_by_zero() -> None:
    df = pd.DataFrame({"c": np.full(50, 7.5), "k": ["a"] * 50})
    schema = Schema(
        (ColumnSpec("c", ColumnKind.NUMERICAL, "float64"), ColumnSpec("k", ColumnKind.CATEGORICAL, "object"))
    )
    encoder = TabularEncoder().fit(df, schema)
    x = encoder.transform(df)
    assert torch.isfinite(x).all() and encoder.width_ == 2
    pd.testing.assert_frame_equal(encoder.inverse_transform(x, seed=0), df)


def test_other_dtypes_round_trip() -> None:
    times = pd.Series(pd.date_range("2021-03-01", periods=6, freq="37min"))
    df = pd.DataFrame(
        {
            "n": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "f": np.linspace(-1e6, 1e6, 6),
            "b": [True, False, True, True, False, False],
            "c": pd.Categorical(["x", "y", "x", None, "y", "x"], categories=["x", "y", "z"]),
            "t": times.astype("datetime64[us]"),
            "s": times.dt.strftime("%d/%m/%Y %H:%M"),
        }
    )
    schema = Schema(
        (
            ColumnSpec("n", ColumnKind.NUMERICAL, "Int64", nullable=True, integer=True),
            ColumnSpec("f", ColumnKind.NUMERICAL, "float64"),
            ColumnSpec("b", ColumnKind.BOOLEAN, "bool"),
            ColumnSpec("c", ColumnKind.CATEGORICAL, "category", nullable=True, categories=("x", "y", "z")),
            ColumnSpec("t", ColumnKind.DATETIME, "datetime64[us]"),
            ColumnSpec("s", ColumnKind.DATETIME, "object", datetime_format="%d/%m/%Y %H:%M"),
        )
    )
    encoder = TabularEncoder().fit(df, schema)
    back = encoder.inverse_transform(encoder.transform(df), seed=0)
    pd.testing.assert_frame_equal(back, df, check_exact=False, rtol=1e-6)
    assert list(back["c"].cat.categories) == ["x", "y", "z"]


def test_unseen_categories_leave_an_empty_group(encoder: TabularEncoder, mixed_frame: pd.DataFrame) -> None:
    df = mixed_frame.head(3).assign(colour="purple")
    colour = next(s for s in encoder.layout_ if s.column == "colour")
    assert encoder.transform(df)[:, colour.start : colour.stop].sum() == 0


def test_bad_input_is_refused(encoder: TabularEncoder, mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    with pytest.raises(BadInputError, match="age"):
        encoder.transform(mixed_frame.assign(age=np.where(np.arange(len(mixed_frame)) == 0, np.nan, 1.0)))
    with pytest.raises(BadInputError, match="city"):
        encoder.transform(mixed_frame.drop(columns="city"))
    with pytest.raises(BadInputError, match="matrix"):
        encoder.inverse_transform(np.zeros((3, encoder.width_ + 1)), seed=0)
    with pytest.raises(BadInputError):
        TabularEncoder().fit(mixed_frame.iloc[:0], mixed_schema)


def test_state_round_trip_loads_weights_only(encoder: TabularEncoder, mixed_frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    torch.save(encoder.to_state(), buffer)
    buffer.seek(0)
    loaded = TabularEncoder.from_state(torch.load(buffer, weights_only=True))
    x = encoder.transform(mixed_frame)
    assert torch.equal(loaded.transform(mixed_frame), x)
    assert loaded.layout_ == encoder.layout_
    pd.testing.assert_frame_equal(loaded.inverse_transform(x, seed=5), encoder.inverse_transform(x, seed=5))


def test_fit_is_deterministic_for_a_seed(mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    config = EncoderConfig(mixture_subsample=100)  # forces the seeded subsample
    first = TabularEncoder(config).fit(mixed_frame, mixed_schema, seed=1).transform(mixed_frame)
    assert torch.equal(first, TabularEncoder(config).fit(mixed_frame, mixed_schema, seed=1).transform(mixed_frame))


def test_high_cardinality_columns_have_bounded_width_and_keep_their_rare_levels() -> None:
    rng = np.random.default_rng(0)
    levels = np.array([f"town-{i}" for i in range(12_000)], dtype=object)
    weights = 1.0 / np.arange(1, len(levels) + 1)  # Zipf: a few big towns, a long tail of rare ones
    frame = pd.DataFrame({"town": rng.choice(levels, 30_000, p=weights / weights.sum())})
    _, schema = infer_schema(frame)
    encoder = TabularEncoder(EncoderConfig(max_category_slots=200)).fit(frame, schema)
    assert encoder.width_ == 201  # 200 own slots + one shared tail slot
    decoded = encoder.inverse_transform(encoder.transform(frame), seed=1)["town"]
    ranked = frame["town"].value_counts().index  # ties around rank 200 may fall either side of the cut
    in_head, in_tail = frame["town"].isin(ranked[:150]), ~frame["town"].isin(ranked[:250])
    assert decoded[in_head].equals(frame["town"][in_head])  # frequent levels round-trip exactly
    assert not decoded[in_tail].isin(ranked[:150]).any()  # tail rows stay in the tail ...
    assert decoded[in_tail].nunique() > 2_000  # ... spread over its many rare levels, not collapsed
    with pytest.raises(BadInputError, match="too rare to condition on"):
        encoder.conditions({"town": frame["town"][in_tail].iloc[0]})


def test_a_spike_decodes_to_exactly_its_value_whatever_the_generator_puts_beside_it() -> None:
    """capital-gain is 0 on 92% of Adult's rows: a generator's slightly-off scalar must not smear that 0."""
    rng = np.random.default_rng(0)
    gains = np.where(rng.random(4_000) < 0.9, 0, rng.integers(1_000, 20_000, 4_000))
    frame = pd.DataFrame({"gain": gains})
    encoder = TabularEncoder().fit(frame, infer_schema(frame)[1])
    encoded = encoder.transform(frame).numpy()
    encoded[:, 0] += rng.normal(0, 0.05, len(encoded))  # the scalar as a generator would get it: a bit off
    decoded = encoder.inverse_transform(encoded, 0)["gain"].to_numpy()
    assert ((decoded == 0) == (gains == 0)).mean() > 0.99  # the zeros stay exactly zero
    restored = TabularEncoder.from_state(encoder.to_state())
    pd.testing.assert_frame_equal(restored.inverse_transform(encoded, 0), encoder.inverse_transform(encoded, 0))


def test_a_column_of_few_values_gets_one_exact_mode_per_value() -> None:
    """education-num's 16 grades: each its own mode, so a generator picks a grade like a category."""
    rng = np.random.default_rng(1)
    grades = rng.integers(1, 17, 3_000)
    frame = pd.DataFrame({"grade": grades})
    encoder = TabularEncoder().fit(frame, infer_schema(frame)[1])
    modes = next(span for span in encoder.layout_ if span.role == "mode")
    assert modes.width == 16
    encoded = encoder.transform(frame).numpy()
    encoded[:, 0] = rng.uniform(-1, 1, len(encoded))  # whatever the scalar, the mode decides the value
    np.testing.assert_array_equal(encoder.inverse_transform(encoded, 0)["grade"].to_numpy(), grades)
    wide = TabularEncoder(EncoderConfig(max_point_modes=0)).fit(frame, infer_schema(frame)[1])
    assert next(span for span in wide.layout_ if span.role == "mode").width == 10  # off: CTGAN's ten modes


def _decimal_frame() -> pd.DataFrame:
    """Wine-like columns of 1 to 3 decimals, some negative and some missing, read from CSV as a user's table is."""
    rng = np.random.default_rng(2)
    n = 600
    acid = rng.integers(38, 142, n) / 10
    sugar = rng.integers(-500, 2000, n) / 100
    chlorides = np.where(rng.random(n) < 0.1, np.nan, rng.integers(-90, 346, n) / 1000)
    text = pd.DataFrame({"acid": acid, "sugar": sugar, "chlorides": chlorides}).to_csv(index=False)
    return pd.read_csv(io.StringIO(text))


def test_decimal_columns_decode_at_the_resolution_of_the_data() -> None:
    """8.9 comes back as 8.9, not as the 8.899999999461949 of the float32 matrix, whatever the scalar beside it."""
    frame = _decimal_frame()
    encoder = TabularEncoder().fit(frame, infer_schema(frame)[1])
    assert [codec.decimals for codec in encoder.codecs_] == [1, 2, 3]  # type: ignore[attr-defined]
    encoded = encoder.transform(frame).numpy()
    pd.testing.assert_frame_equal(encoder.inverse_transform(encoded, 0), frame, check_exact=True)
    encoded[:, 0] += np.random.default_rng(0).normal(0, 0.05, len(encoded))  # a generator's slightly-off scalar
    acid = encoder.inverse_transform(encoded, 0)["acid"]
    assert (acid.round(1) == acid).all() and acid.between(frame["acid"].min(), frame["acid"].max()).all()
    saved = encoder.to_state()
    pd.testing.assert_frame_equal(
        TabularEncoder.from_state(saved).inverse_transform(encoded, 0), encoder.inverse_transform(encoded, 0)
    )
    for codec in saved["codecs"].values():  # a model saved before the resolution was learned: not rounded
        del codec["decimals"]
    old = TabularEncoder.from_state(saved).inverse_transform(encoded, 0)["acid"]
    assert (old.round(1) != old).any()


def test_continuous_and_integer_columns_keep_their_handling() -> None:
    """Genuinely continuous values are not rounded; integers are rounded to whole numbers as before."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"reading": rng.normal(0, 1, 500), "count": rng.integers(-50, 50, 500)})
    encoder = TabularEncoder().fit(frame, infer_schema(frame)[1])
    assert [(codec.step, codec.decimals) for codec in encoder.codecs_] == [(0, None), (1, None)]  # type: ignore[attr-defined]
    back = encoder.inverse_transform(encoder.transform(frame), 0)
    np.testing.assert_allclose(back["reading"], frame["reading"], rtol=1e-6, atol=1e-6)
    assert (back["reading"].round(9) != back["reading"]).any()
    pd.testing.assert_series_equal(back["count"], frame["count"])


def test_a_few_values_off_every_grid_leave_a_column_its_resolution() -> None:
    """Wine's alcohol: 1 or 2 decimals but for 0.4% of rows (computed values such as 10.9666666666667)."""
    rng = np.random.default_rng(4)
    alcohol = rng.integers(80, 142, 1_000) / 10
    alcohol[:4] = [10.9666666666667, 9.53333333333333, 11.3333333333333, 12.8933333333333]
    frame = pd.DataFrame({"alcohol": alcohol})
    encoder = TabularEncoder().fit(frame, infer_schema(frame)[1])
    assert encoder.codecs_[0].decimals == 1  # type: ignore[attr-defined]
    back = encoder.inverse_transform(encoder.transform(frame), 0)["alcohol"]
    pd.testing.assert_series_equal(back[4:], frame["alcohol"][4:], check_exact=True)
    assert back.between(alcohol.min(), alcohol.max()).all()
    alcohol[:20] += rng.random(20)  # 2% of rows off every grid: the column is taken as continuous
    frame = pd.DataFrame({"alcohol": alcohol})
    assert TabularEncoder().fit(frame, infer_schema(frame)[1]).codecs_[0].decimals is None  # type: ignore[attr-defined]


def test_huge_magnitudes_keep_the_resolution_of_the_small_values() -> None:
    """Past 2^53 every float64 is whole: such values fit any resolution."""
    frame = pd.DataFrame({"x": [3e17 + 64, -3e17, 0.25, -3.5, 1.75] * 20})
    encoder = TabularEncoder().fit(frame, infer_schema(frame)[1])
    assert encoder.codecs_[0].decimals == 2  # type: ignore[attr-defined]
    back = encoder.inverse_transform(encoder.transform(frame), 0)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)


def test_a_private_fit_learns_no_resolution() -> None:
    """The decimals are a fact of the rows that no noise covers, so a DP fit does not round to them."""
    frame = _decimal_frame()
    encoder = TabularEncoder().fit(frame, infer_schema(frame)[1], privacy=EncoderPrivacy(3.0, 1e-6))
    assert all(codec.decimals is None for codec in encoder.codecs_)  # type: ignore[attr-defined]
