"""MST (McKenna, Miklau & Sheldon 2021): a tree of noisy 2-way marginals, the marginal-based DP generator.

Every learned column becomes a few discrete *cells* of the encoded matrix (a category's slots, a boolean's
two values, a number's mode times `bins` equal bins of its normalised value plus a cell at each end that
holds the exact bound, so clipped values and spikes at a bound such as capital-gain's 0 come back exact),
and a missing value a cell of its own. With `dp_epsilon` set, the budget left after the encoder's share
is spent in zero-concentrated DP (rho), a third on each step, as MST does:

1. every 1-way marginal measured with Gaussian noise; the cells whose noisy count is under three noise
   deviations merge into one (MST's domain compression: post-processing, so free);
2. a maximum spanning tree of column pairs chosen by d - 1 exponential mechanisms, each pair scored by the
   L1 distance between its true 2-way marginal and the independent one the noisy 1-ways predict;
3. the tree's 2-way marginals measured with Gaussian noise.

The estimate is exact for a tree, so it needs no library (private-pgm's `mbi` would add JAX for a mirror
descent that, on a tree, converges to the same kind of answer): each column's marginal pools its 1-way
measurement with its edges' sums (inverse-variance weights), projected onto non-negative counts that sum
to the (public) row count; each edge's table is projected the same way and raked (iterative proportional
fitting) to its two marginals, so the tables agree where they meet. The maximum-entropy distribution with
those marginals factorises over the tree, so rows are drawn root to leaves, each column given its parent;
a merged cell decodes to one of its cells uniformly, and a number uniformly within its bin.

The noise (Gaussian measurements, Gumbel draws of the exponential mechanism) comes from the operating
system's CSPRNG unless `secure_noise` is off (for reproducible tests): a seed must not let anyone replay the
noise. So two DP fits with one seed differ; sampling a fitted model stays seeded. Without `dp_epsilon` the
same steps run noiselessly: the exact maximum spanning tree of the exact marginals.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from generators.base import Generator
from generators.nn.dp import ENCODER_SHARE, DPConfig
from generators.nn.training import History
from generators.registry import register
from generators.tabular.encoder import EncoderPrivacy, Span, public_assumptions
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)

MECHANISM = "MST (zCDP: Gaussian 1- and 2-way marginals, exponential-mechanism tree) + Laplace counts for the encoder"
_SUPPORT = 3.0  # a noisy 1-way cell is kept when it counts at least this many noise deviations (MST's choice)
_EDGE = 1e-6  # a normalised value this close to a bound is that bound (the encoded matrix is float32)
_RAKING_ROUNDS = 100


@dataclass(frozen=True)
class MSTConfig:
    """Hyper-parameters; the defaults need no tuning.

    `dp_epsilon` (None: no DP) and `dp_delta` as in `generators.nn.dp.DPConfig`, whose encoder share this
    model spends too. `bins`: equal bins of a number's normalised value per mode (plus one cell at each
    bound). `secure_noise`: DP noise from the OS's CSPRNG; off, it comes from the seed, only for tests and
    benchmarks that must repeat a DP fit.
    """

    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    bins: int = 32
    secure_noise: bool = True

    def __post_init__(self) -> None:
        self.privacy().check_privacy("mst")
        if self.bins < 1:
            raise BadInputError("mst: bins must be ≥ 1")

    def privacy(self) -> DPConfig:
        """The DP settings in the shared form (there is no gradient to clip: its norm is the default)."""
        return DPConfig(self.dp_epsilon, self.dp_delta)

    def encoder_privacy(self) -> EncoderPrivacy | None:
        """The encoder's share of the budget, as every DP generator spends it, its noise as secure as MST's own."""
        share = self.privacy().encoder_privacy()
        return None if share is None else dataclasses.replace(share, secure_noise=self.secure_noise)


# zCDP <-> (epsilon, delta): Canonne, Kamath & Steinke (2020), Proposition 12. Any order alpha > 1 gives a valid
# delta; the search only makes it tight, so an imprecise optimum errs on the safe side.
def cdp_delta(rho: float, epsilon: float) -> float:
    """The delta at which rho-zCDP is (epsilon, delta)-DP."""
    if rho <= 0:
        return 0.0
    low, high = 1.01, (epsilon + 1) / (2 * rho) + 2
    for _ in range(200):  # bisection on the derivative of the log bound, which increases with alpha
        alpha = (low + high) / 2
        if (2 * alpha - 1) * rho - epsilon + math.log1p(-1 / alpha) < 0:
            low = alpha
        else:
            high = alpha
    log_delta = (alpha - 1) * (alpha * rho - epsilon) + alpha * math.log1p(-1 / alpha) - math.log(alpha - 1)
    return min(math.exp(log_delta), 1.0)


def cdp_rho(epsilon: float, delta: float) -> float:
    """The largest rho whose zCDP is (epsilon, delta)-DP."""
    low, high = 0.0, epsilon + 1.0
    for _ in range(200):
        rho = (low + high) / 2
        low, high = (rho, high) if cdp_delta(rho, epsilon) <= delta else (low, rho)
    return low


def cdp_epsilon(rho: float, delta: float) -> float:
    """The smallest epsilon at which rho-zCDP is (epsilon, delta)-DP."""
    low, high = 0.0, rho + 2 * math.sqrt(rho * math.log(1 / delta)) + 1e-12  # the simple bound is valid
    for _ in range(200):
        epsilon = (low + high) / 2
        low, high = (low, epsilon) if cdp_delta(rho, epsilon) <= delta else (epsilon, high)
    return high


class _Noise:
    """Uniform, Gaussian and Gumbel draws from the OS's CSPRNG, or from `rng` when one is given (tests only)."""

    def __init__(self, rng: np.random.Generator | None) -> None:
        self.rng = rng

    def uniform(self, n: int) -> np.ndarray:
        """Uniforms on the open interval (0, 1), 53 random bits each."""
        if self.rng is None:
            bits = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) >> np.uint64(11)
        else:
            bits = self.rng.integers(0, 2**53, n, dtype=np.uint64)
        return (bits.astype(np.float64) + 0.5) * 2.0**-53

    def gaussian(self, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
        """Normal noise of deviation `sigma` (Box-Muller)."""
        n = math.prod(shape)
        radius = np.sqrt(-2 * np.log(self.uniform(n)))
        return (sigma * radius * np.cos(2 * np.pi * self.uniform(n))).reshape(shape)

    def exponential_mechanism(self, scores: np.ndarray, epsilon: float) -> int:
        """An index drawn with probability proportional to exp(epsilon * score / 2) (sensitivity 1), by Gumbel-max."""
        return int(np.argmax(epsilon / 2 * scores - np.log(-np.log(self.uniform(len(scores))))))


@dataclass(frozen=True)
class _Cells:
    """The discrete cells of one learned column, read from and written to its spans of the encoded matrix.

    A category's cells are its one-hot slots (a row whose category the encoder dropped reads as slot 0); a
    boolean's are false and true; a number's are, per mode, a cell at -1, `bins` equal bins of (-1, 1) and
    a cell at 1 of its normalised value. A null flag adds a last cell.
    """

    kind: Literal["number", "category", "flag"]
    start: int  # the value, category group or flag column
    width: int  # slots of a category; modes of a number; 1 for a flag
    mode: int | None
    null: int | None
    bins: int

    @property
    def per_mode(self) -> int:
        """Cells of one mode of a number."""
        return self.bins + 2

    @property
    def size(self) -> int:
        """How many cells the column has."""
        values = {"number": self.width * self.per_mode, "category": self.width, "flag": 2}[self.kind]
        return values + int(self.null is not None)

    def read(self, x: np.ndarray) -> np.ndarray:
        """The cell of every row of the encoded matrix `x`."""
        if self.kind == "category":
            cells = x[:, self.start : self.start + self.width].argmax(axis=1)
        elif self.kind == "flag":
            cells = (x[:, self.start] > 0.5).astype(np.int64)
        else:
            v = x[:, self.start].astype(np.float64)
            inner = 1 + np.clip(np.floor((v + 1) / 2 * self.bins), 0, self.bins - 1).astype(np.int64)
            position = np.where(v <= -1 + _EDGE, 0, np.where(v >= 1 - _EDGE, self.bins + 1, inner))
            mode = x[:, self.mode : self.mode + self.width].argmax(axis=1) if self.mode is not None else 0
            cells = mode * self.per_mode + position
        if self.null is not None:
            cells = np.where(x[:, self.null] > 0.5, self.size - 1, cells)
        return cells

    def write(self, cells: np.ndarray, out: np.ndarray, rng: np.random.Generator) -> None:
        """Encoded values decoding to `cells` into `out` (zeros); a number is placed uniformly in its bin."""
        missing = cells == self.size - 1 if self.null is not None else np.zeros(len(cells), dtype=bool)
        rows = np.flatnonzero(~missing)
        if self.null is not None:
            out[missing, self.null] = 1.0
        if self.kind == "category":
            out[rows, self.start + cells[rows]] = 1.0
        elif self.kind == "flag":
            out[rows, self.start] = cells[rows]
        else:
            mode, position = np.divmod(cells[rows], self.per_mode)
            inner = -1 + (position - 1 + rng.random(len(rows))) * 2 / self.bins
            out[rows, self.start] = np.where(position == 0, -1.0, np.where(position == self.bins + 1, 1.0, inner))
            if self.mode is not None:
                out[rows, self.mode + mode] = 1.0


def _cells_of(layout: Sequence[Span], bins: int) -> list[_Cells]:
    """The cells of every learned column, in layout order."""
    columns: dict[str, dict[str, Span]] = {}
    for span in layout:
        columns.setdefault(span.column, {})[span.role] = span
    found = []
    for roles in columns.values():
        null = roles["null"].start if "null" in roles else None
        if "category" in roles:
            found.append(_Cells("category", roles["category"].start, roles["category"].width, None, None, bins))
        elif "flag" in roles:
            found.append(_Cells("flag", roles["flag"].start, 1, None, null, bins))
        else:
            mode = roles.get("mode")
            width = mode.width if mode is not None else 1
            found.append(_Cells("number", roles["value"].start, width, mode.start if mode else None, null, bins))
    return found


@dataclass(frozen=True)
class _Budget:
    """How the MST part of a DP fit is spent: rho, and the noise and exponential-mechanism epsilon it buys.

    A third of rho each goes to the 1-way measurements, the tree's selection and its 2-way measurements (a
    single column spends it all on its 1-way marginal). One row moves one cell of each marginal by one, so
    measuring k marginals at noise sigma costs k / (2 sigma^2), and each of the d - 1 selections at epsilon
    costs epsilon^2 / 8.
    """

    rho: float
    columns: int

    @property
    def parts(self) -> int:
        """Steps sharing rho."""
        return 3 if self.columns > 1 else 1

    @property
    def one_way_sigma(self) -> float:
        """Noise of every 1-way cell."""
        return math.sqrt(self.parts * self.columns / (2 * self.rho))

    @property
    def two_way_sigma(self) -> float:
        """Noise of every 2-way cell."""
        return math.sqrt(self.parts * (self.columns - 1) / (2 * self.rho))

    @property
    def selection_epsilon(self) -> float:
        """The epsilon of each exponential mechanism choosing an edge."""
        return math.sqrt(8 * self.rho / (self.parts * (self.columns - 1)))


@register
class MSTGenerator(Generator):
    """MST: noisy 1-way marginals, a tree of 2-way ones; the strongest model under differential privacy."""

    name: ClassVar[str] = "mst"
    config_class: ClassVar[type[Any]] = MSTConfig
    config: MSTConfig

    def _fit(self, x: torch.Tensor, generator: torch.Generator) -> History:
        """Measure, select, measure, estimate (see the module's docstring); spends and reports the DP budget."""
        cfg = self.config
        encoder = self._fitted_encoder()
        self.cells_ = _cells_of(encoder.layout_, cfg.bins)
        codes = np.stack([c.read(x.cpu().numpy()) for c in self.cells_], axis=1)
        rows, d = codes.shape
        seeded = _numpy_rng(generator)
        share = cfg.encoder_privacy()
        budget = None
        if cfg.dp_epsilon is not None:
            budget = _Budget(cdp_rho((1 - ENCODER_SHARE) * cfg.dp_epsilon, (1 - ENCODER_SHARE) * cfg.dp_delta), d)
        noise = _Noise(None if cfg.secure_noise else seeded)

        # 1. 1-way marginals, and the cells they support
        sigma1 = budget.one_way_sigma if budget else 0.0
        one_way = [np.bincount(codes[:, j], minlength=c.size) + noise.gaussian(sigma1, (c.size,))
                   for j, c in enumerate(self.cells_)]
        self.lookup_ = [_support(y, _SUPPORT * sigma1 if budget else 0.5) for y in one_way]
        codes = np.stack([lookup[codes[:, j]] for j, lookup in enumerate(self.lookup_)], axis=1)
        sizes = [int(lookup.max()) + 1 for lookup in self.lookup_]
        marginals = [_compress(y, lookup) for y, lookup in zip(one_way, self.lookup_, strict=True)]
        variances = [_compress(np.full(len(y), sigma1**2), lookup) for y, lookup in zip(one_way, self.lookup_,
                                                                                        strict=True)]

        # 2. the tree
        estimate = [_simplex(y, rows) / rows for y in marginals]
        errors = {(a, b): np.abs(_pair_counts(codes, a, b, sizes) - rows * np.outer(estimate[a], estimate[b])).sum()
                  for a in range(d) for b in range(a + 1, d)}
        edges = _spanning_tree(errors, d, noise, budget.selection_epsilon if budget else None)

        # 3. 2-way marginals on the tree, and the estimate consistent with every measurement
        sigma2 = budget.two_way_sigma if budget else 0.0
        tables = {e: _pair_counts(codes, *e, sizes) + noise.gaussian(sigma2, (sizes[e[0]], sizes[e[1]]))
                  for e in edges}
        if budget:
            marginals = _pooled(marginals, variances, tables, sigma2**2)
            marginals = [_simplex(y, rows) for y in marginals]
            tables = {(a, b): _rake(_simplex(t, rows), marginals[a], marginals[b]) for (a, b), t in tables.items()}
        self.order_, self.parent_ = _rooted(edges, d)
        self.root_ = marginals[0] / marginals[0].sum()
        self.conditionals_ = [_conditional(tables, self.parent_[j], j) if j else np.ones((1, 1)) for j in range(d)]
        if budget and share:
            self.privacy_spent_ = self._spent(budget, share, rows)
        logger.info("mst: %d columns, %d cells after compression, tree %s", d, sum(sizes),
                    [(self.cells_[a].start, self.cells_[b].start) for a, b in edges])
        records = ({"step": 1, "epoch": 1.0, "cells": sum(sizes)}, {"step": 2, "epoch": 2.0, "edges": len(edges)},
                   {"step": 3, "epoch": 3.0, "edges": len(edges)})
        return History(records, 3, 3, 3.0)

    def _spent(self, budget: _Budget, encoder: EncoderPrivacy, rows: int) -> dict[str, Any]:
        """The `privacy_spent_` record: the encoder's and MST's parts composed, and what was taken as public."""
        cfg = self.config
        delta = (1 - ENCODER_SHARE) * cfg.dp_delta
        mst = cdp_epsilon(budget.rho, delta)
        schema = self._fitted_encoder().schema_
        regenerated = [s.name for s in schema if not s.kind.is_learned]
        return {
            "epsilon": encoder.epsilon + mst,
            "delta": encoder.delta + delta,
            "mechanism": MECHANISM,
            "encoder_epsilon": encoder.epsilon,
            "mst_epsilon": mst,
            "rho": budget.rho,
            "noise_one_way": budget.one_way_sigma,
            "noise_two_way": budget.two_way_sigma,
            "secure_noise": cfg.secure_noise,
            "public_assumptions": [
                f"the row count ({rows})",
                "every column's name, kind, dtype and whether it may be missing",
                "formats of the regenerated id/PII/text columns"
                + (f" ({', '.join(regenerated)})" if regenerated else " (none here)"),
                *public_assumptions(schema),
            ],
        }

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        rng = _numpy_rng(generator)
        codes = np.zeros((n, len(self.cells_)), dtype=np.int64)
        for j in self.order_:
            if j == self.order_[0]:
                codes[:, j] = rng.choice(len(self.root_), n, p=self.root_)
                continue
            table = self.conditionals_[j]
            parent = codes[:, self.parent_[j]]
            for value in np.unique(parent):
                rows = np.flatnonzero(parent == value)
                codes[rows, j] = rng.choice(table.shape[1], len(rows), p=table[value])
        out = np.zeros((n, self._fitted_encoder().width_), dtype=np.float32)
        for j, (cells, lookup) in enumerate(zip(self.cells_, self.lookup_, strict=True)):
            cells.write(_expand(codes[:, j], lookup, rng), out, rng)
        return torch.from_numpy(out).to(self.device_)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """The tree's log-probability of the row's cells (merged cells count as one)."""
        matrix = x.cpu().numpy()
        codes = [lookup[c.read(matrix)] for c, lookup in zip(self.cells_, self.lookup_, strict=True)]
        root = self.order_[0]
        score = np.log(self.root_[codes[root]] + 1e-12)
        for j in self.order_[1:]:
            score += np.log(self.conditionals_[j][codes[self.parent_[j]], codes[j]] + 1e-12)
        return torch.from_numpy(score)

    def _state(self) -> dict[str, Any]:
        return {
            "order": torch.tensor(self.order_),
            "parent": torch.tensor(self.parent_),
            "root": torch.from_numpy(self.root_),
            "lookup": [torch.from_numpy(lookup) for lookup in self.lookup_],
            "conditionals": [torch.from_numpy(table) for table in self.conditionals_],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.cells_ = _cells_of(self._fitted_encoder().layout_, self.config.bins)
        self.order_ = state["order"].tolist()
        self.parent_ = state["parent"].tolist()
        self.root_ = state["root"].cpu().numpy()
        self.lookup_ = [t.cpu().numpy() for t in state["lookup"]]
        self.conditionals_ = [t.cpu().numpy() for t in state["conditionals"]]


def _numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A NumPy generator seeded from `generator`: the tree is drawn on the CPU, from the fit's or sample's seed."""
    return np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))


def _support(y: np.ndarray, threshold: float) -> np.ndarray:
    """Each cell's code once the cells counting under `threshold` share one last code (none if all pass).

    With none passing, every cell shares code 0.
    """
    kept = y >= threshold
    lookup = np.full(len(y), int(kept.sum()), dtype=np.int64)
    lookup[kept] = np.arange(int(kept.sum()))
    return lookup


def _compress(y: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """Cell values summed into their codes."""
    return np.bincount(lookup, weights=y, minlength=int(lookup.max()) + 1)


def _expand(codes: np.ndarray, lookup: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Codes back to cells; a shared code becomes one of its cells, uniformly."""
    members = [np.flatnonzero(lookup == code) for code in range(int(lookup.max()) + 1)]
    cells = np.zeros(len(codes), dtype=np.int64)
    for code, held in enumerate(members):
        rows = np.flatnonzero(codes == code)
        cells[rows] = held[rng.integers(0, len(held), len(rows))] if len(held) > 1 else held[0]
    return cells


def _pair_counts(codes: np.ndarray, a: int, b: int, sizes: Sequence[int]) -> np.ndarray:
    """The 2-way contingency table of columns a and b."""
    flat = np.bincount(codes[:, a] * sizes[b] + codes[:, b], minlength=sizes[a] * sizes[b])
    return flat.reshape(sizes[a], sizes[b]).astype(np.float64)


def _spanning_tree(
    errors: dict[tuple[int, int], float], d: int, noise: _Noise, epsilon: float | None
) -> list[tuple[int, int]]:
    """Kruskal's maximum spanning tree: each edge added is the heaviest joining two components.

    Under DP (`epsilon` set) each is drawn by the exponential mechanism instead.
    """
    component = list(range(d))
    edges: list[tuple[int, int]] = []
    for _ in range(d - 1):
        candidates = [e for e in errors if component[e[0]] != component[e[1]]]
        weights = np.array([errors[e] for e in candidates])
        pick = noise.exponential_mechanism(weights, epsilon) if epsilon is not None else int(weights.argmax())
        a, b = candidates[pick]
        joined, into = component[b], component[a]
        component = [into if c == joined else c for c in component]
        edges.append((a, b))
    return edges


def _pooled(
    marginals: list[np.ndarray], variances: list[np.ndarray], tables: dict[tuple[int, int], np.ndarray], edge: float
) -> list[np.ndarray]:
    """Each column's counts: its 1-way measurement and its edges' sums, weighted by inverse variance.

    A sum over k noisy cells of variance `edge` has variance k * `edge`.
    """
    total = [y / v for y, v in zip(marginals, variances, strict=True)]
    weight = [1 / v for v in variances]
    for (a, b), table in tables.items():
        for j, sums, other in ((a, table.sum(axis=1), table.shape[1]), (b, table.sum(axis=0), table.shape[0])):
            total[j] = total[j] + sums / (other * edge)
            weight[j] = weight[j] + 1 / (other * edge)
    return [t / w for t, w in zip(total, weight, strict=True)]


def _simplex(y: np.ndarray, total: float) -> np.ndarray:
    """The nearest (Euclidean) array of non-negative values summing to `total`."""
    flat = y.ravel()
    ordered = np.sort(flat)[::-1]
    excess = (np.cumsum(ordered) - total) / np.arange(1, flat.size + 1)
    shift = excess[np.flatnonzero(ordered > excess)[-1]]
    return np.maximum(y - shift, 0.0)


def _rake(table: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """`table` scaled by iterative proportional fitting to the row and column sums given.

    A small uniform floor lets every cell the marginals need take mass.
    """
    table = table + 1e-6 * rows.sum() / table.size
    for _ in range(_RAKING_ROUNDS):
        table *= (rows / np.maximum(table.sum(axis=1), 1e-300))[:, None]
        table *= columns / np.maximum(table.sum(axis=0), 1e-300)
    return table


def _rooted(edges: list[tuple[int, int]], d: int) -> tuple[list[int], list[int]]:
    """The tree from column 0: columns in an order where parents come first, and each one's parent (-1: root)."""
    neighbours: list[list[int]] = [[] for _ in range(d)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    order, parent = [0], [-1] * d
    for j in order:
        for k in neighbours[j]:
            if k != parent[j]:
                parent[k] = j
                order.append(k)
    return order, parent


def _conditional(tables: dict[tuple[int, int], np.ndarray], parent: int, child: int) -> np.ndarray:
    """P(child | parent) from the edge's table; a parent value with no mass gives the child's marginal."""
    table = tables[(parent, child)] if (parent, child) in tables else tables[(child, parent)].T
    table = np.maximum(table, 0.0)
    marginal = table.sum(axis=0) + 1e-12
    sums = table.sum(axis=1, keepdims=True)
    return np.where(sums > 0, table / np.maximum(sums, 1e-300), marginal / marginal.sum())
