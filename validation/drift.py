"""Per-column drift that an average score hides: null fractions and the categories the synthetic table lost.

sdmetrics' shape scores compare the non-null values only, so a column that went 30% null still scores
1.0; and a category merged into another costs its column only that category's frequency (a 3% level
moves TVComplement by 0.03). Both are plain to see when measured on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from generators.schema import ColumnKind, Schema

# A category whose expected count in a faithful sample of the synthetic table's size is at least this is
# missing by chance with probability about exp(-10) = 4.5e-5: its absence is a fault, not sampling noise.
# Rarer categories are not held to coverage (a 6,000-row sample can honestly miss a level seen twice).
EXPECTED_COUNT_FOR_COVERAGE = 10.0


@dataclass(frozen=True)
class ColumnDrift:
    """For each learned column, |synthetic null fraction - real null fraction| (`null_drift`); for each
    categorical or boolean column, the share of its common real categories present in the synthetic table
    (`category_coverage`, 1.0 when none is lost) and the lost ones (`missing_categories`)."""

    null_drift: dict[str, float]
    category_coverage: dict[str, float]
    missing_categories: dict[str, tuple[str, ...]]


def column_drift(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> ColumnDrift:
    """Null-fraction drift and category coverage of `synthetic` against `real`, column by column."""
    null_drift = {
        spec.name: abs(float(synthetic[spec.name].isna().mean()) - float(real[spec.name].isna().mean()))
        for spec in schema.learned
    }
    coverage: dict[str, float] = {}
    missing: dict[str, tuple[str, ...]] = {}
    for spec in schema.of_kind(ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        share = real[spec.name].dropna().astype(str).value_counts(normalize=True)
        common = share.index[share.to_numpy() * len(synthetic) >= EXPECTED_COUNT_FOR_COVERAGE]
        present = set(synthetic[spec.name].dropna().astype(str).unique())
        lost = tuple(str(value) for value in common if value not in present)
        coverage[spec.name] = 1.0 - len(lost) / len(common) if len(common) else math.nan
        if lost:
            missing[spec.name] = lost
    return ColumnDrift(null_drift, {k: v for k, v in coverage.items() if not math.isnan(v)}, missing)
