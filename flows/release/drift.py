"""Drift between releases: how this run's source and synthetic rows moved since the release `CURRENT` named.

The previous source is private, so a release never compares against it directly: each published release leaves a
private profile of its source in the dataset's folder (`OUT/<dataset>/.profiles/<release_id>.npz`, never shared,
deleted by retention with its release). A profile holds, per learned column, the bins it was cut into (deciles for
numbers, the values' frequencies for categories and booleans, the null share as a bin of its own) and one 64-bit
hash per source row. Drift is the total-variation distance between the previous shares and this run's shares over
the same bins, so identical sources drift by exactly 0; rows added and removed are counted on the hashes as
multisets. The synthetic side compares this run's rows with the previous release's published parts, profiled the
same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from flows.release.manifest import Drift
from flows.release.publish import DATA, RELEASES, dataset_folder, profile_path, read_conformed, replace_durably
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema

log = logging.getLogger(__name__)

DECILES = np.linspace(0.1, 0.9, 9)  # the inner cut points of ten equal-mass bins


@dataclass(frozen=True)
class ColumnProfile:
    """One column's bins: `cuts` (numbers: sorted inner edges) or `values` (categories), and each bin's share.

    `shares` has one entry per bin (numbers: len(cuts) + 1; categories: one per value) and the null share last.
    """

    cuts: tuple[float, ...] | None
    values: tuple[str, ...] | None
    shares: tuple[float, ...]

    def shares_of(self, series: pd.Series) -> np.ndarray:
        """The share of `series` in each of this profile's bins, the null share last (values it lacks: dropped)."""
        nulls = series.isna()
        present = series[~nulls]
        if self.cuts is not None:
            counts = np.bincount(np.searchsorted(np.asarray(self.cuts), _numbers(present), side="right"),
                                 minlength=len(self.cuts) + 1).astype(float)
        else:
            frequencies = present.astype(str).value_counts()
            counts = frequencies.reindex(list(self.values or ()), fill_value=0).to_numpy(dtype=float)
        return np.append(counts, float(nulls.sum())) / max(len(series), 1)

    def distance(self, series: pd.Series) -> float:
        """Total variation between this profile and `series` over the profile's bins (values new to it: extra mass)."""
        shares = self.shares_of(series)
        unseen = max(0.0, 1.0 - float(shares.sum())) if len(series) else 0.0
        return 0.5 * (float(np.abs(shares - np.asarray(self.shares)).sum()) + unseen)


@dataclass(frozen=True)
class SourceProfile:
    """A table's private profile: its rows, each learned column's bins, and one 64-bit hash per row."""

    rows: int
    columns: Mapping[str, ColumnProfile]
    hashes: np.ndarray

    def distances(self, frame: pd.DataFrame) -> dict[str, float]:
        """Each profiled column's total-variation distance to the same column of `frame` (columns it lacks: 1)."""
        return {name: column.distance(frame[name]) if name in frame else 1.0 for name, column in self.columns.items()}

    def rows_changed(self, hashes: np.ndarray) -> tuple[int, int]:
        """Rows added and removed going from this profile's rows to the rows whose hashes are given (as multisets)."""
        before = pd.Series(self.hashes).value_counts()
        after = pd.Series(hashes).value_counts()
        change = after.sub(before, fill_value=0)
        return int(change[change > 0].sum()), int(-change[change < 0].sum())


def profile(frame: pd.DataFrame, schema: Schema) -> SourceProfile:
    """The profile of `frame`: its learned columns' bins and every row's hash (all columns, in the schema's order)."""
    columns = {spec.name: _column_profile(frame[spec.name], spec) for spec in schema.learned if spec.name in frame}
    return SourceProfile(len(frame), columns, row_hashes(frame, schema))


def row_hashes(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """One 64-bit hash per row of the schema's columns: equal rows hash equal, whatever their position."""
    names = [name for name in schema.names if name in frame]
    return pd.util.hash_pandas_object(frame[names], index=False).to_numpy(dtype=np.uint64)


def write_profile(path: Path, found: SourceProfile) -> None:
    """Write `found` at `path` whole or not at all: a temp file beside it, fsynced, renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: {"cuts": c.cuts, "values": c.values, "shares": c.shares} for name, c in found.columns.items()}
    replace_durably(path, lambda handle: np.savez(handle, rows=np.int64(found.rows), hashes=found.hashes,
                                                  columns=np.str_(json.dumps(columns))))


def read_profile(path: Path) -> SourceProfile | None:
    """The profile at `path`; None when there is none or it cannot be read (drift is then not measured)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            columns = json.loads(str(stored["columns"]))
            return SourceProfile(
                int(stored["rows"]),
                {name: ColumnProfile(None if c["cuts"] is None else tuple(c["cuts"]),
                                     None if c["values"] is None else tuple(c["values"]), tuple(c["shares"]))
                 for name, c in columns.items()},
                stored["hashes"].astype(np.uint64),
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("cannot read the source profile %s (%s): no drift measured", path, err)
        return None


@dataclass(frozen=True)
class DriftMeasure:
    """This run's source profile (kept privately when it is published) and its drift since `previous`, if any.

    Neither for a run that holds only samples of its table: drift compares whole tables.
    """

    profile: SourceProfile | None
    drift: Drift | None


def measure_drift(out: Path, dataset: str, previous: str | None, source: pd.DataFrame, synthetic: pd.DataFrame,
                  schema: Schema) -> DriftMeasure:
    """Profile this run's source and compare it, and its synthetic rows, with the release `previous`.

    No drift on a first release (`previous` None) or when that release left no readable profile. The synthetic
    side reads the previous release's published parts through this run's schema.
    """
    found = profile(source, schema)
    if previous is None:
        return DriftMeasure(found, None)
    dataset_dir = dataset_folder(out, dataset)
    before = read_profile(profile_path(dataset_dir, previous))
    if before is None:
        log.info("release %s has no source profile: no drift measured", previous)
        return DriftMeasure(found, None)
    published = read_conformed(dataset_dir / RELEASES / previous / DATA, schema.learned)
    added, removed = before.rows_changed(found.hashes)
    drift = Drift(previous=previous, source=before.distances(source), source_rows_added=added,
                  source_rows_removed=removed, synthetic=profile(published, schema).distances(synthetic))
    return DriftMeasure(found, drift)


def _column_profile(series: pd.Series, spec: ColumnSpec) -> ColumnProfile:
    """Deciles for numbers and datetimes, value frequencies for categories and booleans; the null share last."""
    present = series.dropna()
    if spec.kind in (ColumnKind.NUMERICAL, ColumnKind.DATETIME):
        values = _numbers(present)
        cuts = tuple(np.unique(np.quantile(values, DECILES)).tolist()) if len(values) else ()
        column = ColumnProfile(cuts, None, ())
    else:
        column = ColumnProfile(None, tuple(sorted(present.astype(str).unique())), ())
    return replace(column, shares=tuple(column.shares_of(series).tolist()))


def _numbers(series: pd.Series) -> np.ndarray:
    """A column's present values as floats; datetimes as nanoseconds since the epoch."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("int64").to_numpy(dtype=float)
    return pd.to_numeric(series).to_numpy(dtype=float)
