"""Benchmark tables: the bundled Adult table plus seeded, generated tables with planted facts of known value.

The generated tables stress what breaks synthesizers in practice; each planted fact's true value is known,
not just estimated. Beside them, by name, the UCI tables of the calibration folder (`calibration_tables`): real
tables nobody tuned a generator on, with no planted facts.

A `Truth` is a statistic computed on any frame, with the value planted when the table was generated:
how far a synthetic table's statistic lands from it says whether the structure was learned, independently
of sdmetrics. Nothing is downloaded: every generated table comes from its seed alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.sources import read_source
from generators.tabular.inference import infer_schema
from generators.tabular.schema import infer_target

ROOT = Path(__file__).resolve().parent.parent
ADULT = ROOT / "data" / "adult.parquet"
CALIBRATION_TABLES = Path("/work/shared/datasets/calibration")  # the gate's calibration tables (benchmarks.calibrate)


@dataclass(frozen=True)
class Truth:
    """A planted fact: `statistic(frame)` should come out near `planted` on a faithful table."""

    name: str
    planted: float
    statistic: Callable[[pd.DataFrame], float]


@dataclass(frozen=True)
class BenchTable:
    """A benchmark table: its frame, the target utility predicts, the facts to check, and a line about it."""

    name: str
    frame: pd.DataFrame
    target: str | None
    truths: tuple[Truth, ...]
    about: str


def load(name: str, rows: int | None = None, seed: int = 0, **options: Any) -> BenchTable:
    """A benchmark table by name; `rows` subsamples it (seeded) for quick runs.

    `options` go to the table's builder (e.g. `width` of the wide table). A name that is no builder's is a table of
    the calibration folder (`calibration_tables`).
    """
    table = DATASETS[name](seed, **options) if name in DATASETS else calibration(calibration_tables()[name])
    if rows is not None and rows < len(table.frame):
        frame = table.frame.sample(rows, random_state=seed).reset_index(drop=True)
        table = BenchTable(table.name, frame, table.target, table.truths, table.about)
    return table


def _corr(a: str, b: str, transform: Callable[[pd.Series], pd.Series] = lambda s: s) -> Callable[[pd.DataFrame], float]:
    def statistic(frame: pd.DataFrame) -> float:
        pair = frame[[a, b]].dropna()
        return float(np.corrcoef(transform(pair[a].astype(float)), transform(pair[b].astype(float)))[0, 1])

    return statistic


def adult(seed: int) -> BenchTable:
    """The bundled UCI Adult table; its facts are estimates from the full census extract, not planted values."""
    frame = pd.read_parquet(ADULT)
    share = float((frame["class"] == ">50K").mean())
    truths = (  # Adult's facts are estimates from the full census extract, not planted values
        Truth("share of >50K", share, lambda f: float((f["class"] == ">50K").mean())),
        Truth(
            "corr(education-num, hours-per-week)",
            float(_corr("education-num", "hours-per-week")(frame)),
            _corr("education-num", "hours-per-week"),
        ),
    )
    return BenchTable("adult", frame, "class", truths, "UCI Adult census extract, 32,561 rows x 15 columns")


def events(seed: int, n: int = 20_000) -> BenchTable:
    """Datetimes in a time zone and missing values in every learned kind."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(["web", "app", "store", "phone", "partner"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    mobile = np.where(channel == "app", rng.random(n) < 0.9, rng.random(n) < 0.2)
    z = rng.multivariate_normal([0, 0], [[1, 0.7], [0.7, 1]], n)  # planted: corr of the logs = 0.7
    duration = np.exp(4 + 0.8 * z[:, 0])
    amount = np.round(np.exp(3 + 0.6 * z[:, 1]), 2)
    start = pd.Timestamp("2024-01-01", tz="America/New_York")
    hours = rng.gamma(2.0, 24 * 90, n)  # event times spread over about a year
    frame = pd.DataFrame(
        {
            "event_id": "ev-" + pd.Series(rng.permutation(n) + 10**7).astype(str),
            "occurred_at": start + pd.to_timedelta(hours, unit="h"),
            "channel": channel.astype(object),
            "is_mobile": pd.array(mobile, dtype="boolean"),
            "duration_s": duration,
            "amount": amount,
            "retries": rng.poisson(0.7, n).astype(float),
        }
    )
    for column, rate in {
        "occurred_at": 0.03,
        "channel": 0.04,
        "is_mobile": 0.05,
        "duration_s": 0.08,
        "amount": 0.05,
        "retries": 0.1,
    }.items():
        frame.loc[rng.random(n) < rate, column] = None
    truths = (
        Truth("corr(log duration, log amount)", 0.7, _corr("duration_s", "amount", np.log)),
        Truth("P(mobile | app)", 0.9, lambda f: float(f.loc[f["channel"] == "app", "is_mobile"].dropna().mean())),
        Truth("share of missing duration", 0.08, lambda f: float(f["duration_s"].isna().mean())),
    )
    return BenchTable("events", frame, "channel", truths, f"{n:,} events: tz-aware datetimes, NaNs in every kind")


def customers(seed: int, n: int = 30_000, towns: int = 40_000) -> BenchTable:
    """A high-cardinality categorical (≥ 10,000 levels, Zipf-distributed) beside an id and an email column."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, towns + 1) ** 0.5
    town = rng.choice(np.array([f"town-{i:05d}" for i in range(towns)], dtype=object), n, p=weights / weights.sum())
    segment = rng.choice(["retail", "smb", "enterprise", "public"], n, p=[0.6, 0.25, 0.1, 0.05])
    age = np.clip(np.round(rng.normal(45, 14, n)), 18, 95)
    z = 0.5 * (age - 45) / 14 + np.sqrt(1 - 0.25) * rng.standard_normal(n)  # planted: corr(age, z) = 0.5
    income = np.round(40_000 + 15_000 * z + np.where(segment == "enterprise", 30_000, 0), 0)
    frame = pd.DataFrame(
        {
            "customer_id": rng.permutation(n) + 100_000,
            "email": "c"
            + pd.Series(np.arange(n)).astype(str)
            + "."
            + pd.Series(rng.integers(1000, 9999, n)).astype(str)
            + "@mail"
            + pd.Series(rng.integers(1, 9, n)).astype(str)
            + ".example",
            "town": town,
            "segment": segment.astype(object),
            "age": age.astype(np.int64),
            "income": income,
            "signed_up": pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3650, n), unit="D"),
        }
    )
    distinct = frame["town"].nunique()

    def premium(f: pd.DataFrame) -> float:  # planted: enterprise earns 30,000 more, whatever the age
        by_segment = f.groupby("segment")["income"].mean()
        return float((by_segment.get("enterprise", np.nan) - by_segment.get("retail", np.nan)) / 30_000)

    truths = (
        Truth("corr(age, income) in retail", 0.5, lambda f: _corr("age", "income")(f[f["segment"] == "retail"])),
        Truth("share of enterprise", 0.1, lambda f: float((f["segment"] == "enterprise").mean())),
        Truth("enterprise income premium / 30,000", 1.0, premium),
    )
    return BenchTable(
        "customers",
        frame,
        "segment",
        truths,
        f"{n:,} customers: {distinct:,} distinct towns, an id and an email column",
    )


def wide(seed: int, n: int = 10_000, factors: int = 5, width: int = 120) -> BenchTable:
    """`width` (120) mixed columns driven by 5 latent factors: a planted correlation structure across kinds.

    Half the columns are numeric, a third categorical, a tenth boolean, a fifteenth datetime (rounded down).
    """
    if width < 30:
        raise ValueError("the wide table needs a width of at least 30 columns")
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, factors))
    columns: dict[str, object] = {}
    loadings = rng.uniform(0.5, 0.9, width // 2)
    for j in range(width // 2):  # numeric: loading on one factor, planted corr within a factor = l_i * l_j
        noise = np.sqrt(1 - loadings[j] ** 2) * rng.standard_normal(n)
        columns[f"num_{j:02d}"] = loadings[j] * latent[:, j % factors] + noise
    for j in range(width // 3):  # categorical: a noisy factor cut into 3-6 levels
        levels = 3 + j % 4
        noisy = latent[:, j % factors] + 0.5 * rng.standard_normal(n)
        cuts = np.quantile(noisy, np.linspace(0, 1, levels + 1)[1:-1])
        columns[f"cat_{j:02d}"] = np.array([f"L{k}" for k in range(levels)], dtype=object)[np.searchsorted(cuts, noisy)]
    for j in range(width // 10):
        columns[f"flag_{j:02d}"] = latent[:, j % factors] + rng.standard_normal(n) > 0.5
    for j in range(width // 15):
        columns[f"when_{j:02d}"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
            np.round(latent[:, j % factors] * 60 + 400 + 20 * rng.standard_normal(n)), unit="D"
        )
    frame = pd.DataFrame(columns)
    planted = float(loadings[0] * loadings[5])  # num_00 and num_05 load on factor 0
    truths = (
        Truth("corr(num_00, num_05)", planted, _corr("num_00", "num_05")),
        Truth("corr(num_00, num_01)", 0.0, _corr("num_00", "num_01")),
        Truth("P(flag_00)", float(_share_above(0.5, 2.0)), lambda f: float(f["flag_00"].mean())),
    )
    return BenchTable("wide", frame, "cat_00", truths, f"{n:,} rows x {frame.shape[1]} mixed columns, 5 latent factors")


def _share_above(threshold: float, variance: float) -> float:
    """P(X > threshold) for X ~ N(0, variance)."""
    from scipy.stats import norm

    return float(norm.sf(threshold / np.sqrt(variance)))


def calibration_tables(folder: Path = CALIBRATION_TABLES) -> dict[str, Path]:
    """Every CSV of the calibration folder, by stem; none where the folder is absent (it is not in the repository)."""
    return {path.stem: path for path in sorted(folder.glob("*.csv"))}


def calibration(path: Path) -> BenchTable:
    """A calibration CSV as a user's run reads it, its `?` markers and quoting included, with the product's target.

    `read_source` is what `flows.sources.load_table` reads with; the benchmark then infers the schema from the raw
    frame as `load_table` does, so every system sees the product's own columns. The target is the one the product's
    utility check would infer (`infer_target`). Real tables have no planted facts: their truths are empty.
    """
    frame, info = read_source(path)
    target = infer_target(infer_schema(frame)[1])
    about = f"UCI calibration table, {info.rows:,} rows x {info.columns} columns"
    return BenchTable(path.stem, frame, target, (), about)


DATASETS: dict[str, Callable[..., BenchTable]] = {
    "adult": adult,
    "events": events,
    "customers": customers,
    "wide": wide,
}
