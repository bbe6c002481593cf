"""Column by column and pair by pair: how far the synthetic rows are from the real ones, and whether it is noise.

A distance is noise unless it is more than fresh real rows of the same size would show.

Each comparison carries a value (higher is closer, 1.0 identical) and the p-value of the null hypothesis
"the synthetic rows are as alike to the real rows as real rows never trained on would be". The gate
refuses a column or a pair only when its value is past the threshold *and* that p-value is small: on a
table of 67 rows an honest shape score of 0.70 is noise, on 30,000 rows it is a fault. The values follow
sdmetrics' definitions where they have one (KSComplement, TVComplement), so the numbers read the same.

- Column shape: 1 - KS statistic for numbers and datetimes, 1 - total variation distance for
  categories, both over non-null values; the p-value is the two-sample KS test's (conservative on tied
  values, never anti-conservative) or a chi-square test of homogeneity on the category counts, rare
  categories pooled so the approximation holds.
- Pair association: for each pair whose REAL association is surely strong (the lower 95% bound of
  |Spearman| >= 0.5 between two numbers, of the bias-corrected Cramér's V >= 0.3 otherwise, numbers
  binned by the real column's quantiles: on 67 rows many pairs look strong by chance, and testing them
  all would drown the ones that are), 1 - |synthetic - real association|; the p-value
  tests real = synthetic association against the spread of that difference when the real and synthetic
  rows are pooled and redrawn (so a rare level that a small sample misses, or one outlier that makes a
  correlation, is judged as the noise it is). Spearman and quantile bins make a few extreme outliers
  harmless, where Pearson's r and equal-width bins are ruled by them.
- Null share: the synthetic null fraction against the real one; the p-value is Fisher's exact test.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from generators.tabular.checks import CheckSpec, Context, Reading, Rule, Setting, declare
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema

if TYPE_CHECKING:
    from validation.audit import FidelityAudit

_NUMERIC = (ColumnKind.NUMERICAL, ColumnKind.DATETIME)
STRONG_CORRELATION = 0.5  # |Spearman| of two numbers
STRONG_ASSOCIATION = 0.3  # bias-corrected Cramér's V otherwise (sdmetrics' lines for "strong")
_STRENGTH_Z = stats.norm.isf(0.05)  # one-sided 95%: a pair is gated when its real association's bound clears
_MIN_EXPECTED = 5.0  # chi-square cells with a smaller expected count are pooled
_MIN_PAIR_ROWS = 10
_BOOTSTRAP = 200
_NULL_ROWS = 5_000  # rows per resample of a null spread (see `_null_spread_of`)


@dataclass(frozen=True)
class Comparison:
    """One statistic of real against synthetic: its value, its p-value against fresh real rows, and its method.

    `value` is in [0, 1] (1.0 identical); `p_value` is that of "no different from fresh real rows" (1.0
    when there is nothing to test); `method` says how it was measured.
    """

    value: float
    p_value: float
    method: str


@dataclass(frozen=True)
class PairComparison(Comparison):
    """A strongly associated pair: the association in the real and the synthetic rows, and how close they are."""

    real_association: float
    synthetic_association: float


@dataclass(frozen=True)
class ColumnComparisons:
    """Every learned column's shape and null share, and every strongly associated pair's association.

    Also the columns left out of shapes and pairs, with why (all-null or constant in the real rows).
    """

    shapes: dict[str, Comparison]
    pairs: dict[str, PairComparison]
    nulls: dict[str, Comparison]
    skipped: dict[str, str]


def compare_columns(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *, seed: int = 0
) -> ColumnComparisons:
    """Shapes, null shares and strong pairs of `synthetic` against `real` (the training rows)."""
    shapes: dict[str, Comparison] = {}
    nulls: dict[str, Comparison] = {}
    skipped: dict[str, str] = {}
    for spec in schema.learned:
        nulls[spec.name] = null_share(real[spec.name], synthetic[spec.name])
        reason = _unscorable(real[spec.name])
        if reason:
            skipped[spec.name] = reason
            shapes[spec.name] = exact_shape(real[spec.name], synthetic[spec.name])
        else:
            shapes[spec.name] = column_shape(real[spec.name], synthetic[spec.name], spec.kind)
    scorable = [spec for spec in schema.learned if spec.name not in skipped]
    pairs = dict(_strong_pairs(real, synthetic, scorable, np.random.default_rng([seed, 7])))
    return ColumnComparisons(shapes, pairs, nulls, skipped)


def _unscorable(column: pd.Series) -> str:
    values = column.dropna()
    if values.empty:
        return "no values in the real rows"
    if values.nunique() == 1:
        return "one constant value in the real rows"
    return ""


def exact_shape(real: pd.Series, synthetic: pd.Series) -> Comparison:
    """A column with no spread in the real rows (all null, or one value) is kept only by the same value.

    The value is the share of synthetic non-null values equal to the real one (1.0 when there are none,
    the null share being judged on its own). Exact, so there is no noise to test.
    """
    values = real.dropna()
    produced = synthetic.dropna()
    if values.empty or produced.empty:
        return Comparison(1.0 if produced.empty else 0.0, 1.0 if produced.empty else 0.0, "exact: no real values")
    constant = values.iloc[0]
    if pd.api.types.is_number(constant) and pd.api.types.is_numeric_dtype(produced):
        kept = float(np.isclose(produced.to_numpy(dtype=float), float(constant)).mean())
    else:
        kept = float((produced.astype(str) == str(constant)).mean())
    return Comparison(kept, 1.0 if kept == 1.0 else 0.0, "exact: the real constant")


def column_shape(real: pd.Series, synthetic: pd.Series, kind: ColumnKind) -> Comparison:
    """KSComplement or TVComplement (sdmetrics') on non-null values, with its test against fresh real rows."""
    r, s = real.dropna(), synthetic.dropna()
    if s.empty:
        return Comparison(0.0, 0.0, "no synthetic values")
    if kind in _NUMERIC:
        x, y = as_numbers(r, kind), as_numbers(s, kind)
        with warnings.catch_warnings():  # "exact calculation unsuccessful": scipy falls back to asymptotics
            warnings.simplefilter("ignore", RuntimeWarning)
            test = stats.ks_2samp(x, y)
        return Comparison(1.0 - float(test.statistic), float(test.pvalue), "KS complement, KS test")
    real_counts = r.astype(str).value_counts()
    synthetic_counts = s.astype(str).value_counts()
    table = pd.concat([real_counts, synthetic_counts], axis=1).fillna(0.0).to_numpy().T
    shares = table / table.sum(axis=1, keepdims=True)
    distance = 0.5 * float(np.abs(shares[0] - shares[1]).sum())
    return Comparison(1.0 - distance, _homogeneity_p(table), "TV complement, chi-square test")


def null_share(real: pd.Series, synthetic: pd.Series) -> Comparison:
    """1 - |synthetic null fraction - real null fraction|, with Fisher's exact test of equal fractions."""
    real_nulls, synthetic_nulls = int(real.isna().sum()), int(synthetic.isna().sum())
    drift = abs(synthetic_nulls / max(len(synthetic), 1) - real_nulls / max(len(real), 1))
    table = [[real_nulls, len(real) - real_nulls], [synthetic_nulls, len(synthetic) - synthetic_nulls]]
    p_value = 1.0 if drift == 0 else float(stats.fisher_exact(table).pvalue)
    return Comparison(1.0 - drift, p_value, "null fraction, Fisher's exact test")


def _strong_pairs(
    real: pd.DataFrame, synthetic: pd.DataFrame, specs: list[ColumnSpec], rng: np.random.Generator
) -> Iterator[tuple[str, PairComparison]]:
    """The pairs whose real association is strong, in schema order, each compared with its synthetic twin."""
    codes = {spec.name: pair_codes(real[spec.name], synthetic[spec.name], spec.kind) for spec in specs}
    for a, b in itertools.combinations(specs, 2):
        if a.kind in _NUMERIC and b.kind in _NUMERIC:
            found = _spearman_pair(real, synthetic, a, b, rng)
        else:
            found = _cramer_pair(codes[a.name], codes[b.name], len(real), rng)
        if found is not None:
            yield f"{a.name}|{b.name}", found


def _spearman_pair(real: pd.DataFrame, synthetic: pd.DataFrame, a: ColumnSpec, b: ColumnSpec,
                   rng: np.random.Generator) -> PairComparison | None:
    x_real, y_real = _complete(real, a, b)
    if len(x_real) < _MIN_PAIR_ROWS or not abs(rho_real := _rank_correlation(x_real, y_real)) >= STRONG_CORRELATION:
        return None
    # Bonett-Wright's standard error of Fisher's z of a Spearman correlation
    surely = math.tanh(math.atanh(min(abs(rho_real), 0.999999)) - _STRENGTH_Z * math.sqrt(
        (1 + rho_real**2 / 2) / max(len(x_real) - 3, 1)))
    if surely < STRONG_CORRELATION:
        return None
    x_synthetic, y_synthetic = _complete(synthetic, a, b)
    if len(x_synthetic) < 3:  # the pair is (nearly) never complete: as likely as the real rows' rate makes it?
        p_value = float(stats.binom.cdf(len(x_synthetic), len(synthetic), len(x_real) / len(real)))
        return PairComparison(0.0, p_value, "Spearman: too few complete synthetic rows", rho_real, math.nan)
    rho_synthetic = _rank_correlation(x_synthetic, y_synthetic)
    ranks = np.column_stack([stats.rankdata(np.concatenate([x_real, x_synthetic])),
                             stats.rankdata(np.concatenate([y_real, y_synthetic]))])
    null = _null_spread(lambda rows: _pearson(ranks[rows]), len(ranks), len(x_real), len(x_synthetic), rng)
    return PairComparison(
        value=_similarity(rho_real, rho_synthetic),
        p_value=_two_sided(rho_real - rho_synthetic, null),
        method="Spearman, pooled bootstrap",
        real_association=rho_real,
        synthetic_association=rho_synthetic,
    )


def _complete(frame: pd.DataFrame, a: ColumnSpec, b: ColumnSpec) -> tuple[np.ndarray, np.ndarray]:
    both = frame[[a.name, b.name]].dropna()
    return as_numbers(both[a.name], a.kind), as_numbers(both[b.name], b.kind)


def _rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(stats.spearmanr(x, y).statistic)


def _pearson(rows: np.ndarray) -> np.ndarray:
    """Pearson correlation of two columns, per resample: `rows` is (resamples, n, 2); 0 where one is constant."""
    centred = rows - rows.mean(axis=1, keepdims=True)
    products = (centred[..., 0] * centred[..., 1]).sum(axis=1)
    scale = np.sqrt((centred[..., 0] ** 2).sum(axis=1) * (centred[..., 1] ** 2).sum(axis=1))
    return np.divide(products, scale, out=np.zeros_like(products), where=scale > 0)


def _cramer_pair(
    a: tuple[np.ndarray, int], b: tuple[np.ndarray, int], n_real: int, rng: np.random.Generator
) -> PairComparison | None:
    """Bias-corrected V of two coded columns (codes of the real rows first, then the synthetic ones)."""
    (codes_a, levels_a), (codes_b, levels_b) = a, b
    real_table = _contingency(codes_a[:n_real], codes_b[:n_real], levels_a, levels_b)
    v_real = cramers_v(real_table)
    if not v_real >= STRONG_ASSOCIATION:
        return None
    n_real_rows = int(real_table.sum())
    resampled = rng.multinomial(n_real_rows, real_table.ravel() / n_real_rows, size=_BOOTSTRAP)
    real_v = [cramers_v(table.reshape(real_table.shape).astype(float)) for table in resampled]
    if np.quantile(real_v, stats.norm.cdf(-_STRENGTH_Z)) < STRONG_ASSOCIATION:
        return None
    synthetic_table = _contingency(codes_a[n_real:], codes_b[n_real:], levels_a, levels_b)
    v_synthetic = cramers_v(synthetic_table)
    pooled = (real_table + synthetic_table).ravel()
    n_synthetic = int(synthetic_table.sum())

    def resampled_v(draws: int, size: int) -> np.ndarray:
        tables = rng.multinomial(size, pooled / pooled.sum(), size=draws).reshape(draws, *real_table.shape)
        return np.array([cramers_v(table.astype(float)) for table in tables])

    null = _null_spread_of(resampled_v, n_real, n_synthetic)
    return PairComparison(
        value=_similarity(v_real, v_synthetic),
        p_value=_two_sided(v_real - v_synthetic, null),
        method="Cramér's V, pooled bootstrap",
        real_association=v_real,
        synthetic_association=v_synthetic,
    )


def _null_spread(statistic: Callable[[np.ndarray], np.ndarray], pooled: int, n_real: int, n_synthetic: int,
                 rng: np.random.Generator) -> tuple[float, float]:
    """`_null_spread_of` for a statistic of resampled rows.

    `statistic` takes (resamples, size) row indices into the pooled rows and returns one value per resample.
    """
    return _null_spread_of(lambda draws, size: statistic(rng.integers(0, pooled, size=(draws, size))),
                           n_real, n_synthetic)


def _null_spread_of(resample: Callable[[int, int], np.ndarray], n_real: int, n_synthetic: int
                    ) -> tuple[float, float]:
    """Mean and standard deviation of (real - synthetic association) when both samples come from one population.

    That population is the real and synthetic rows pooled, so this is what fresh real rows would show,
    rare levels and outliers included (a level seen three times is missing from a 67-row sample one time
    in five), and the bias of an association measured on samples of different sizes (a bias-corrected V
    of 40 rows over a 22 x 5 table is still pulled towards 0). `resample(draws, size)` gives the
    statistic of `draws` samples of `size` pooled rows. Samples are capped at `_NULL_ROWS` rows and the
    spread scaled back by the square root of the sizes, as a root-n statistic's is.
    """
    capped = (min(n_real, _NULL_ROWS), min(n_synthetic, _NULL_ROWS))
    difference = resample(_BOOTSTRAP, capped[0]) - resample(_BOOTSTRAP, capped[1])
    scale = math.sqrt((1 / n_real + 1 / n_synthetic) / (1 / capped[0] + 1 / capped[1]))
    return float(np.mean(difference)) * scale, float(np.std(difference)) * scale


def _two_sided(difference: float, null: tuple[float, float]) -> float:
    """p-value of `difference` under a normal null of the given mean and standard deviation."""
    centre, spread = null
    if spread > 0:
        return float(2 * stats.norm.sf(abs(difference - centre) / spread))
    return 1.0 if difference == centre else 0.0


def pair_codes(real: pd.Series, synthetic: pd.Series, kind: ColumnKind) -> tuple[np.ndarray, int]:
    """Integer codes of the real then the synthetic values, shared, and how many there are.

    Null is a level of its own and numbers fall into the real column's quantile bins (quintiles below 1,000
    real values, deciles above).
    """
    stacked = pd.concat([real, synthetic], ignore_index=True)
    if kind in _NUMERIC:
        numbers = as_numbers(stacked, kind, keep_nulls=True)
        present = numbers[: len(real)][~np.isnan(numbers[: len(real)])]
        bins = 5 if len(present) < 1000 else 10
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
        codes = np.where(np.isnan(numbers), len(edges) + 1, np.searchsorted(edges, numbers, side="right"))
        return codes, len(edges) + 2
    factorized, uniques = pd.factorize(stacked.astype(str).where(stacked.notna()))
    return np.where(factorized < 0, len(uniques), factorized), len(uniques) + 1


def _contingency(a: np.ndarray, b: np.ndarray, levels_a: int, levels_b: int) -> np.ndarray:
    return np.bincount(a * levels_b + b, minlength=levels_a * levels_b).reshape(levels_a, levels_b).astype(float)


def cramers_v(table: np.ndarray) -> float:
    """Bergsma's bias-corrected Cramér's V of a contingency table (empty rows and columns dropped).

    It is near 0 for independent columns even on small samples, where the plain V of a sparse table is
    large by chance.
    """
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = table.sum()
    rows, cols = table.shape
    if n < 2 or rows < 2 or cols < 2:
        return 0.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    phi2 = float(((table - expected) ** 2 / expected).sum() / n)
    phi2 = max(0.0, phi2 - (rows - 1) * (cols - 1) / (n - 1))
    rows_c = rows - (rows - 1) ** 2 / (n - 1)
    cols_c = cols - (cols - 1) ** 2 / (n - 1)
    span = min(rows_c - 1, cols_c - 1)
    return math.sqrt(phi2 / span) if span > 0 else 0.0


def _similarity(real: float, synthetic: float) -> float:
    """1 - |synthetic - real association|, in [0, 1]: how far the relationship moved, on its own scale.

    The scale is the association's own: a sign flip of a correlation counts its full swing.
    """
    return float(max(0.0, 1.0 - abs(synthetic - real)))


def _homogeneity_p(table: np.ndarray) -> float:
    """Chi-square test that two rows of counts come from one distribution, with rare categories pooled.

    Categories whose expected count is below 5 are pooled into one (the test's approximation needs it);
    1.0 when fewer than two are left.
    """
    totals = table.sum(axis=0)
    expected_low = (table.sum(axis=1, keepdims=True) * totals / table.sum()).min(axis=0) < _MIN_EXPECTED
    pooled = table[:, ~expected_low]
    if expected_low.any():
        pooled = np.column_stack([pooled, table[:, expected_low].sum(axis=1)])
    pooled = pooled[:, pooled.sum(axis=0) > 0]
    if pooled.shape[1] < 2:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.chi2_contingency(pooled, correction=False).pvalue)


def as_numbers(column: pd.Series, kind: ColumnKind, *, keep_nulls: bool = False) -> np.ndarray:
    """Numbers as float64; datetimes as UTC epoch nanoseconds (naive ones read as UTC)."""
    if kind is ColumnKind.DATETIME:
        stamps = pd.to_datetime(column, utc=True)
        numbers = stamps.astype("int64").astype(float).where(stamps.notna())
    else:
        numbers = pd.to_numeric(column).astype(float)
    array = numbers.to_numpy(dtype=float, na_value=np.nan)
    return array if keep_nulls else array[~np.isnan(array)]


def holm(p_values: dict[str, float], weights: dict[str, float] | None = None) -> dict[str, float]:
    """Holm's step-down adjusted p-values, which keep the chance of refusing an honest table at most alpha.

    Refusing every key whose adjusted p is below alpha refuses an honest table by chance at most alpha of
    the time, however many keys are tested.

    With `weights` (positive, any scale) the false-alarm budget is shared in proportion to them (Holm's
    weighted procedure: keys ordered by p / weight, each compared with alpha times its weight over the
    weight still untested), so the keys that matter most are not drowned by many that matter less.
    """
    raw = weights or dict.fromkeys(p_values, 1.0)
    mean = sum(raw[key] for key in p_values) / max(len(p_values), 1)
    weight = {key: raw[key] / mean for key in p_values}
    keys = sorted(p_values, key=lambda key: p_values[key] / weight[key])
    remaining = sum(weight.values())
    adjusted: dict[str, float] = {}
    running = 0.0
    for key in keys:
        running = max(running, min(1.0, p_values[key] / weight[key] * remaining))
        adjusted[key] = running
        remaining -= weight[key]
    return adjusted


def domain_validity(real: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> Comparison:
    """Share of synthetic rows inside the real rows' domain, tested against the share of holdout rows inside it.

    The domain: every number within their [min, max], every category among theirs. The p-value is that of
    "no more rows outside it than the holdout's": real unseen rows also step past a small sample's
    extremes, about 2/(n+1) of the time per column, so only a surplus is evidence of invalid values. Rows,
    not cells, are counted: one unusual record steps out of several columns at once, and its cells are not
    independent trials.
    """
    outside = {role: np.zeros(len(frame), dtype=bool) for role, frame in (("holdout", holdout),
                                                                            ("synthetic", synthetic))}
    for spec in schema.learned:
        values = real[spec.name].dropna()
        if values.empty:
            continue
        for role, frame in (("holdout", holdout), ("synthetic", synthetic)):
            cells = frame[spec.name]
            present = cells.notna().to_numpy()
            if spec.kind in _NUMERIC:
                numbers, bounds = as_numbers(cells, spec.kind, keep_nulls=True), as_numbers(values, spec.kind)
                out = (numbers < bounds.min()) | (numbers > bounds.max())
            else:
                out = ~cells.astype(str).isin(set(values.astype(str))).to_numpy()
            outside[role] |= present & out
    h_out, s_out = int(outside["holdout"].sum()), int(outside["synthetic"].sum())
    h_rows, s_rows = len(holdout), len(synthetic)
    value = 1.0 - s_out / s_rows if s_rows else 1.0
    method = "rows in the real domain, Fisher's exact test against the holdout"
    if s_out == 0 or s_out * max(h_rows, 1) <= h_out * s_rows:
        return Comparison(value, 1.0, method)
    table = [[s_out, s_rows - s_out], [h_out, h_rows - h_out]]
    return Comparison(value, float(stats.fisher_exact(table, alternative="greater").pvalue), method)


@dataclass(frozen=True)
class GatedFamilies:
    """The per-column and per-pair comparisons the gate holds to their floors, with Holm-adjusted p-values.

    Each family is adjusted on its own (`holm`). The rebalanced column's shape and its pairs are left out:
    they differ from the real table's by design.
    """

    shapes: dict[str, Comparison]
    shape_p: dict[str, float]
    pairs: dict[str, PairComparison]
    pair_p: dict[str, float]
    null_p: dict[str, float]


def gated_families(columns: ColumnComparisons, rebalanced: str | None) -> GatedFamilies:
    """The gated families of `columns`, Holm-adjusted, without the `rebalanced` column's shape and pairs."""
    shapes = {name: c for name, c in columns.shapes.items() if name != rebalanced}
    pairs = {name: c for name, c in columns.pairs.items() if rebalanced not in name.split("|", 1)}
    # A stronger relationship is a more important one to keep: its share of the false-alarm budget grows
    # with the square of the real association (the variance it explains).
    pair_p = holm({name: c.p_value for name, c in pairs.items()},
                  {name: c.real_association**2 for name, c in pairs.items()})
    return GatedFamilies(shapes, holm({name: c.p_value for name, c in shapes.items()}), pairs, pair_p,
                         holm({name: c.p_value for name, c in columns.nulls.items()}))


def _shapes(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
    families = gated_families(audit.columns, context.rebalanced)
    for name, shape in families.shapes.items():
        detail = f", {audit.columns.skipped[name]}: judged exactly" if name in audit.columns.skipped else ""
        yield Reading(shape.value, f"[{name}]", f"Shape of column {name} ({shape.method}{detail})",
                      p_value=families.shape_p[name])


def _pairs(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
    families = gated_families(audit.columns, context.rebalanced)
    for pair, association in families.pairs.items():
        a, b = pair.split("|", 1)
        yield Reading(association.value, f"[{pair}]",
                      f"Association between {a} and {b} (1 - |change|; {association.method}: real "
                      f"{association.real_association:.2f}, synthetic {association.synthetic_association:.2f})",
                      p_value=families.pair_p[pair])


def _nulls(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
    null_p = gated_families(audit.columns, context.rebalanced).null_p
    for name, nulls in audit.columns.nulls.items():
        yield Reading(1.0 - nulls.value, f"[{name}]", f"Change of the null fraction of {name}", p_value=null_p[name])


declare(CheckSpec(
    name="fidelity.column_shape", instances="[c]", label="Shape of each column", direction=">=",
    threshold=Setting("min_column_shape", 0.75, "every column's shape score at least this", ge=0, le=1),
    rule=Rule.TESTED, evidence="fidelity", read=_shapes, order=40,
    refuses="a column's KS/TV complement < {threshold}, significantly (KS test, chi-square test)",
))
declare(CheckSpec(
    name="fidelity.pair_trend", instances="[a|b]", label="Association of each strongly associated pair",
    direction=">=",
    threshold=Setting("min_pair_trend", 0.7, "1 - |change| of each strong pair's association", ge=0, le=1),
    rule=Rule.TESTED, evidence="fidelity", read=_pairs, order=50,
    refuses="for each pair whose real association is surely strong (lower 95% bound of |Spearman| ≥ 0.5, of "
            "bias-corrected Cramér's V ≥ 0.3), 1 − |synthetic − real association| < {threshold}, significantly "
            "(pooled bootstrap); a rebalanced column's pairs are exempt",
))
declare(CheckSpec(
    name="fidelity.null_drift", instances="[c]", label="Change of each column's null fraction", direction="<=",
    threshold=Setting("max_null_drift", 0.05, "change of any column's null fraction at most", ge=0, le=1),
    rule=Rule.TESTED, evidence="fidelity", read=_nulls, order=60,
    refuses="a column's null fraction moves by > {threshold}, significantly (Fisher's exact test)",
))
