"""The contract every registered generator keeps; a new model file is covered automatically.

A new generator adds here only its fast parameters (if its defaults are slow) and its pinned digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_mixed_frame, mixed_schema_for

from generators import (
    GENERATORS,
    BadInputError,
    ColumnKind,
    ColumnSpec,
    Schema,
    create,
    describe,
    get_generator_class,
    registry,
)
from generators.base import Generator
from generators.nn.training import History, TrainingConfig

# Parameters that keep a generator's fit on the tiny table within seconds (e.g. few epochs).
FAST_PARAMS: dict[str, dict[str, object]] = {
    "vae": {"steps": 300},
    "autoencoder": {"steps": 300},
    "ddpm": {"timesteps": 20, "steps": 150, "eval_every": 50},
    "rbm": {"steps": 300, "hidden": [32], "learning_rate": 0.01, "burn_in": 20, "thinning": 2},
    "gan": {"batch_size": 200, "steps": 300, "eval_every": 100},
}
# sha256 of each generator's seeded output (see `test_seeded_output_matches_its_pinned_digest`): a change that
# alters what a seed gives (a refactor that moves a random draw, a new default) fails there and must say so here.
DIGESTS = {
    "autoencoder": "b828dd8cba58f62acb7e43eed7df5bafe10bb4515f6f2a0b151b1afe362df645",
    "cart": "6303fb994cecde1f81fa2dcd916a1558be3fd605b420752609be58bc58fdad1c",
    "copula": "e03900929e078a2cf05685fe93560224d2dfdfbffe539f7f19911f42dfd340d6",
    "ddpm": "58aff8ab50d3b8986e0e93699caaa9c91a766f8ad0bc5ab868925a12c838f514",
    "gan": "2fdb7c4159b7672f271d8c72818494967eb5168587867a7465ddb212d22c8f33",
    "gmm": "a56cabfd964e8ce5df875725e04f48dd44edbe00c4f63c2fa8e3bba2ea2ea863",
    "mst": "5e1f17fd0c072ac953a18b0360b36a19b79b702d34d4a442eed622b70628b4ea",
    "rbm": "8b4e494179de11ebcab498c50ac7bcb8d3823d168b9efbbe41888c315d1f38d4",
    "vae": "550a6df5f3a643acfa5f5ac84b9373224b25924e4289bc9d665b3bcabff6849e",
}
# The digests' fits use the fast parameters, except gan's: at batches of 200, 300 steps of adversarial
# training amplify the last-bit differences between 1 and 2 torch threads past the digest's rounding.
DIGEST_PARAMS = FAST_PARAMS | {"gan": {"batch_size": 100, "steps": 150, "eval_every": 50, "eval_rows": 500}}
NEURAL = ("vae", "autoencoder", "ddpm", "rbm", "gan")
ADULT = Path(__file__).resolve().parents[2] / "data" / "adult.parquet"
ADULT_COLUMNS = ["age", "workclass", "education-num", "marital-status", "sex", "capital-gain", "hours-per-week",
                 "class"]
N = 2000


def _fit(name: str, seed: int = 0) -> Generator:
    df = make_mixed_frame()
    return create(name, FAST_PARAMS.get(name), seed=seed, device="cpu").fit(df, mixed_schema_for(df))


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def fitted(request: pytest.FixtureRequest) -> Generator:
    return _fit(request.param)


@pytest.fixture(scope="module")
def synthetic(fitted: Generator) -> pd.DataFrame:
    return fitted.sample(N, seed=7)


def test_sample_has_n_rows_and_the_training_columns_and_dtypes(
    synthetic: pd.DataFrame, mixed_frame: pd.DataFrame
) -> None:
    assert len(synthetic) == N
    assert list(synthetic.columns) == list(mixed_frame.columns)
    assert synthetic.dtypes.equals(mixed_frame.dtypes)


def test_categories_come_from_training(synthetic: pd.DataFrame, mixed_frame: pd.DataFrame) -> None:
    for column in ("colour", "city"):
        assert set(synthetic[column].dropna()) <= set(mixed_frame[column].dropna())
    assert synthetic["colour"].nunique() >= 3


def test_missing_rates_are_roughly_kept(synthetic: pd.DataFrame, mixed_frame: pd.DataFrame) -> None:
    for column in ("income", "colour", "member", "joined"):
        real = mixed_frame[column].isna().mean()
        assert abs(synthetic[column].isna().mean() - real) < 0.5 * real + 0.03, column


def test_numbers_and_datetimes_stay_in_bounds(synthetic: pd.DataFrame, mixed_schema: Schema) -> None:
    low, high = mixed_schema["age"].bounds or (0, 0)
    assert synthetic["age"].between(low, high).all() and synthetic["age"].nunique() > 10
    low, high = mixed_schema["income"].bounds or (0, 0)
    assert synthetic["income"].dropna().between(low, high).all()
    assert str(synthetic["joined"].dt.tz) == "Europe/Paris"
    epoch = synthetic["joined"].dropna().astype("int64")
    low, high = mixed_schema["joined"].bounds or (0, 0)
    assert epoch.between(low, high).all() and epoch.nunique() > 10


def test_id_and_pii_are_regenerated_never_copied(synthetic: pd.DataFrame, mixed_frame: pd.DataFrame) -> None:
    assert synthetic["customer_id"].is_unique
    assert not synthetic["customer_id"].isin(mixed_frame["customer_id"]).any()
    assert not synthetic["email"].isin(mixed_frame["email"]).any()
    assert synthetic["email"].str.fullmatch(r"[^@\s]+@[^@\s]+\.org").all()


def test_seeds_make_samples_reproducible(fitted: Generator, synthetic: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(fitted.sample(N, seed=7), synthetic)
    assert not fitted.sample(N, seed=8).equals(synthetic)
    pd.testing.assert_frame_equal(fitted.sample(50), fitted.sample(50))


def test_the_generator_seed_decides_the_model(fitted: Generator) -> None:
    name = fitted.name
    pd.testing.assert_frame_equal(_fit(name, seed=0).sample(100), fitted.sample(100))
    assert not _fit(name, seed=1).sample(100).equals(fitted.sample(100))


def test_save_and_load_give_identical_samples_and_scores(
    fitted: Generator, tmp_path: Path, mixed_frame: pd.DataFrame
) -> None:
    path = tmp_path / "model.pt"
    fitted.save(path)
    loaded = registry.load(path)
    assert type(loaded) is type(fitted) and loaded.config == fitted.config
    assert loaded.history_ == fitted.history_
    pd.testing.assert_frame_equal(loaded.sample(300, seed=3), fitted.sample(300, seed=3))
    np.testing.assert_array_equal(loaded.score(mixed_frame), fitted.score(mixed_frame))


def test_the_fit_leaves_a_history(fitted: Generator) -> None:
    """What the fit did, in one form for every model.

    Records of its checks (or iterations), in step order, within the steps it ran, which are within those planned.
    """
    history = fitted.history_
    assert isinstance(history, History) and history.records
    steps = [r["step"] for r in history.records]
    assert steps == sorted(steps) and steps[-1] == history.steps <= history.planned_steps
    assert history.epochs > 0 and all(r["epoch"] > 0 for r in history.records)
    if fitted.name in NEURAL:
        assert all(r["learning_rate"] >= 0 for r in history.records)
        assert history.best_held_out is not None and history.stopped_early == (history.steps < history.planned_steps)


def test_score_is_finite_per_row_and_prefers_real_rows(fitted: Generator, mixed_frame: pd.DataFrame) -> None:
    scores = fitted.score(mixed_frame)
    assert scores.shape == (len(mixed_frame),) and np.isfinite(scores).all()
    rng = np.random.default_rng(0)
    scrambled = mixed_frame.apply(lambda column: column.iloc[rng.permutation(len(column))].to_numpy())
    assert np.median(scores) > np.median(fitted.score(scrambled))


def test_zero_rows_and_bad_counts(fitted: Generator, mixed_frame: pd.DataFrame) -> None:
    empty = fitted.sample(0)
    assert empty.empty and empty.dtypes.equals(mixed_frame.dtypes)
    for bad in (-1, 2.5):
        with pytest.raises(BadInputError):
            fitted.sample(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_unusable_tables_are_refused(name: str, mixed_frame: pd.DataFrame, mixed_schema: Schema) -> None:
    with pytest.raises(BadInputError, match="empty"):
        create(name).fit(mixed_frame.iloc[:0], mixed_schema)
    only_regenerated = Schema(tuple(mixed_schema[c] for c in ("customer_id", "email")))
    with pytest.raises(BadInputError, match="nothing to learn"):
        create(name).fit(mixed_frame, only_regenerated)
    with pytest.raises(RuntimeError, match="fit"):
        create(name).sample(1)


def test_the_registry_refuses_unknown_names_and_parameters() -> None:
    with pytest.raises(BadInputError, match="gmm"):
        get_generator_class("no-such-model")
    with pytest.raises(BadInputError, match="no_such_param"):
        create("gmm", {"no_such_param": 1})
    assert create("gmm", {"components": [2, 4]}).config.components == (2, 4)
    with pytest.raises(BadInputError, match="tpu"):
        create("gmm", device="tpu")
    with pytest.raises(BadInputError, match=r"generator 'rbm': parameter 'hidden' takes a list, e.g. \[32\]"):
        create("rbm", {"hidden": 32})


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("ddpm", "ema", "ema_decay"),
        ("gan", "ema", "ema_decay"),
        ("gan", "max_steps", "steps"),
        ("ddpm", "time_limit", "steps"),
        ("ddpm", "evaluations", "eval_every"),
        ("ddpm", "width", "hidden"),
        ("gan", "generator_dims", "hidden"),
        ("gan", "critic_dims", "critic_hidden"),
        ("gan", "embedding_dim", "latent"),
        ("rbm", "max_batch", "batch_size"),
        ("vae", "max_batch", "batch_size"),
    ],
)
def test_an_old_parameter_name_is_refused_with_its_new_one(name: str, old: str, new: str) -> None:
    """Users type parameters into YAML: a name from before the shared vocabulary says what it is now."""
    with pytest.raises(BadInputError, match=f"^generator '{name}': parameter '{old}' is now '{new}'$"):
        create(name, {old: 1})


def test_one_vocabulary_of_training_parameters() -> None:
    """Every neural config is a `TrainingConfig` (one name per training idea).

    `hidden` is always a tuple of layer widths, and the rename table names no parameter that still exists and only
    ones that do.
    """
    fields = {name: {f.name for f in dataclasses.fields(get_generator_class(name).config_class)} for name in GENERATORS}
    for name in NEURAL:
        config = get_generator_class(name).config_class()
        assert isinstance(config, TrainingConfig) and isinstance(config.hidden, tuple), name
    for old, new in registry.RENAMED.items():
        assert not any(old in known for known in fields.values()), old
        assert any(new in known for known in fields.values()), new


def test_describe_lists_every_generator_with_a_summary() -> None:
    described = dict(describe())
    assert set(described) == set(GENERATORS)
    assert all(summary for summary in described.values())


def test_importing_the_package_does_not_load_models_or_torch() -> None:
    code = "import sys, generators; assert 'torch' not in sys.modules and 'generators.models.gmm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_conditional_sampling_fixes_the_requested_values(fitted: Generator) -> None:
    rows = fitted.sample(300, seed=3, conditions={"colour": "violet", "member": True})
    assert len(rows) == 300
    assert (rows["colour"] == "violet").all() and rows["member"].eq(True).all()
    assert rows["age"].nunique() > 5  # the other columns still vary
    pd.testing.assert_frame_equal(rows, fitted.sample(300, seed=3, conditions={"colour": "violet", "member": True}))


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({"age": 30}, "conditions take categorical"),
        ({"colour": "pink"}, "not a category seen in training"),
        ({"nope": "x"}, "not a learned column"),
        ({"email": "a@b.org"}, "not a learned column"),
    ],
)
def test_bad_conditions_are_one_line_errors(fitted: Generator, conditions: dict, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        fitted.sample(10, conditions=conditions)


def _degenerate_tables() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 300
    return {
        "one number": pd.DataFrame({"x": rng.normal(size=n)}),
        "one category": pd.DataFrame({"c": rng.choice(["a", "b", "c"], n).astype(object)}),
        "all categorical": pd.DataFrame({"a": rng.choice(list("abc"), n).astype(object),
                                         "b": rng.choice(list("xy"), n).astype(object)}),
        "constant and all-null": pd.DataFrame({"x": rng.normal(size=n), "k": np.full(n, 7.0),
                                               "e": pd.Series([None] * n, dtype=object),
                                               "g": rng.choice(["u", "v"], n).astype(object)}),
    }


@pytest.mark.parametrize("table", list(_degenerate_tables()))
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_degenerate_tables_fit_and_sample(name: str, table: str) -> None:
    """One column, only categories, a constant and an all-null column: shapes real tables have."""
    from generators.tabular.inference import infer_schema

    frame, schema = infer_schema(_degenerate_tables()[table])
    sample = create(name, FAST_PARAMS.get(name), seed=0, device="cpu").fit(frame, schema).sample(50)
    assert list(sample.columns) == list(frame.columns) and len(sample) == 50
    if "k" in frame:
        assert (sample["k"] == 7.0).all() and sample["e"].isna().all()


@pytest.fixture(scope="module")
def adult_sample() -> tuple[pd.DataFrame, Schema]:
    """300 rows of the bundled Adult table, a few columns of every kind, with a schema stated in full."""
    frame = pd.read_parquet(ADULT, columns=ADULT_COLUMNS).iloc[:300].reset_index(drop=True)
    counts = ("age", "education-num", "capital-gain", "hours-per-week")
    specs = [
        ColumnSpec(c, ColumnKind.NUMERICAL, "int64", bounds=(float(frame[c].min()), float(frame[c].max())),
                   integer=True)
        if c in counts
        else ColumnSpec(c, ColumnKind.CATEGORICAL, "object", categories=tuple(sorted(frame[c].unique())))
        for c in ADULT_COLUMNS
    ]
    return frame, Schema(tuple(specs))


def rows_digest(rows: pd.DataFrame) -> str:
    """sha256 of the rows as CSV, numbers at 6 significant digits.

    The rounding forgives last-bit float differences (another BLAS, another CPU, 1 or 2 torch threads:
    checked); any real change shows. The digests are of the CPU build of torch: a GPU run would differ.
    """
    numbers = rows.select_dtypes("number").columns
    rounded = rows.assign(**{c: rows[c].map(lambda v: f"{v:.6g}") for c in numbers})
    return hashlib.sha256(rounded.to_csv(index=False).encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_seeded_output_matches_its_pinned_digest(name: str, adult_sample: tuple[pd.DataFrame, Schema]) -> None:
    """Fitted on 300 Adult rows with its digest parameters, 200 rows sampled with seed 5 hash to the pinned value."""
    model = create(name, DIGEST_PARAMS.get(name), seed=0, device="cpu").fit(*adult_sample)
    found = rows_digest(model.sample(200, seed=5))
    assert name in DIGESTS, f"pin the digest of the new generator: DIGESTS['{name}'] = '{found}'"
    assert found == DIGESTS[name]
