"""A Gaussian copula on the encoded table: exact per-column marginals, one latent normal per column.

The fast baseline of the zoo. Every learned column becomes one latent standard normal:
- its discrete part (mode one-hot, category one-hot, boolean flag) picks a *cell*, and each cell owns an
  interval of the unit line as long as its frequency (SDV's treatment of categories);
- within a cell, a mode-normalised value is placed by its empirical CDF, kept as an interpolated
  quantile grid, so a numerical column's marginal is reproduced, spikes included;
- a number's or a boolean's null flag is a latent of its own, and its missing rows have none in the
  column itself (their correlations are estimated on the rows where both latents are observed).
A number's cells follow its modes (sorted by mean), so its latent is monotone in the number. The cells of
categories are ordered by optimal scaling, along the main direction in which the other columns' latents
differ between them, so the one latent dimension carries as much of their association as a line can.
The latents' correlation is estimated from their conditional means, corrected for the shrinkage coarse
cells cause, and projected to a valid correlation matrix.

Sampling draws the latents from that multivariate normal and inverts every column at once; conditioning on
categories is native (the conditioned latents are drawn inside their cells' intervals, the others from
the Gaussian conditional), so rare classes cost no rejection. The score is the copula's log-density at
the row's latents plus the log-probabilities of its cells.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch

from generators.base import Generator
from generators.nn.training import History
from generators.registry import register
from generators.tabular.encoder import Condition, Span
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)

_TINY = 1e-12
_GIBBS_SWEEPS = 20  # over the conditioned latents, when several conditions make them a truncated normal


@dataclass(frozen=True)
class GaussianCopulaConfig:
    """Hyper-parameters; the defaults need no tuning.

    `quantiles`: points of every cell's quantile grid (at most one per training row); `ordering_sweeps`:
    optimal-scaling passes ordering the cells of categorical columns (0 keeps them by decreasing
    frequency, as SDV does); `min_eigenvalue`: floor of the correlation matrix's spectrum, which
    keeps it invertible when columns are (nearly) functions of one another.
    """

    quantiles: int = 1000
    ordering_sweeps: int = 2
    min_eigenvalue: float = 1e-3

    def __post_init__(self) -> None:
        if self.quantiles < 2:
            raise BadInputError("copula: quantiles must be ≥ 2")
        if self.ordering_sweeps < 0:
            raise BadInputError("copula: ordering_sweeps must be ≥ 0")
        if not 0.0 < self.min_eigenvalue < 1.0:
            raise BadInputError("copula: min_eigenvalue must be in (0, 1)")


@dataclass(frozen=True)
class _Column:
    """One latent's place in the encoded matrix: its discrete spans, its value and its null flag.

    The discrete spans are (start, width) pairs; the value's position is -1 without one; the null flag's
    position (or -1) marks rows that have no latent here (they are missing: the flag is a latent of its own).
    """

    discrete: tuple[tuple[int, int], ...]
    value: int
    null: int

    def observed(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.null] < 0.5 if self.null >= 0 else torch.ones_like(x[:, 0], dtype=torch.bool)

    def keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's discrete pattern as one mixed-radix number, and whether the pattern is well formed.

        A digit is a group's hot slot or a flag's bit; well formed means one 1 per group and 0/1 flags (not an
        unseen category's zeros).
        """
        key = torch.zeros(len(x), dtype=torch.long, device=x.device)
        valid = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for start, width in self.discrete:
            block = x[:, start : start + width]
            if width > 1:
                code, valid = block.argmax(dim=1), valid & (block.sum(dim=1) == 1) & (block.amax(dim=1) == 1)
            else:
                code, valid = block[:, 0].round().long(), valid & ((block[:, 0] == 0) | (block[:, 0] == 1))
            key = key * max(width, 2) + code
        return key, valid

    def positions(self, key: torch.Tensor) -> torch.Tensor:
        """The encoded positions each pattern sets to 1 (C x spans), -1 where a flag is 0."""
        positions = []
        for start, width in reversed(self.discrete):
            code = key % max(width, 2)
            positions.append(start + code if width > 1 else torch.where(code == 1, start, -1))
            key = key // max(width, 2)
        return torch.stack(positions[::-1], dim=1) if positions else key.new_zeros(len(key), 0)


@dataclass(frozen=True)
class _Marginals:
    """Every column's marginal, the cells of all columns stacked (K cells in all).

    Column j owns cells `offsets[j]:offsets[j + 1]`, in latent order. `keys` (K): each cell's discrete
    pattern as the column's mixed-radix number; `low`, `high` (K): the cell's interval of the unit line;
    `quantiles` (K_v x m): for the cells of columns with a value, the values in the cell at m evenly spaced
    probabilities (`grid` (K) says which row, -1 for cells without a value).
    """

    columns: tuple[_Column, ...]
    offsets: torch.Tensor
    keys: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    grid: torch.Tensor
    quantiles: torch.Tensor

    def cells_of(self, x: torch.Tensor, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The global cell of each row in column j, and whether the row's pattern is that cell's.

        An unseen pattern gets the column's first cell and False.
        """
        start, stop = int(self.offsets[j]), int(self.offsets[j + 1])
        key, valid = self.columns[j].keys(x)
        known, order = self.keys[start:stop].sort()
        found = torch.searchsorted(known, key).clamp(max=stop - start - 1)
        exact = valid & (known[found] == key)
        return start + torch.where(exact, order[found], 0), exact

    def latent(self, x: torch.Tensor, j: int, cell: torch.Tensor) -> torch.Tensor:
        """Each row's latent in column j: E[Z | Z in the row's interval], Z standard normal; NaN where missing.

        The interval is the row's cell interval, narrowed by its value's place in the cell (a point for a
        continuous value, the atom's stretch for a repeated one).
        """
        low, high = self.low[cell], self.high[cell]
        value = self.columns[j].value
        if value >= 0:
            a, b = torch.empty_like(low), torch.empty_like(low)
            values = x[:, value].to(low.dtype)
            for c in range(int(self.offsets[j]), int(self.offsets[j + 1])):
                rows = cell == c
                a[rows], b[rows] = _grid_position(self.quantiles[self.grid[c]], values[rows])
            low, high = low + (high - low) * a, low + (high - low) * b
        return _truncated_mean(low, high).where(self.columns[j].observed(x), math.nan)

    def latents(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every row's latents (n x d, NaN where missing), global cells (n x d) and whether each matched exactly."""
        cells, exact = zip(*(self.cells_of(x, j) for j in range(len(self.columns))), strict=True)
        latents = [self.latent(x, j, cell) for j, cell in enumerate(cells)]
        return torch.stack(latents, dim=1), torch.stack(cells, dim=1), torch.stack(exact, dim=1)

    def decode(self, u: torch.Tensor, width: int) -> torch.Tensor:
        """Encoded rows (n x width) of uniforms `u` (n x d), all columns at once.

        Each uniform picks a cell (its pattern's 1s written in) and a place within it (the value read off the
        cell's quantile grid).
        """
        sizes = self.offsets[1:] - self.offsets[:-1]
        local = torch.arange(1, int(sizes.max()), device=u.device)
        inner = (self.offsets[:-1, None] + local).clamp(max=len(self.low) - 1)  # each column's inner edges
        edges = torch.where(local < sizes[:, None], self.low[inner], 2.0).to(u.dtype)  # padded past the last
        cell = self.offsets[:-1, None] + torch.searchsorted(edges, u.T.contiguous(), right=True)  # d x n
        hot = torch.cat([c.positions(self.keys[cell[j]]) for j, c in enumerate(self.columns)], dim=1)
        out = torch.zeros(len(u), width + 1, device=u.device)  # the last column takes the flags' -1s
        out.scatter_(1, torch.where(hot < 0, width, hot), 1.0)
        out = out[:, :width]
        values = [j for j, c in enumerate(self.columns) if c.value >= 0]
        if values:
            rows = cell[values]
            low, high = self.low[rows].to(u.dtype), self.high[rows].to(u.dtype)
            m = self.quantiles.shape[1]
            position = ((u.T[values] - low) / (high - low).clamp_min(_TINY)).clamp(0, 1) * (m - 1)
            left = position.floor().long().clamp(max=m - 2)
            flat, base = self.quantiles.reshape(-1).to(u.dtype), self.grid[rows] * m + left
            lower, upper = flat[base], flat[base + 1]
            out[:, [self.columns[j].value for j in values]] = (lower + (position - left) * (upper - lower)).T.float()
        return out


@register
class GaussianCopulaGenerator(Generator):
    """Gaussian copula with empirical marginals: the fast baseline, fitted in about a second."""

    name: ClassVar[str] = "copula"
    config_class: ClassVar[type[Any]] = GaussianCopulaConfig
    config: GaussianCopulaConfig

    def _fit(self, x: torch.Tensor, generator: torch.Generator) -> History:
        """Fit the marginals, then the cells' order, then the latents' correlation.

        The history holds each ordering sweep's mean absolute latent correlation (there is no loss to
        minimise).
        """
        x = x.double()
        columns = _columns(self._fitted_encoder().layout_)
        m = max(2, min(self.config.quantiles, len(x)))
        keys, counts, grids = zip(*(_fit_column(x, c, m) for c in columns), strict=True)
        marginals = _stack(columns, keys, counts, grids)
        cells = torch.stack([marginals.cells_of(x, j)[0] for j in range(len(columns))], dim=1)
        scores = torch.stack([marginals.latent(x, j, cells[:, j]) for j in range(len(columns))], dim=1)
        sizes = marginals.offsets[1:] - marginals.offsets[:-1]
        # Cells of a category are ordered by the other latents; 2 cells, or no other latent: order is moot.
        nominal = [j for j, c in enumerate(columns) if c.value < 0 and sizes[j] > 2 and len(columns) > 1]
        filled = scores.nan_to_num(0.0)  # a missing latent counts as its median when ordering cells
        records = []
        for sweep in range(self.config.ordering_sweeps):
            for j in nominal:  # never missing: only numbers and booleans have null latents
                marginals, cells[:, j] = _reorder(marginals, cells[:, j], filled, j)
                scores[:, j] = filled[:, j] = marginals.latent(x, j, cells[:, j])
            correlation = _mean_abs(scores)
            records.append({"step": sweep + 1, "epoch": float(sweep + 1), "mean_abs_correlation": correlation})
            logger.info("copula: ordering sweep %d, mean |latent correlation| %.4f", sweep + 1, correlation)
        self.marginals_ = marginals
        self.rows_ = len(x)
        self._set_correlation(_correlation(scores, self.config.min_eigenvalue))
        logger.info("copula: %d latents, %d cells", len(columns), len(marginals.low))
        sweeps = self.config.ordering_sweeps
        return History(tuple(records), sweeps, sweeps, float(sweeps))

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, len(self.correlation_), generator=generator, device=self.device_)
        return self.marginals_.decode(torch.special.ndtr(z @ self.chol_.T.float()), self._fitted_encoder().width_)

    def _sample_conditional(self, n: int, generator: torch.Generator, fixed: tuple[Condition, ...]) -> torch.Tensor:
        """The conditioned latents drawn inside their cells' intervals, then the others conditional on them.

        The conditioned latents are a truncated normal (by Gibbs sweeps when there are several); the others
        come from the Gaussian conditional on them.
        """
        given = [self._column_of(c.span) for c in fixed]
        if len(set(given)) < len(given):
            raise BadInputError("copula: two conditions on one column")
        cells = torch.tensor([self._cell_of(j, c) for j, c in zip(given, fixed, strict=True)], device=self.device_)
        low, high = torch.special.ndtri(self.marginals_.low[cells]), torch.special.ndtri(self.marginals_.high[cells])
        r = self.correlation_
        z = torch.empty(n, len(r), dtype=torch.float64, device=self.device_)
        z[:, given] = _truncated_normal(r[given][:, given], low, high, n, generator)
        rest = [j for j in range(len(r)) if j not in given]
        if rest:
            weights = torch.linalg.solve(r[given][:, given], r[given][:, rest]).T  # R_rg R_gg^-1
            chol = _cholesky(r[rest][:, rest] - weights @ r[given][:, rest])
            noise = torch.randn(n, len(rest), generator=generator, dtype=torch.float64, device=self.device_)
            z[:, rest] = z[:, given] @ weights.T + noise @ chol.T
        return self.marginals_.decode(torch.special.ndtr(z), self._fitted_encoder().width_)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """The copula's log-density plus each latent's cell log-probability: log c(latents) + Σ log P(cell).

        A pattern never seen in training (an unseen category) counts as half a training row, and a missing
        number's latent sits at its median (its null flag's latent and cell still count).
        """
        s, cells, exact = self.marginals_.latents(x.double())
        missing = s.isnan()
        s = s.nan_to_num(0.0)
        whitened = torch.linalg.solve_triangular(self.chol_, s.T, upper=False).T
        log_copula = -0.5 * (whitened.square() - s.square()).sum(dim=1) - self.chol_.diagonal().log().sum()
        floor = 0.5 / self.rows_
        probability = torch.where(exact, self.marginals_.high[cells] - self.marginals_.low[cells], floor)
        return log_copula + probability.clamp_min(floor).log().masked_fill(missing, 0.0).sum(dim=1)

    def _state(self) -> dict[str, Any]:
        m = self.marginals_
        return {
            "correlation": self.correlation_,
            "rows": self.rows_,
            "offsets": m.offsets,
            "keys": m.keys,
            "low": m.low,
            "high": m.high,
            "grid": m.grid,
            "quantiles": m.quantiles,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        columns = _columns(self._fitted_encoder().layout_)
        fields = ("offsets", "keys", "low", "high", "grid", "quantiles")
        self.marginals_ = _Marginals(columns, *(state[f] for f in fields))
        self.rows_ = state["rows"]
        self._set_correlation(state["correlation"])

    def _set_correlation(self, correlation: torch.Tensor) -> None:
        self.correlation_ = correlation
        self.chol_ = _cholesky(correlation)

    def _column_of(self, span: Span) -> int:
        return next(j for j, c in enumerate(self.marginals_.columns) if span.start in (a for a, _ in c.discrete))

    def _cell_of(self, j: int, condition: Condition) -> int:
        """The one cell of column j whose rows decode to the condition."""
        encoder = self._fitted_encoder()
        row = encoder.impose(torch.zeros(1, encoder.width_, device=self.device_), (condition,))
        cell, exact = self.marginals_.cells_of(row, j)
        if not bool(exact[0]):
            raise BadInputError(
                f"copula: cannot condition on '{condition.span.column}': that value never occurs in training"
            )
        return int(cell[0])


def _by_column(layout: tuple[Span, ...]) -> list[list[Span]]:
    """The layout's spans grouped by column, in order."""
    groups: dict[str, list[Span]] = {}
    for span in layout:
        groups.setdefault(span.column, []).append(span)
    return list(groups.values())


def _columns(layout: tuple[Span, ...]) -> tuple[_Column, ...]:
    """One latent per learned column, and one more for the null flag of a number or a boolean.

    Missing values are then neither a cell at one end of the number's line (which would drag its correlations
    towards zero) nor mistaken for a False.
    """
    columns = []
    for spans in _by_column(layout):
        null = next((s.start for s in spans if s.role == "null"), -1)
        discrete = tuple((s.start, s.width) for s in spans if s.role not in ("value", "null"))
        columns.append(_Column(discrete, next((s.start for s in spans if s.role == "value"), -1), null))
        if null >= 0:
            columns.append(_Column(((null, 1),), -1, -1))
    return tuple(columns)


def _fit_column(x: torch.Tensor, column: _Column, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A latent's cells as keys, their counts and their value quantile grids (C x m, or 0 x m without a value).

    The cells are the distinct patterns of its discrete spans among its observed rows. A number's cells are
    ordered by mode, the others by decreasing frequency.
    """
    observed = column.observed(x)
    observed = observed if observed.any() else ~observed  # a column missing everywhere keeps its filler
    keys, cell, counts = torch.unique(column.keys(x)[0][observed], return_inverse=True, return_counts=True)
    if column.value >= 0 and column.discrete:  # the mode group: keys already count in mode order
        order = torch.arange(len(keys), device=x.device)
    else:
        order = counts.argsort(descending=True, stable=True)
    cell = order.argsort()[cell]
    grid = x.new_zeros(0, m)
    if column.value >= 0:
        values = x[observed, column.value]
        grid = torch.stack([_quantile_grid(values[cell == c], m) for c in range(len(keys))])
    return keys[order], counts[order], grid


def _stack(
    columns: tuple[_Column, ...],
    keys: Sequence[torch.Tensor],
    counts: Sequence[torch.Tensor],
    grids: Sequence[torch.Tensor],
) -> _Marginals:
    """The columns' cells stacked, each column's intervals tiling the unit line in cell order."""
    sizes = torch.tensor([0] + [len(c) for c in counts], device=keys[0].device)
    high = torch.cat([c.cumsum(0) / c.sum() for c in counts]).double()
    low = torch.cat([(c.cumsum(0) - c) / c.sum() for c in counts]).double()
    rows = torch.cat([torch.full((len(c),), len(g) > 0, device=c.device) for c, g in zip(counts, grids, strict=True)])
    grid = torch.where(rows, rows.long().cumsum(0) - 1, -1)
    return _Marginals(columns, sizes.cumsum(0), torch.cat(list(keys)), low, high, grid, torch.cat(list(grids)))


def _quantile_grid(values: torch.Tensor, m: int) -> torch.Tensor:
    """The values' quantiles at m evenly spaced probabilities, interpolating between order statistics."""
    ordered = values.sort().values
    position = torch.linspace(0, len(ordered) - 1, m, dtype=torch.float64, device=values.device)
    left = position.floor().long().clamp(max=max(len(ordered) - 2, 0))
    right = (left + 1).clamp(max=len(ordered) - 1)
    return ordered[left] + (position - left) * (ordered[right] - ordered[left])


def _grid_position(grid: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where values sit on a quantile grid, as [a, b] within [0, 1].

    That is a point between grid points, or the stretch of the grid a repeated value (an atom) covers.
    """
    top = len(grid) - 1
    first = torch.searchsorted(grid, values, right=False)
    after = torch.searchsorted(grid, values, right=True)
    lower = grid[(first - 1).clamp(0, top)]
    upper = grid[first.clamp(max=top)]
    point = (first - 1 + (values - lower) / (upper - lower).clamp_min(_TINY)).clamp(0, top)
    atom = after > first
    a = torch.where(atom, first.double(), point) / top
    b = torch.where(atom, (after - 1).double(), point) / top
    return a, b


def _truncated_mean(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """E[Z | Φ(Z) in [low, high]] for a standard normal Z; Φ⁻¹ of the middle for (near) points."""
    alpha, beta = torch.special.ndtri(low), torch.special.ndtri(high)
    density = torch.exp(-0.5 * alpha.square()) - torch.exp(-0.5 * beta.square())
    mean = density / math.sqrt(2 * math.pi) / (high - low).clamp_min(_TINY)
    middle = torch.special.ndtri(((low + high) / 2).clamp(_TINY, 1 - _TINY))
    return torch.where(high - low > 1e-9, mean, middle)


def _reorder(
    marginals: _Marginals, cell: torch.Tensor, scores: torch.Tensor, j: int
) -> tuple[_Marginals, torch.Tensor]:
    """Optimal scaling of column j: its cells ordered to be as linear in the other columns as one line allows.

    The cells are sorted along the main direction in which the other columns' mean latents differ between
    them.
    """
    start, stop = int(marginals.offsets[j]), int(marginals.offsets[j + 1])
    local = cell - start
    others = torch.cat([scores[:, :j], scores[:, j + 1 :]], dim=1)
    counts = torch.bincount(local, minlength=stop - start).double()
    means = torch.zeros(stop - start, others.shape[1], dtype=others.dtype, device=others.device)
    means.index_add_(0, local, others)
    means /= counts.clamp_min(1)[:, None]
    weighted = means * (counts / counts.sum()).sqrt()[:, None]
    direction = torch.linalg.eigh(weighted.T @ weighted).eigenvectors[:, -1]
    order = (means @ direction).argsort(stable=True)
    counts = counts[order]
    keys, low, high = marginals.keys.clone(), marginals.low.clone(), marginals.high.clone()
    keys[start:stop] = marginals.keys[start:stop][order]
    high[start:stop] = counts.cumsum(0) / counts.sum()
    low[start:stop] = high[start:stop] - counts / counts.sum()
    return replace(marginals, keys=keys, low=low, high=high), start + order.argsort()[local]


def _correlation(scores: torch.Tensor, min_eigenvalue: float) -> torch.Tensor:
    """The latents' correlation, with every eigenvalue at least `min_eigenvalue`.

    It is E[s_i s_j] / (Var s_i Var s_j) over the rows where both are observed, which undoes (to first
    order) the shrinkage of conditional means in coarse cells, then projected to a correlation matrix whose
    eigenvalues are at least `min_eigenvalue`.
    """
    observed = (~scores.isnan()).to(scores.dtype)
    scores = scores.nan_to_num(0.0)
    moments = scores.T @ scores / (observed.T @ observed).clamp_min(1)
    variance = moments.diagonal().clamp_min(_TINY)
    correlation = (moments / variance[:, None] / variance[None, :]).clamp(-1, 1)
    correlation.fill_diagonal_(1.0)
    for _ in range(10):
        values, vectors = torch.linalg.eigh(correlation)
        if values.min() >= min_eigenvalue * 0.999:
            break
        correlation = (vectors * values.clamp_min(min_eigenvalue)) @ vectors.T
        scale = correlation.diagonal().sqrt()
        correlation = correlation / scale[:, None] / scale[None, :]
    return correlation


def _cholesky(matrix: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(len(matrix), dtype=matrix.dtype, device=matrix.device)
    chol, info = torch.linalg.cholesky_ex(matrix + 1e-10 * eye)
    return chol if not bool(info) else torch.linalg.cholesky(matrix + 1e-6 * eye)


def _truncated_normal(
    correlation: torch.Tensor, low: torch.Tensor, high: torch.Tensor, n: int, generator: torch.Generator
) -> torch.Tensor:
    """Draws, `n` of them, of N(0, correlation) restricted to the box [low, high].

    Exact for one dimension, Gibbs sweeps (each coordinate from its truncated conditional) for more.
    """
    k = len(correlation)
    z = torch.zeros(n, k, dtype=torch.float64, device=correlation.device)
    precision = torch.linalg.inv(correlation)
    for _ in range(1 if k == 1 else _GIBBS_SWEEPS):
        for i in range(k):
            sd = precision[i, i].rsqrt()
            mean = -(z @ precision[:, i] - z[:, i] * precision[i, i]) / precision[i, i]
            z[:, i] = mean + sd * _standard_truncated((low[i] - mean) / sd, (high[i] - mean) / sd, generator)
    return z


def _standard_truncated(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal draws restricted to [a, b] by inverse CDF.

    The CDF is computed on the side of the lighter tail so that intervals far out keep their precision.
    """
    flip = (a + b) > 0
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    p_lo, p_hi = torch.special.ndtr(lo), torch.special.ndtr(hi)
    u = torch.rand(p_lo.shape, generator=generator, dtype=p_lo.dtype, device=p_lo.device)
    z = torch.special.ndtri((p_lo + u * (p_hi - p_lo)).clamp(_TINY, 1 - _TINY)).clamp(lo, hi)
    return torch.where(flip, -z, z)


def _mean_abs(scores: torch.Tensor) -> float:
    correlation = torch.atleast_2d(torch.corrcoef(scores.nan_to_num(0.0).T).nan_to_num())
    d = len(correlation)
    return float((correlation.abs().sum() - correlation.diagonal().abs().sum()) / max(d * (d - 1), 1))
