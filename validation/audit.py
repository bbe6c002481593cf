"""The whole fidelity evidence for one synthetic table, in one call: what the gate judges and the report shows.

Each part answers its own question: sdmetrics' quality (how close on average), its diagnostic (are the
values valid at all), each column's shape and null share and each strongly associated pair, with how sure
each difference is (`validation.comparison`), a Great Expectations suite derived from the real data (does
the synthetic table honour the real table's contract), category coverage (what an average hides), utility
(does a model trained on it predict real rows), whether a classifier can tell its rows from real ones and
how far its 3-way marginals are (`validation.c2st`, `validation.marginals`: reported, not yet gated: they
see what the saturated averages do not), and the figures a steward looks at first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from generators.tabular.schema import Schema
from validation.c2st import C2stResult, classifier_two_sample
from validation.comparison import ColumnComparisons, Comparison, compare_columns, domain_validity
from validation.drift import CategoryCoverage, category_coverage
from validation.expectations import ExpectationsResult, check_expectations
from validation.fidelity import FidelityResult, evaluate_diagnostic, evaluate_fidelity
from validation.marginals import MarginalDistance, three_way_marginal_distance
from validation.plots import column_distributions, correlation_difference
from validation.utility import UtilityResult, evaluate_utility

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FidelityAudit:
    """The fidelity evidence for one synthetic table, one field per part, for the gate and the report to read.

    `quality`: sdmetrics' QualityReport with per-column and per-pair scores; `diagnostic`: its
    DiagnosticReport score; `validity`: the share of synthetic cells inside the real domain, tested against
    the holdout's; `columns`: each column's shape and null share and each strong pair's association, with
    the p-values the gate reads; `coverage`: common categories lost; `c2st`: how well a classifier tells
    the synthetic rows from the training rows; `marginals`: the 3-way marginal distance to the training
    rows, against the holdout's; `figures`: title -> PNG bytes; `timings`: seconds per part.
    """

    quality: FidelityResult
    diagnostic: float
    validity: Comparison
    columns: ColumnComparisons
    expectations: ExpectationsResult
    coverage: CategoryCoverage
    utility: UtilityResult | None
    c2st: C2stResult
    marginals: MarginalDistance
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
    alpha: float = 0.001,
    figures: bool = True,
) -> FidelityAudit:
    """Judge `synthetic` against the real `train` rows (and, for utility, the unseen `holdout` rows).

    `target`: the column whose prediction measures utility (None: no utility). `docs_dir`: where GX's
    Data Docs are built (None: not built). `alpha`: the false-alarm rate allowed to the category coverage.
    `figures`: whether to draw the report's figures (the verdict does not read them).
    """
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = time.perf_counter() - start

    start = time.perf_counter()
    quality = evaluate_fidelity(train, synthetic, schema)
    timed("quality_s", start)
    start = time.perf_counter()
    diagnostic = evaluate_diagnostic(train, synthetic, schema)
    validity = domain_validity(train, holdout, synthetic, schema)
    timed("diagnostic_s", start)
    start = time.perf_counter()
    columns = compare_columns(train, synthetic, schema, seed=seed)
    timed("columns_s", start)
    start = time.perf_counter()
    expectations = check_expectations(train, synthetic, schema, docs_dir=docs_dir, holdout=holdout)
    timed("expectations_s", start)
    start = time.perf_counter()
    coverage = category_coverage(train, synthetic, schema, alpha=alpha)
    timed("coverage_s", start)
    start = time.perf_counter()
    utility = evaluate_utility(train, holdout, synthetic, schema, target, seed=seed) if target else None
    timed("utility_s", start)
    start = time.perf_counter()
    c2st = classifier_two_sample(train, synthetic, schema, seed=seed)
    timed("c2st_s", start)
    start = time.perf_counter()
    marginals = three_way_marginal_distance(train, synthetic, schema, holdout=holdout, seed=seed)
    timed("marginals_s", start)
    start = time.perf_counter()
    drawn = {
        "Column distributions, real vs synthetic": column_distributions(
            train, synthetic, schema, scores={name: shape.value for name, shape in columns.shapes.items()}
        ),
        "Association difference |real - synthetic|": correlation_difference(train, synthetic, schema),
    } if figures else {}
    timed("figures_s", start)
    logger.info("fidelity audit in %.1f s: %s", sum(timings.values()),
                ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items()))
    return FidelityAudit(quality, diagnostic, validity, columns, expectations, coverage, utility, c2st, marginals,
                         drawn, timings)
