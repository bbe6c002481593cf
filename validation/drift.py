"""Category coverage: the categories a synthetic table lost, which an average score hides.

A category merged into another costs its column only that category's frequency (a 3% level moves
TVComplement by 0.03), but its absence is plain to see when measured on its own. A category is held to
coverage only when a faithful sample of the synthetic table's size would hold it so often that missing it
by chance is negligible: with k such categories, each expected c times, a faithful table misses one with
probability at most k * exp(-c), kept below `alpha` (and c >= 10 always). Rarer categories are not held to
coverage (a 6,000-row sample can honestly miss a level seen twice).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from generators.tabular.checks import CheckSpec, Context, Reading, Rule, Setting, declare
from generators.tabular.schema import ColumnKind, Schema

if TYPE_CHECKING:
    from validation.audit import FidelityAudit

MIN_EXPECTED_COUNT = 10.0


@dataclass(frozen=True)
class CategoryCoverage:
    """Which common categories of each categorical or boolean column the synthetic table keeps, and which it loses.

    For each such column with common categories: the share of them present in the synthetic table
    (`coverage`, 1.0 when none is lost) and the lost ones (`missing`); `expected_count` is the expected
    count from which a category was held to coverage.
    """

    coverage: dict[str, float]
    missing: dict[str, tuple[str, ...]]
    expected_count: float


def category_coverage(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *, alpha: float = 0.001
                      ) -> CategoryCoverage:
    """Which common real categories of each column `synthetic` lost."""
    shares = {
        spec.name: real[spec.name].dropna().astype(str).value_counts(normalize=True)
        for spec in schema.of_kind(ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
    }
    candidates = sum(int((share.to_numpy() * len(synthetic) >= MIN_EXPECTED_COUNT).sum()) for share in shares.values())
    expected = max(MIN_EXPECTED_COUNT, math.log(max(candidates, 1) / alpha))
    coverage: dict[str, float] = {}
    missing: dict[str, tuple[str, ...]] = {}
    for name, share in shares.items():
        common = share.index[share.to_numpy() * len(synthetic) >= expected]
        if not len(common):
            continue
        present = set(synthetic[name].dropna().astype(str).unique())
        lost = tuple(str(value) for value in common if value not in present)
        coverage[name] = 1.0 - len(lost) / len(common)
        if lost:
            missing[name] = lost
    return CategoryCoverage(coverage, missing, expected)


def _coverage(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
    found = audit.coverage
    for name, coverage in found.coverage.items():
        lost = found.missing.get(name, ())
        detail = f" (lost: {', '.join(lost[:5])}{', …' if len(lost) > 5 else ''})" if lost else ""
        yield Reading(coverage, f"[{name}]", f"Categories of {name} expected at least {found.expected_count:.0f} "
                                             f"times, present{detail}")


declare(CheckSpec(
    name="fidelity.category_coverage", instances="[c]", label="Share of each column's common categories present",
    direction=">=",
    threshold=Setting("min_category_coverage", 1.0, "share of common categories kept", ge=0, le=1),
    rule=Rule.PLAIN, evidence="fidelity", read=_coverage, order=70,
    refuses="a category a faithful table would hold so often that missing it by chance is below `alpha` is absent",
))
