"""Pinned digests of every registered generator's seeded output.

A change that alters what a seed gives (a refactor that moves a random draw, a new default) fails here and must
say so by updating the digest.

Each generator is fitted on the same 300 rows of the bundled Adult table (a few columns of every kind it
has), with budgets small enough to run in seconds, and samples 200 rows with a fixed seed. Numbers are
rounded to 6 significant digits before hashing, so last-bit float differences (another BLAS, another CPU,
1 or 2 torch threads: checked) do not count; any real change does. The digests are of the CPU build of
torch: a GPU run would differ.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from generators import GENERATORS, ColumnKind, ColumnSpec, Schema, create

ADULT = Path(__file__).resolve().parents[2] / "data" / "adult.parquet"
COLUMNS = ["age", "workclass", "education-num", "marital-status", "sex", "capital-gain", "hours-per-week", "class"]
PARAMS: dict[str, dict[str, object]] = {
    "vae": {"steps": 200},
    "autoencoder": {"steps": 200},
    "ddpm": {"timesteps": 20, "steps": 150, "eval_every": 50},
    "rbm": {"steps": 200, "hidden": [32], "learning_rate": 0.01, "burn_in": 20, "thinning": 2},
    "gan": {"batch_size": 100, "steps": 150, "eval_every": 50, "eval_rows": 500},
}
DIGESTS = {
    "autoencoder": "a91659f900b795ea324a49151493b05377ada1fdbb7a22a250e05d850c875bac",
    "copula": "e03900929e078a2cf05685fe93560224d2dfdfbffe539f7f19911f42dfd340d6",
    "ddpm": "58aff8ab50d3b8986e0e93699caaa9c91a766f8ad0bc5ab868925a12c838f514",
    "gan": "2fdb7c4159b7672f271d8c72818494967eb5168587867a7465ddb212d22c8f33",
    "gmm": "a56cabfd964e8ce5df875725e04f48dd44edbe00c4f63c2fa8e3bba2ea2ea863",
    "rbm": "32a24e2418a2659d87bfbb3ffa64f094c40c19a8a85d2c158f8828ac33b08eab",
    "vae": "dd1fe5b6be8b0d7ac89c5b8d8384b0fd406aa3e3dd493d3e7855df14c03c6ed7",
}


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, Schema]:
    frame = pd.read_parquet(ADULT, columns=COLUMNS).iloc[:300].reset_index(drop=True)
    categories = {c: tuple(sorted(frame[c].unique())) for c in ("workclass", "marital-status", "sex", "class")}
    counts = ("age", "education-num", "capital-gain", "hours-per-week")
    numbers = {c: (float(frame[c].min()), float(frame[c].max())) for c in counts}
    schema = Schema(
        tuple(
            ColumnSpec(c, ColumnKind.NUMERICAL, "int64", bounds=numbers[c], integer=True)
            if c in numbers
            else ColumnSpec(c, ColumnKind.CATEGORICAL, "object", categories=categories[c])
            for c in COLUMNS
        )
    )
    return frame, schema


def digest(rows: pd.DataFrame) -> str:
    """sha256 of the rows as CSV, numbers at 6 significant digits."""
    numbers = rows.select_dtypes("number").columns
    rounded = rows.assign(**{c: rows[c].map(lambda v: f"{v:.6g}") for c in numbers})
    return hashlib.sha256(rounded.to_csv(index=False).encode()).hexdigest()


def test_every_generator_has_a_pinned_digest() -> None:
    assert set(DIGESTS) == set(GENERATORS)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_seeded_output_matches_its_pinned_digest(name: str, table: tuple[pd.DataFrame, Schema]) -> None:
    model = create(name, PARAMS.get(name), seed=0, device="cpu").fit(*table)
    assert digest(model.sample(200, seed=5)) == DIGESTS[name]
