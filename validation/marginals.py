"""How far the synthetic rows' 3-way marginals are from the real rows', and how far fresh real rows' are.

Column shapes and pair trends (`validation.comparison`) look at one or two columns at a time; a generator
can keep every pair and still get a triple wrong (income by age *within* each occupation). A 3-way marginal
is the joint distribution of three columns, each coded into a few levels: numbers by the real column's
quantile bins, categories by their most frequent real levels with the rest pooled as "other", null a level
of its own. The distance of two tables on it is the total variation distance (half the L1 distance of the
cell shares), averaged over every triple of learned columns, or over a seeded sample of them on wide tables.

Total variation on thousands of cells is biased upward by sampling alone: fresh real rows are far from 0.
So the distance is read against the holdout's (real rows never trained on) as a ratio, 1.0 meaning "as
close as fresh real rows", both measured on as many rows.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from validation.comparison import pair_codes

logger = logging.getLogger(__name__)

TOP_LEVELS = 10  # categories kept per column (as many as the deciles of a number); the rest are "other"
_CHUNK_CELLS = 2_000_000  # rows x triples coded at once: bounds the memory of one batched bincount


@dataclass(frozen=True)
class MarginalDistance:
    """Mean total variation distance of the synthetic rows' `order`-way marginals to the real rows'.

    `order` is 3, or the number of learned columns when there are fewer (2: the pair marginal; 1: the
    column's own distribution; 0: nothing to compare, every distance NaN). `sets`/`of`: how many column
    sets were averaged out of how many there are. `rows`: synthetic (and holdout) rows compared.
    `holdout_distance`: the same distance of the holdout's rows to the real rows, on as many rows as the
    synthetic's; `ratio`: distance / holdout_distance (1.0: as close as fresh real rows). Both None when
    no holdout was given.
    """

    order: int
    distance: float
    holdout_distance: float | None
    ratio: float | None
    sets: int
    of: int
    rows: int


def three_way_marginal_distance(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    holdout: pd.DataFrame | None = None,
    seed: int = 0,
    max_triples: int = 1_000,
    max_rows: int = 50_000,
) -> MarginalDistance:
    """Mean total variation distance between `real` and `synthetic` over the 3-way marginals of the learned columns.

    The marginals are all triples, or a seeded sample of `max_triples` (Adult's 455 take a fraction of a
    second).

    With `holdout`, the holdout's distance to `real` and the ratio synthetic / holdout. Total variation is
    biased upward by small samples, and the holdout is usually smaller than the synthetic table: both
    distances are measured on seeded samples of the same size (the smaller of the two tables), so the
    ratio compares like with like. Each table is cut to a seeded sample of at most `max_rows` rows (a
    million-row table then costs a few seconds, not minutes; the ratio stays fair). A table with fewer than
    3 learned columns is judged on its 2- or 1-way marginals, as `order` says.
    """
    specs = schema.learned
    order = min(3, len(specs))
    rng = np.random.default_rng([seed, 31])
    rows = min(max_rows, len(synthetic) if holdout is None else min(len(synthetic), len(holdout)))
    compared = [synthetic] if holdout is None else [synthetic, holdout]
    parts = [sample_rows(real, max_rows, rng)] + [sample_rows(frame, rows, rng) for frame in compared]
    all_sets = math.comb(len(specs), order)
    if order == 0 or rows == 0 or real.empty:
        nothing = None if holdout is None else math.nan
        return MarginalDistance(order, math.nan, nothing, nothing, 0, all_sets, rows)
    sets = _column_sets(len(specs), order, max_triples, rng)
    codes, levels = zip(*(column_codes(*(part[spec.name] for part in parts), spec=spec) for spec in specs),
                        strict=True)
    distances = _mean_distances(np.vstack(codes), np.array(levels), sets, [len(part) for part in parts])
    holdout_distance = None if holdout is None else float(distances[1])
    result = MarginalDistance(order, float(distances[0]), holdout_distance, _ratio(distances), len(sets), all_sets,
                              rows)
    logger.info("%d-way marginals over %d of %d column sets: total variation %.3f (holdout %s, ratio %s)", order,
                result.sets, all_sets, result.distance, holdout_distance, result.ratio)
    return result


def column_codes(real: pd.Series, *others: pd.Series, spec: ColumnSpec) -> tuple[np.ndarray, int]:
    """Integer codes of the `real` values then each of `others`, stacked, and how many codes there are.

    Numbers and datetimes fall into the real column's quantile bins (as `validation.comparison` bins pairs:
    deciles, quintiles under 1,000 real values); categories and booleans keep their `TOP_LEVELS` most
    frequent real levels and pool the rest as "other"; null is a level of its own. A column with no real
    values has two codes: null and not.
    """
    if real.notna().sum() == 0:
        return pd.concat([real, *others], ignore_index=True).notna().to_numpy().astype(np.int64), 2
    codes, levels = pair_codes(real, pd.concat(others, ignore_index=True) if others else real.iloc[:0], spec.kind)
    if spec.kind in (ColumnKind.NUMERICAL, ColumnKind.DATETIME) or levels <= TOP_LEVELS + 1:
        return codes, levels
    # `pair_codes` gives each distinct value a code and null the last one: keep the real rows' most frequent
    null = levels - 1
    counts = np.bincount(codes[: len(real)], minlength=levels)
    counts[null] = -1
    kept = np.argsort(-counts, kind="stable")[:TOP_LEVELS]
    kept = kept[counts[kept] > 0]  # a level only the other rows have is "other" too
    mapping = np.full(levels, TOP_LEVELS, dtype=np.int64)  # "other"
    mapping[kept] = np.arange(len(kept))
    mapping[null] = TOP_LEVELS + 1
    return mapping[codes], TOP_LEVELS + 2


def sample_rows(frame: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """`rows` rows of `frame` drawn without replacement (all of them, in order, when it has no more)."""
    if len(frame) <= rows:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), rows, replace=False))]


def _column_sets(columns: int, order: int, most: int, rng: np.random.Generator) -> np.ndarray:
    """Every `order`-subset of the columns' positions, one a row, or a seeded sample of `most` of them."""
    every = np.array(list(itertools.combinations(range(columns), order)), dtype=np.int64).reshape(-1, order)
    if len(every) <= most:
        return every
    return every[np.sort(rng.choice(len(every), most, replace=False))]


def _mean_distances(codes: np.ndarray, levels: np.ndarray, sets: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Mean total variation distance of each part after the first to the first, over the column `sets`.

    `codes` is (columns, rows), the parts' rows side by side in the order and sizes of `sizes`. Each set's
    codes are combined into one cell index, and the cells of many sets counted in one bincount (each set's
    cells offset past the previous set's).
    """
    cells = np.prod(levels[sets], axis=1)
    bounds = np.cumsum([0, *sizes])
    per_chunk = max(1, _CHUNK_CELLS // codes.shape[1])
    totals = np.zeros(len(sizes) - 1)
    for start in range(0, len(sets), per_chunk):
        chunk, width = sets[start : start + per_chunk], cells[start : start + per_chunk]
        cell = np.zeros((len(chunk), codes.shape[1]), dtype=np.int64)
        for position in range(sets.shape[1]):
            cell = cell * levels[chunk[:, position], None] + codes[chunk[:, position]]
        cell += np.concatenate([[0], np.cumsum(width)[:-1]])[:, None]
        shares = [np.bincount(cell[:, low:high].ravel(), minlength=int(width.sum())) / (high - low)
                  for low, high in itertools.pairwise(bounds)]
        set_of_cell = np.repeat(np.arange(len(chunk)), width)
        for index, other in enumerate(shares[1:]):
            totals[index] += 0.5 * np.bincount(set_of_cell, np.abs(other - shares[0]), minlength=len(chunk)).sum()
    return totals / len(sets)


def _ratio(distances: np.ndarray) -> float | None:
    """Synthetic / holdout distance; None without a holdout, 1.0 when both are 0, inf when only the holdout's is."""
    if len(distances) < 2:
        return None
    synthetic, holdout = distances
    if holdout > 0:
        return float(synthetic / holdout)
    return 1.0 if synthetic == 0 else math.inf
