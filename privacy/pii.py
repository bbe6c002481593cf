"""Proof that no real personal identifier reaches the output.

Every real PII or id value is looked up in every synthetic cell that could hold it.

Id, PII and text columns are regenerated rather than learned, so none should ever carry a real value;
this check does not trust that, it looks. A real value is searched for in its own synthetic column
(exact), in every other string column (exact), and inside free-text cells (as a token), because a
value that moved to another column or into a note is as much a leak.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from generators.tabular.checks import CheckSpec, Context, Reading, Rule, Setting, declare
from generators.tabular.schema import ColumnKind, Schema

if TYPE_CHECKING:
    from privacy.audit import PrivacyAudit

logger = logging.getLogger(__name__)

# Shorter values (a 3-digit id, "Bob") occur by chance in unrelated columns; they are still searched for in
# their own column, where any real value is a leak.
MIN_CROSS_COLUMN_LENGTH = 6
_TOKEN = re.compile(r"[^\s,;:<>()\[\]{}\"']+")
_IDENTIFYING = (ColumnKind.PII, ColumnKind.ID)


@dataclass(frozen=True)
class PiiLeaks:
    """Real id/PII values found in the synthetic table, counted in all and per column.

    `leaked_cells`: synthetic cells holding a real id/PII value; `by_column`: those counts per synthetic
    column; `real_values`: how many distinct real values were searched for.
    """

    leaked_cells: int
    by_column: dict[str, int]
    real_values: int


def find_pii_leaks(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> PiiLeaks:
    """Count the synthetic cells that hold a real value of an id or PII column.

    `real` should hold every real row: training and holdout.
    """
    own: dict[str, set[str]] = {}
    for spec in schema.of_kind(*_IDENTIFYING):
        own[spec.name] = set(_text(real[spec.name]).unique())
    shared = {value for values in own.values() for value in values if len(value) >= MIN_CROSS_COLUMN_LENGTH}
    by_column: dict[str, int] = {}
    for name in synthetic.columns:
        column = synthetic[name]
        leaked = np.zeros(len(column), dtype=bool)
        if name in own:
            leaked |= _text(column).isin(own[name]).to_numpy()
        if shared and not pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            text = _text(column)
            leaked |= text.isin(shared).to_numpy()
            if name in schema and schema[name].kind is ColumnKind.TEXT:
                leaked |= text.map(lambda cell: not shared.isdisjoint(_TOKEN.findall(cell))).to_numpy(dtype=bool)
        if leaked.any():
            by_column[name] = int(leaked.sum())
    result = PiiLeaks(sum(by_column.values()), by_column, len(set().union(*own.values())) if own else 0)
    if result.leaked_cells:
        logger.warning("PII: %d synthetic cell(s) hold a real identifying value: %s", result.leaked_cells, by_column)
    return result


def _text(column: pd.Series) -> pd.Series:
    """Non-null values as stripped text, so 42 and "42 " are the same identifier (nulls never match)."""
    return column.dropna().astype(str).str.strip().reindex(column.index, fill_value="\0null")


def _leaks(audit: PrivacyAudit, context: Context) -> Iterator[Reading]:
    yield Reading(audit.pii.leaked_cells)


declare(CheckSpec(
    name="privacy.pii_leaks", label="Real identifiers (id or PII values) found anywhere in the output (cells)",
    direction="<=",
    threshold=Setting("max_pii_leaks", 0, "real id/PII values found in the output at most", integer=True, ge=0),
    rule=Rule.PLAIN, evidence="privacy", read=_leaks, order=100,
    refuses="a real id/PII value is anywhere in the output (own column, other columns, inside free text)",
))
