"""Our `Schema` in the words sdmetrics understands, and frames in the shape it can read.

sdmetrics 0.32 scores only the sdtypes numerical, datetime, categorical, ordinal and boolean; every
other sdtype is skipped, and a column flagged `"pii": True` is also left out of its single-table
metrics. Id, PII and free-text columns are regenerated rather than learned, so they are mapped to
sdtypes it skips.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from generators.tabular.schema import ColumnKind, ColumnSpec, Schema

_SCORED_SDTYPE = {
    ColumnKind.NUMERICAL: "numerical",
    ColumnKind.CATEGORICAL: "categorical",
    ColumnKind.BOOLEAN: "boolean",
    ColumnKind.DATETIME: "datetime",
}


def to_sdmetrics_metadata(schema: Schema) -> dict[str, Any]:
    """The single-table metadata dict (`{"columns": {name: {"sdtype": ...}}}`) for `schema`."""
    return {"columns": {spec.name: _column_metadata(spec) for spec in schema}}


def _column_metadata(spec: ColumnSpec) -> dict[str, Any]:
    if spec.kind is ColumnKind.ID:
        return {"sdtype": "id"}
    if spec.kind is ColumnKind.PII:
        return {"sdtype": "pii", "pii": True}
    if spec.kind is ColumnKind.TEXT:
        # SDV's sdtype for values it cannot model; free text may hold personal data, hence the flag.
        return {"sdtype": "unknown", "pii": True}
    meta: dict[str, Any] = {"sdtype": _SCORED_SDTYPE[spec.kind]}
    if spec.kind is ColumnKind.DATETIME and spec.datetime_format is not None:
        # Only read when a frame holds the dates as strings; datetime64 columns pass through.
        meta["datetime_format"] = spec.datetime_format
    return meta


def to_sdmetrics_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The schema's columns of `frame`, with tz-aware datetimes made UTC-naive.

    sdmetrics 0.32 turns datetimes into epoch numbers and copes with zones today (checked: Paris
    against naive UTC scores 1.0), but that is pandas behaviour it does not promise; handing it one
    representation keeps the scores independent of each frame's zone. UTC keeps every instant and
    its order; naive columns are taken to be UTC already.
    """
    out = frame.loc[:, schema.names].copy()
    for spec in schema.of_kind(ColumnKind.DATETIME):
        column = out[spec.name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            out[spec.name] = column.dt.tz_convert("UTC").dt.tz_localize(None)
    return out
