"""How closely the synthetic table follows the real one, as scored by sdmetrics' Quality Report.

Only learned columns are compared: id, PII and text columns are regenerated, not modelled. The
report is sdmetrics 0.32's `sdmetrics.reports.QualityReport` (the single-table class is deprecated)
fed one table. Its "Column Pair Trends" averages only the pairs whose real correlation (> 0.5) or
association (Cramér's V > 0.3) is strong enough to be worth keeping, so `per_pair` holds those pairs
and `column_pair_trends` is NaN when there are none (the quality is then the column-shape score).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from sdmetrics.reports import DiagnosticReport, QualityReport

from generators.tabular.checks import CheckSpec, Context, Reading, Rule, Setting, declare
from generators.tabular.errors import BadInputError
from generators.tabular.schema import Schema
from validation.comparison import gated_families
from validation.metadata import to_sdmetrics_frame, to_sdmetrics_metadata

if TYPE_CHECKING:
    from validation.audit import FidelityAudit

logger = logging.getLogger(__name__)

_TABLE = "table"
_NO_SCORE = "no score"  # the reason of a column or pair for which no score exists


@dataclass(frozen=True)
class FidelityResult:
    """Scores in [0, 1], higher is closer.

    `per_column`: column-shape score (KSComplement or TVComplement) of every learned column.
    `per_pair`: column-pair-trend score of each counted pair, keyed "a|b".
    `errors`: columns or pairs ("a|b") that should have been scored but were not, with the reason;
    sdmetrics averages over what it could score, so these would otherwise vanish from `quality`.
    `undefined`: those left unscored because no score exists (no values, or a constant column, on either
    side: a correlation with a constant is undefined); `validation.comparison` judges them exactly.
    """

    quality: float
    column_shapes: float
    column_pair_trends: float
    per_column: dict[str, float]
    per_pair: dict[str, float]
    errors: dict[str, str]
    undefined: dict[str, str]
    elapsed_s: float


def evaluate_fidelity(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> FidelityResult:
    """Score `synthetic` against `real` (the training frame) on the schema's learned columns.

    Full tables, no subsampling: about 1 s on Adult (32,561 rows x 15 columns, 2 cores), linear in
    rows and quadratic in columns (pairs). sdmetrics' own subsampling of pair metrics above 50,000
    rows is switched off because it draws from the global RNG and would make scores irreproducible.
    """
    learned = Schema(tuple(schema.learned))
    if not learned.columns:
        raise BadInputError("the schema has no learned columns to compare")
    start = time.perf_counter()
    report = QualityReport()
    report.num_rows_subsample = None
    report.generate(
        {_TABLE: to_sdmetrics_frame(real, learned)},
        {_TABLE: to_sdmetrics_frame(synthetic, learned)},
        {"tables": {_TABLE: to_sdmetrics_metadata(learned)}},
        verbose=False,
    )
    properties = report.get_properties().set_index("Property")["Score"]
    shapes = report.get_details("Column Shapes")
    pairs = report.get_details("Column Pair Trends")
    pair_keys = pairs["Column 1"].astype(str) + "|" + pairs["Column 2"].astype(str)  # no pairs: an empty frame
    # A failed pair has no threshold verdict; a counted pair without a score (say, a constant
    # synthetic column) is as much a miss as a failure.
    verdict = pairs["Meets Threshold?"].astype("boolean")
    counted = verdict.fillna(False).astype(bool)
    unscored = {
        **_unscored(shapes["Column"], shapes, shapes["Score"].isna()),
        **_unscored(pair_keys, pairs, pairs["Score"].isna() & verdict.fillna(True).astype(bool)),
    }
    undefined = {key: reason for key, reason in unscored.items() if reason.startswith(_NO_SCORE)}
    errors = {key: reason for key, reason in unscored.items() if key not in undefined}
    elapsed = time.perf_counter() - start
    if errors:
        logger.warning("fidelity: %d column(s)/pair(s) could not be scored: %s", len(errors), errors)
    if undefined:
        logger.info("fidelity: %d column(s)/pair(s) have no score (no values or a constant column)", len(undefined))
    logger.info("fidelity: quality %.4f on %d columns in %.1f s", report.get_score(), len(learned), elapsed)
    return FidelityResult(
        quality=float(report.get_score()),
        column_shapes=float(properties["Column Shapes"]),
        column_pair_trends=float(properties["Column Pair Trends"]),
        per_column=dict(zip(shapes["Column"], shapes["Score"].astype(float), strict=True)),
        per_pair=dict(zip(pair_keys[counted], pairs["Score"][counted].astype(float), strict=True)),
        errors=errors,
        undefined=undefined,
        elapsed_s=elapsed,
    )


def _unscored(keys: pd.Series, details: pd.DataFrame, missed: pd.Series) -> dict[str, str]:
    """Why each missed key went unscored: sdmetrics' error message, or no values to compare."""
    reasons = details.get("Error", pd.Series(None, index=details.index, dtype=object))
    reasons = reasons.fillna(f"{_NO_SCORE}: no non-null values, or a constant column, to compare")
    # sdmetrics raises ConstantInputError where a correlation with a constant column is undefined, and
    # IncomputableMetricError where a column has no values to compare; scipy's correlation refuses fewer than
    # two rows where both columns hold a value (two mostly-null columns of a small table: horse_colic).
    undefined = reasons.str.startswith(("ConstantInputError", "IncomputableMetricError")) | reasons.str.contains(
        "must have length at least 2", regex=False
    )
    reasons = reasons.where(~undefined, _NO_SCORE + ": " + reasons)
    return dict(zip(keys[missed], reasons[missed], strict=True))


def evaluate_diagnostic(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> float:
    """The DiagnosticReport score of sdmetrics: validity of the data and structure.

    Validity covers ranges, categories and keys; structure, the same columns. 1.0 means every synthetic
    value is a value the real table could hold.
    """
    learned = Schema(tuple(schema.learned))
    report = DiagnosticReport()
    report.generate(
        {_TABLE: to_sdmetrics_frame(real, learned)},
        {_TABLE: to_sdmetrics_frame(synthetic, learned)},
        {"tables": {_TABLE: to_sdmetrics_metadata(learned)}},
        verbose=False,
    )
    return float(report.get_score())


def _quality(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
    """The overall score's shortfall is significant when some column or pair it averages differs significantly.

    Its p-value is the smallest of theirs, adjusted within their families.
    """
    families = gated_families(audit.columns, context.rebalanced)
    yield Reading(audit.quality.quality, p_value=min([*families.shape_p.values(), *families.pair_p.values(), 1.0]))


def _diagnostic(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
    yield Reading(audit.diagnostic, p_value=audit.validity.p_value)


def _unscored_count(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
    yield Reading(len(audit.quality.errors))


declare(CheckSpec(
    name="fidelity.quality", label="Overall fidelity (sdmetrics quality score)", direction=">=",
    threshold=Setting("min_quality", 0.75, "sdmetrics QualityReport score at least this", ge=0, le=1),
    rule=Rule.TESTED, evidence="fidelity", read=_quality, order=10,
    refuses="sdmetrics 0.32.0 QualityReport score < {threshold} and some column or pair differs significantly",
))
declare(CheckSpec(
    name="fidelity.diagnostic", label="Valid values and structure (sdmetrics diagnostic score)", direction=">=",
    threshold=Setting("min_diagnostic", 0.999, "sdmetrics DiagnosticReport score at least this", ge=0, le=1),
    rule=Rule.TESTED, evidence="fidelity", read=_diagnostic, order=20,
    refuses="sdmetrics DiagnosticReport < {threshold} and significantly more synthetic rows step outside the real "
            "domain than holdout rows do",
))
declare(CheckSpec(
    name="fidelity.unscored", label="Columns or pairs that could not be scored", direction="<=",
    threshold=Setting("max_fidelity_errors", 0, "columns or pairs sdmetrics may fail to score", integer=True, ge=0),
    rule=Rule.PLAIN, evidence="fidelity", read=_unscored_count, order=30,
    refuses="sdmetrics failed to score a column or pair that has a score (> {threshold}); constant and all-null "
            "columns have none and are judged exactly by the column checks",
))
