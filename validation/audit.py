"""The whole fidelity evidence for one synthetic table, gathered in one call: what the gate judges and
the report shows.

Each part answers its own question: sdmetrics' quality (how close on average, column by column and pair
by pair), its diagnostic (are the values valid at all), a Great Expectations suite derived from the real
data (does the synthetic table honour the real table's contract), null and category drift (what an
average hides), utility (does a model trained on it predict real rows) and the figures a steward
looks at first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from generators.schema import Schema
from validation.drift import ColumnDrift, column_drift
from validation.expectations import ExpectationsResult, check_expectations
from validation.fidelity import FidelityResult, evaluate_diagnostic, evaluate_fidelity
from validation.plots import column_distributions, correlation_difference
from validation.utility import UtilityResult, evaluate_utility

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FidelityAudit:
    """`quality`: sdmetrics' QualityReport with per-column and per-pair scores; `diagnostic`: its
    DiagnosticReport score; `figures`: title -> PNG bytes; `timings`: seconds per part."""

    quality: FidelityResult
    diagnostic: float
    expectations: ExpectationsResult
    drift: ColumnDrift
    utility: UtilityResult | None
    figures: dict[str, bytes] = field(repr=False)
    timings: dict[str, float]


def audit_fidelity(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    target: str | None = None,
    docs_dir: Path | None = None,
    seed: int = 0,
) -> FidelityAudit:
    """Judge `synthetic` against the real `train` rows (and, for utility, the unseen `holdout` rows).

    `target`: the column whose prediction measures utility (None: no utility). `docs_dir`: where GX's
    Data Docs are built (None: not built).
    """
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = time.perf_counter() - start

    start = time.perf_counter()
    quality = evaluate_fidelity(train, synthetic, schema)
    timed("quality_s", start)
    start = time.perf_counter()
    diagnostic = evaluate_diagnostic(train, synthetic, schema)
    timed("diagnostic_s", start)
    start = time.perf_counter()
    expectations = check_expectations(train, synthetic, schema, docs_dir=docs_dir)
    timed("expectations_s", start)
    start = time.perf_counter()
    drift = column_drift(train, synthetic, schema)
    timed("drift_s", start)
    start = time.perf_counter()
    utility = evaluate_utility(train, holdout, synthetic, schema, target, seed=seed) if target else None
    timed("utility_s", start)
    start = time.perf_counter()
    figures = {
        "Column distributions, real vs synthetic": column_distributions(
            train, synthetic, schema, scores=quality.per_column
        ),
        "Association difference |real - synthetic|": correlation_difference(train, synthetic, schema),
    }
    timed("figures_s", start)
    logger.info("fidelity audit in %.1f s: %s", sum(timings.values()),
                ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items()))
    return FidelityAudit(quality, diagnostic, expectations, drift, utility, figures, timings)
