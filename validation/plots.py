"""The report's figures: what the real and the synthetic table look like side by side, as PNG bytes.

Plain functions over two DataFrames and their Schema, drawn with matplotlib's Agg canvas on a private
`Figure` (no pyplot, no global state touched), at a fixed DPI and without the software tag in the PNG,
so the same tables give the same bytes. Only learned columns are drawn: id, PII and text columns are
regenerated, not modelled.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema

logger = logging.getLogger(__name__)

DPI = 100
REAL_COLOUR = "#4c72b0"
SYNTHETIC_COLOUR = "#dd8452"
_GRID_COLUMNS = 3
_BINS = 30
_TOP_CATEGORIES = 12  # bars per categorical panel; the rest are summed as "other"
_ASSOCIATION_LEVELS = 50  # categories kept per column for Cramér's V / the correlation ratio
_NS_PER_DAY = 86_400e9
_NUMERIC_KINDS = (ColumnKind.NUMERICAL, ColumnKind.DATETIME)


def column_distributions(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    scores: Mapping[str, float] | None = None,
    max_columns: int = 24,
) -> bytes:
    """Small multiples, one per learned column: histograms (numeric, datetime) or category bars, real vs synthetic.

    With `scores` (column → shape score) the worst columns come first, and are the ones kept when there
    are more than `max_columns`.
    """
    specs = _ordered(_learned(real, synthetic, schema), scores)
    shown = specs[:max_columns]
    if len(shown) < len(specs):
        logger.info("column plots: showing %d of %d learned columns", len(shown), len(specs))
    ncols = min(_GRID_COLUMNS, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    width, height = 4.0 * ncols, 2.5 * nrows + 0.85
    # Fixed margins (in inches) rather than constrained layout, which would double the drawing time.
    fig = Figure(figsize=(width, height), dpi=DPI)
    grid = {"left": 1.2 / width, "right": 1 - 0.2 / width, "top": 1 - 0.85 / height, "bottom": 0.35 / height}
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={**grid, "wspace": 0.5, "hspace": 0.6}).ravel()
    for ax, spec in zip(axes, shown, strict=False):
        score = None if scores is None else scores.get(spec.name)
        _draw_column(ax, real[spec.name], synthetic[spec.name], spec, score)
    for ax in axes[len(shown) :]:
        ax.set_axis_off()
    handles = [Patch(color=REAL_COLOUR, label="real"), Patch(color=SYNTHETIC_COLOUR, label="synthetic")]
    fig.legend(handles=handles, loc="upper center", ncols=2, frameon=False, fontsize=10)
    if len(shown) < len(specs):
        fig.text(0.01, 0.99, f"{len(shown)} of {len(specs)} learned columns shown", va="top", fontsize=9)
    return _png(fig)


def correlation_difference(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> bytes:
    """Heatmap of `association_difference` over the learned columns, on a fixed 0–1 colour scale.

    Grey cells had nothing to compare (a constant column, the diagonal).
    """
    difference = association_difference(real, synthetic, schema)
    names = [_short(str(name), 22) for name in difference.columns]
    # Fixed margins in inches (labels left and below, colour bar right): constrained layout is slow.
    longest = max(len(n) for n in names)
    left, bottom, side = 0.35 + 0.065 * longest, 0.3 + 0.055 * longest, max(0.42 * len(names), 2.0)
    fig = Figure(figsize=(left + side + 1.3, bottom + side + 0.4), dpi=DPI)
    width, height = fig.get_size_inches()
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    colour_bar = fig.add_axes(((left + side + 0.3) / width, bottom / height, 0.2 / width, side / height))
    values = difference.to_numpy()
    cmap = colormaps["Reds"].with_extremes(bad="#e6e6e6")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if len(names) <= 16:
        for i, j in zip(*np.nonzero(np.isfinite(values)), strict=True):
            value = values[i, j]
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6.5,
                    color="white" if value > 0.55 else "#1f2328")
    ax.set_title("Association difference |real − synthetic|", fontsize=10)
    fig.colorbar(image, cax=colour_bar, label="0 = same association, 1 = entirely different")
    return _png(fig)


def association_difference(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """|association in real − association in synthetic| for every pair of learned columns, in [0, 1].

    Association is Pearson's r between numeric columns (datetimes as instants), Cramér's V between
    categorical or boolean ones and the correlation ratio between the two; nulls count as a category of
    their own, and categories beyond the real table's 50 most frequent are pooled. A flipped sign of a
    strong correlation saturates at 1. NaN where a table gives nothing to compare (a constant column)
    and on the diagonal.
    """
    specs = _learned(real, synthetic, schema)
    encoded = [_encode(real[s.name], synthetic[s.name], s, _ASSOCIATION_LEVELS) for s in specs]
    difference = np.minimum(np.abs(_associations(encoded, real=True) - _associations(encoded, real=False)), 1.0)
    np.fill_diagonal(difference, np.nan)
    names = [s.name for s in specs]
    return pd.DataFrame(difference, index=names, columns=names)


@dataclass(frozen=True)
class _Encoded:
    """One column of both tables: floats (NaN = null), or category codes (0 = null, 1 = other, 2… = `labels`)."""

    numeric: bool
    real: np.ndarray
    synthetic: np.ndarray
    labels: tuple[object, ...] = ()

    @property
    def levels(self) -> int:
        return len(self.labels) + 2


def _learned(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> list[ColumnSpec]:
    specs = schema.learned
    if not specs:
        raise BadInputError("the schema has no learned columns to plot")
    for name, frame in (("real", real), ("synthetic", synthetic)):
        missing = [s.name for s in specs if s.name not in frame.columns]
        if missing:
            raise BadInputError(f"the {name} table lacks column(s): {', '.join(missing)}")
    return specs


def _ordered(specs: list[ColumnSpec], scores: Mapping[str, float] | None) -> list[ColumnSpec]:
    """Worst shape score first; unscorable (NaN) columns before all, unscored ones last, ties in schema order."""
    if scores is None:
        return specs

    def key(spec: ColumnSpec) -> float:
        score = scores.get(spec.name)
        if score is None:
            return math.inf
        return -math.inf if math.isnan(score) else float(score)

    return sorted(specs, key=key)


def _draw_column(ax: Axes, real: pd.Series, synthetic: pd.Series, spec: ColumnSpec, score: float | None) -> None:
    if spec.kind in _NUMERIC_KINDS:
        _draw_histogram(ax, _as_float(real, spec), _as_float(synthetic, spec), spec)
    else:
        _draw_bars(ax, _encode(real, synthetic, spec, _TOP_CATEGORIES))
    title = _short(spec.name, 30) + ("" if score is None else f"  ·  score {score:.2f}".replace("nan", "n/a"))
    nulls = (real.isna().mean(), synthetic.isna().mean())
    if any(nulls):
        title += f"\nnull: real {nulls[0]:.1%}, synthetic {nulls[1]:.1%}"
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _draw_histogram(ax: Axes, real: np.ndarray, synthetic: np.ndarray, spec: ColumnSpec) -> None:
    """Density histograms on the real data's bins; values outside them land in the end bins."""
    real, synthetic = real[np.isfinite(real)], synthetic[np.isfinite(synthetic)]
    if not real.size and not synthetic.size:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="#59636e")
        return
    edges = _bin_edges(real if real.size else synthetic, spec)
    if spec.kind is ColumnKind.DATETIME:
        ax.xaxis.set_major_locator(locator := mdates.AutoDateLocator(minticks=2, maxticks=6))
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    shift = mdates.date2num(np.datetime64("1970-01-01")) if spec.kind is ColumnKind.DATETIME else 0.0
    scale = _NS_PER_DAY if spec.kind is ColumnKind.DATETIME else 1.0
    for values, colour, filled in ((real, REAL_COLOUR, True), (synthetic, SYNTHETIC_COLOUR, False)):
        if values.size:
            density, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges, density=True)
            ax.stairs(density * scale, edges / scale + shift, fill=filled, color=colour,
                      alpha=0.45 if filled else 1.0, linewidth=1.6)
    ax.set_yticks([])


def _bin_edges(values: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    """Equal-width bins over the real data's 0.5–99.5% quantiles, so one outlier does not squash the rest.

    Integer columns of a short range get one bin per value.
    """
    low, high = np.quantile(values, [0.005, 0.995])
    if spec.integer and high - low <= 2 * _BINS:
        return np.arange(np.floor(low) - 0.5, np.ceil(high) + 1.0)
    if low == high:
        return np.array([low - 0.5, high + 0.5])
    return np.linspace(low, high, _BINS + 1)


def _draw_bars(ax: Axes, encoded: _Encoded) -> None:
    """Each category's share of the non-null rows, real and synthetic side by side, most frequent on top."""
    labels = ["(null)", "other", *(_short(str(c), 18) for c in encoded.labels)]
    shares = [_shares(codes, encoded.levels) for codes in (encoded.real, encoded.synthetic)]
    keep = [i for i in range(2, encoded.levels) if shares[0][i] or shares[1][i]]
    if shares[0][1] or shares[1][1]:
        keep.append(1)
    y = np.arange(len(keep))
    for offset, share, colour in ((-0.2, shares[0], REAL_COLOUR), (0.2, shares[1], SYNTHETIC_COLOUR)):
        ax.barh(y + offset, share[keep], height=0.4, color=colour)
    ax.set_yticks(y, [labels[i] for i in keep], fontsize=7)
    ax.set_ylim(max(len(keep), 4) - 0.5, -0.5)  # a few categories keep thin bars, most frequent on top
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")


def _shares(codes: np.ndarray, levels: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=levels).astype(float)
    counts[0] = 0.0  # nulls are reported in the title, not as a bar
    total = counts.sum()
    return counts / total if total else counts


def _encode(real: pd.Series, synthetic: pd.Series, spec: ColumnSpec, top: int) -> _Encoded:
    """Floats for numeric and datetime columns; otherwise codes 0 = null, 1 = other, 2… = top categories.

    The top categories are the real table's `top` most frequent, most frequent first (ties by their text,
    so the order is stable).
    """
    if spec.kind in _NUMERIC_KINDS:
        return _Encoded(True, _as_float(real, spec), _as_float(synthetic, spec))
    counts = real.value_counts(dropna=True)
    order = sorted(zip(counts.index, counts.to_numpy(), strict=True), key=lambda kv: (-kv[1], str(kv[0])))
    categories = [value for value, _ in order[:top]]
    return _Encoded(False, _codes(real, categories), _codes(synthetic, categories), tuple(categories))


def _codes(series: pd.Series, categories: list[object]) -> np.ndarray:
    index = pd.Index(categories, dtype=object)
    position = index.get_indexer(series.astype(object))
    return np.where(series.isna().to_numpy(), 0, np.where(position < 0, 1, position + 2)).astype(np.int64)


def _as_float(series: pd.Series, spec: ColumnSpec) -> np.ndarray:
    """Numbers as floats, datetimes as UTC epoch nanoseconds; anything unreadable becomes NaN."""
    if spec.kind is ColumnKind.DATETIME:
        instants = pd.to_datetime(series, utc=True, errors="coerce")
        nanos = instants.astype("int64").to_numpy(dtype=float)
        return np.where(instants.isna().to_numpy(), np.nan, nanos)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _associations(encoded: list[_Encoded], *, real: bool) -> np.ndarray:
    """The symmetric matrix of pairwise associations in one table; NaN where undefined."""
    n = len(encoded)
    out = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = _association(encoded[i], encoded[j], real=real)
    return out


def _association(a: _Encoded, b: _Encoded, *, real: bool) -> float:
    x, y = (a.real, b.real) if real else (a.synthetic, b.synthetic)
    if a.numeric and b.numeric:
        return _pearson(x, y)
    if a.numeric:
        return _correlation_ratio(y, b.levels, x)
    if b.numeric:
        return _correlation_ratio(x, a.levels, y)
    return _cramers_v(x, a.levels, y, b.levels)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    denominator = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denominator if denominator > 0 else math.nan


def _correlation_ratio(codes: np.ndarray, levels: int, values: np.ndarray) -> float:
    """η: the share of the numeric column's spread explained by the category, as a root (0 … 1)."""
    ok = np.isfinite(values)
    if not ok.any():
        return math.nan
    codes, values = codes[ok], values[ok] - values[ok].mean()
    total = float(values @ values)
    if total <= 0:
        return math.nan
    counts = np.bincount(codes, minlength=levels)
    sums = np.bincount(codes, weights=values, minlength=levels)
    present = counts > 0
    between = float((sums[present] ** 2 / counts[present]).sum())
    return math.sqrt(min(between / total, 1.0))


def _cramers_v(a: np.ndarray, levels_a: int, b: np.ndarray, levels_b: int) -> float:
    table = np.bincount(a * levels_b + b, minlength=levels_a * levels_b).reshape(levels_a, levels_b)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0].astype(float)
    if min(table.shape) < 2:
        return math.nan
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(min(chi2 / (n * (min(table.shape) - 1)), 1.0))


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes with no timestamp or software tag, so equal inputs give equal bytes."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()
