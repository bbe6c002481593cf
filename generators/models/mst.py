"""MST (McKenna, Miklau & Sheldon 2021): a tree of noisy 2-way marginals, the marginal-based DP generator.

Every learned column becomes a few discrete *cells* of the encoded matrix (a category's slots, a boolean's
two values, a number's mode times `bins` equal bins of its normalised value plus a cell at each end that
holds the exact bound, so clipped values and spikes at a bound such as capital-gain's 0 come back exact),
and a missing value a cell of its own. With `dp_epsilon` set, the budget left after the encoder's share
is spent in zero-concentrated DP (rho), a third on each step, as MST does:

1. every column's marginal measured with Gaussian noise; the cells whose noisy count is under three noise
   deviations merge into one (MST's domain compression: post-processing, so free);
2. a maximum spanning tree of column pairs chosen by exponential mechanisms, each pair scored by the L1
   distance between its true 2-way marginal and the independent one the noisy marginals predict;
3. the tree's 2-way marginals measured with Gaussian noise.

Target-aware (`target_aware`, on by default): when the table has a label column (the configured target, else
the one the utility check infers), every marginal of steps 1 and 2 is taken *beside the label*: step 1
measures each other column's 2-way marginal with the label, and step 2 scores a pair by how far it is from
independence given the label. The model is then a tree-augmented naive Bayes (each column depends on the
label and on its tree parent), so P(label | row) draws on every column's link with it, not only on the
label's tree neighbours: a model trained on the synthetic rows predicts the label nearly as one trained on
real rows does, which a plain tree (capped near 0.81 of real utility on Adult, even without DP) cannot. It
costs nothing extra: the same number of measurements, of tables only the label's size times larger. The
plain MST is the same algorithm with a label of one cell, which is how it runs on a table without one.

The estimate is exact for these trees, so it needs no library (private-pgm's `mbi` would add JAX for a mirror
descent that, on a tree, converges to the same kind of answer): each column's marginal pools its step-1
measurement with its edges' sums (inverse-variance weights), projected onto non-negative counts that sum
to the (public) row count; each table is projected the same way and raked (iterative proportional fitting)
to the marginals it must share, so the tables agree where they meet; an edge's table beside the label is
the maximum-entropy 3-way table holding its three measured 2-way marginals. Rows are drawn label first,
then root to leaves, each column given its parent and the label; a merged cell decodes to one of its cells
uniformly, and a number uniformly within its bin. Without DP the 3-way tables are counted exactly.

The noise (Gaussian measurements, Gumbel draws of the exponential mechanism) comes from the operating
system's CSPRNG unless `secure_noise` is off (for reproducible tests): a seed must not let anyone replay the
noise. So two DP fits with one seed differ; sampling a fitted model stays seeded. Without `dp_epsilon` the
same steps run noiselessly: the exact maximum spanning tree of the exact marginals.
"""

from __future__ import annotations

import dataclasses
import itertools
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
from generators.tabular.schema import infer_target

logger = logging.getLogger(__name__)

MECHANISM = ("MST (zCDP: Gaussian marginals, beside the label when there is one, and an exponential-mechanism "
             "tree of 2-way marginals) + Laplace counts for the encoder")
_SUPPORT = 3.0  # a noisy 1-way cell is kept when it counts at least this many noise deviations (MST's choice)
_EDGE = 1e-6  # a normalised value this close to a bound is that bound (the encoded matrix is float32)
_RAKING_ROUNDS = 100
_USEFUL = 1.0  # a table beside the label must average at least one noise deviation of rows a cell: signal >= noise


@dataclass(frozen=True)
class MSTConfig:
    """Hyper-parameters; the defaults need no tuning.

    `dp_epsilon` (None: no DP) and `dp_delta` as in `generators.nn.dp.DPConfig`, whose encoder share this
    model spends too. `bins`: equal bins of a number's normalised value per mode (plus one cell at each
    bound). `secure_noise`: DP noise from the OS's CSPRNG; off, it comes from the seed, only for tests and
    benchmarks that must repeat a DP fit. `target_aware`: model every column beside the table's label column
    when it has one (see the module's docstring); off, the plain MST tree.
    """

    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    bins: int = 32
    secure_noise: bool = True
    target_aware: bool = True

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

    column: str
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
    for name, roles in columns.items():
        null = roles["null"].start if "null" in roles else None
        if "category" in roles:
            found.append(_Cells(name, "category", roles["category"].start, roles["category"].width, None, None, bins))
        elif "flag" in roles:
            found.append(_Cells(name, "flag", roles["flag"].start, 1, None, null, bins))
        else:
            mode = roles.get("mode")
            width = mode.width if mode is not None else 1
            found.append(_Cells(name, "number", roles["value"].start, width, mode.start if mode else None, null, bins))
    return found


@dataclass(frozen=True)
class _Budget:
    """How the MST part of a DP fit is spent: rho, and the noise and exponential-mechanism epsilon it buys.

    A third of rho each goes to the `marginals` (every column's, or every other column's beside the label),
    the tree's selection and its 2-way measurements (`edges` of each); with no edge, the marginals spend it
    all. One row moves one cell of each table by one, so measuring k tables at noise sigma costs
    k / (2 sigma^2), and each selection at epsilon costs epsilon^2 / 8.
    """

    rho: float
    marginals: int
    edges: int

    @property
    def parts(self) -> int:
        """Steps sharing rho."""
        return 3 if self.edges else 1

    @property
    def marginal_sigma(self) -> float:
        """Noise of every cell of a step-1 marginal."""
        return math.sqrt(self.parts * self.marginals / (2 * self.rho))

    @property
    def edge_sigma(self) -> float:
        """Noise of every cell of a tree edge's 2-way marginal."""
        return math.sqrt(self.parts * max(self.edges, 1) / (2 * self.rho))

    @property
    def selection_epsilon(self) -> float:
        """The epsilon of each exponential mechanism choosing an edge."""
        return math.sqrt(8 * self.rho / (self.parts * max(self.edges, 1)))


@dataclass(frozen=True)
class _Measured:
    """Step 1's noisy marginals beside the label, with the variance of each cell, and the cells they support.

    `tables[j]` is column j's counts by (its cell, the label's cell); without a label, the label is a single
    cell and these are plain 1-way marginals.
    """

    tables: dict[int, np.ndarray]
    variances: dict[int, np.ndarray]
    lookups: dict[int, np.ndarray]
    label_lookup: np.ndarray
    label_counts: np.ndarray  # the label's counts pooled from every table, before any projection

    @classmethod
    def measure(cls, codes: np.ndarray, label: np.ndarray, cells: Sequence[_Cells], label_size: int,
                features: Sequence[int], sigma: float, noise: _Noise) -> _Measured:
        """Measure every feature's table beside the label at noise `sigma`, and compress the unsupported cells."""
        raw = {j: _counts((codes[:, j], label), (cells[j].size, label_size))
               + noise.gaussian(sigma, (cells[j].size, label_size)) for j in features}
        lookups = {j: _support(t.sum(axis=1), _support_threshold(sigma, label_size)) for j, t in raw.items()}
        weights = {j: 1 / cells[j].size for j in features}  # a column sum adds up that many noisy cells
        label_counts = sum(w * raw[j].sum(axis=0) for j, w in weights.items()) / sum(weights.values())
        label_sigma = sigma / math.sqrt(sum(weights.values()))
        label_lookup = (_support(label_counts, _support_threshold(label_sigma, 1)) if label_size > 1
                        else np.zeros(1, dtype=np.int64))
        return cls(
            tables={j: _compress_table(t, lookups[j], label_lookup) for j, t in raw.items()},
            variances={j: _compress_table(np.full(t.shape, sigma**2), lookups[j], label_lookup)
                       for j, t in raw.items()},
            lookups=lookups,
            label_lookup=label_lookup,
            label_counts=_compress(label_counts, label_lookup),
        )


@register
class MSTGenerator(Generator):
    """MST: noisy marginals beside the label, a tree of 2-way ones; the strongest model under differential privacy."""

    name: ClassVar[str] = "mst"
    config_class: ClassVar[type[Any]] = MSTConfig
    config: MSTConfig

    def _fit(self, x: torch.Tensor, generator: torch.Generator) -> History:
        """Measure, select, measure, estimate (see the module's docstring); spends and reports the DP budget."""
        cfg = self.config
        self.cells_ = _cells_of(self._fitted_encoder().layout_, cfg.bins)
        codes = np.stack([c.read(x.cpu().numpy()) for c in self.cells_], axis=1)
        rows, d = codes.shape
        seeded = _numpy_rng(generator)
        share = cfg.encoder_privacy()
        rho = None
        if cfg.dp_epsilon is not None:
            rho = cdp_rho((1 - ENCODER_SHARE) * cfg.dp_epsilon, (1 - ENCODER_SHARE) * cfg.dp_delta)
        label = self._label(rows, rho)
        features = [j for j in range(d) if j != label]
        budget = None if rho is None else _Budget(rho, len(features), len(features) - 1)
        noise = _Noise(None if cfg.secure_noise else seeded)

        # 1. each column's marginal beside the label, and the cells they support
        label_codes = codes[:, label] if label is not None else np.zeros(rows, dtype=np.int64)
        label_size = self.cells_[label].size if label is not None else 1
        step1 = _Measured.measure(codes, label_codes, self.cells_, label_size, features,
                                  budget.marginal_sigma if budget else 0.0, noise)
        self.lookup_ = [step1.lookups[j] if j != label else step1.label_lookup for j in range(d)]
        codes = np.stack([lookup[codes[:, j]] for j, lookup in enumerate(self.lookup_)], axis=1)
        label_codes = step1.label_lookup[label_codes]
        sizes = [int(lookup.max()) + 1 for lookup in self.lookup_]
        label_size = int(step1.label_lookup.max()) + 1
        label_counts = _simplex(step1.label_counts, rows)
        projected = {j: _simplex(t, rows) for j, t in step1.tables.items()}
        beside = {j: _rake(t, t.sum(axis=1), label_counts) for j, t in projected.items()}

        # 2. the tree: pairs scored by their distance from independence given the label
        errors = {}
        for a, b in itertools.combinations(features, 2):
            predicted = beside[a][:, None, :] * beside[b][None, :, :] / np.maximum(label_counts, 1e-12)
            errors[(a, b)] = np.abs(_counts((codes[:, a], codes[:, b], label_codes), (sizes[a], sizes[b], label_size))
                                    - predicted).sum()
        edges = _spanning_tree(errors, features, noise, budget.selection_epsilon if budget else None)

        # 3. the tree's 2-way marginals, and the estimate consistent with every measurement
        if budget:
            sigma2 = budget.edge_sigma
            tables = {(a, b): _counts((codes[:, a], codes[:, b]), (sizes[a], sizes[b]))
                      + noise.gaussian(sigma2, (sizes[a], sizes[b])) for a, b in edges}
            pooled = _pooled({j: t.sum(axis=1) for j, t in step1.tables.items()},
                             {j: v.sum(axis=1) for j, v in step1.variances.items()}, tables, sigma2**2)
            marginals = {j: _simplex(y, rows) for j, y in pooled.items()}
            beside = {j: _rake(t, marginals[j], label_counts) for j, t in projected.items()}
            cliques = {(a, b): _max_entropy(_rake(_simplex(t, rows), marginals[a], marginals[b]), beside[a], beside[b])
                       for (a, b), t in tables.items()}
        else:
            cliques = {(a, b): _counts((codes[:, a], codes[:, b], label_codes), (sizes[a], sizes[b], label_size))
                       for a, b in edges}
        self.order_, self.parents_, self.conditionals_ = _network(label, features, label_counts, beside, cliques)
        if budget and share:
            self.privacy_spent_ = self._spent(budget, share, rows, label)
        logger.info("mst: %d columns, %d cells after compression, label %s, tree %s", d, sum(sizes),
                    self.cells_[label].column if label is not None else None,
                    [(self.cells_[a].column, self.cells_[b].column) for a, b in edges])
        records = ({"step": 1, "epoch": 1.0, "cells": sum(sizes)}, {"step": 2, "epoch": 2.0, "edges": len(edges)},
                   {"step": 3, "epoch": 3.0, "edges": len(edges)})
        return History(records, 3, 3, 3.0)

    def _label(self, rows: int, rho: float | None) -> int | None:
        """The index (among the cells) of the label column the model is built around, or None for a plain tree.

        The label is the schema's target, else the column the utility check would infer; a table of the label
        alone has nothing to put beside it. Under DP (`rho` set) it is used only while its tables hold more signal
        than noise (PrivBayes' theta-usefulness, at theta = `_USEFUL`): a column's table beside the label, its
        cells times the label's, must hold on average at least one noise deviation of rows per cell. Below that
        those tables are mostly noise and the plain tree keeps more: on ecoli's and ionosphere's 270-280
        training rows (0.01-0.07 deviations a cell at epsilon 1 and 10) the label cost utility and quality, on
        Adult's 26,049 at epsilon 1 (3.2) it lifted the utility ratio from 0.80 to 0.94. The test reads only
        public quantities (the row count, the domain's cell counts, the noise the budget buys): it costs no budget.
        """
        name = infer_target(self._fitted_encoder().schema_) if self.config.target_aware else None
        found = [j for j, c in enumerate(self.cells_) if c.column == name]
        if not found or len(self.cells_) < 2:
            return None
        label = found[0]
        if rho is not None:
            features = len(self.cells_) - 1
            sigma = _Budget(rho, features, features - 1).marginal_sigma
            cells = np.mean([c.size for j, c in enumerate(self.cells_) if j != label]) * self.cells_[label].size
            if rows / cells < _USEFUL * sigma:
                logger.info("mst: the label's tables would hold %.1f noise deviations a cell (< %g): plain tree",
                            rows / cells / sigma, _USEFUL)
                return None
        return label

    def _spent(self, budget: _Budget, encoder: EncoderPrivacy, rows: int, label: int | None) -> dict[str, Any]:
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
            "label": self.cells_[label].column if label is not None else None,
            "noise_marginals": budget.marginal_sigma,
            "noise_tree": budget.edge_sigma if budget.edges else None,
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
        sizes = [int(lookup.max()) + 1 for lookup in self.lookup_]
        codes = np.zeros((n, len(self.cells_)), dtype=np.int64)
        for j in self.order_:
            table = self.conditionals_[j]
            state = _parent_state(codes, self.parents_[j], sizes)
            for value in np.unique(state):
                rows = np.flatnonzero(state == value)
                codes[rows, j] = rng.choice(table.shape[1], len(rows), p=table[value])
        out = np.zeros((n, self._fitted_encoder().width_), dtype=np.float32)
        for j, (cells, lookup) in enumerate(zip(self.cells_, self.lookup_, strict=True)):
            cells.write(_expand(codes[:, j], lookup, rng), out, rng)
        return torch.from_numpy(out).to(self.device_)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """The network's log-probability of the row's cells (merged cells count as one)."""
        matrix = x.cpu().numpy()
        codes = np.stack([lookup[c.read(matrix)] for c, lookup in zip(self.cells_, self.lookup_, strict=True)], axis=1)
        sizes = [int(lookup.max()) + 1 for lookup in self.lookup_]
        score = np.zeros(len(codes))
        for j in self.order_:
            score += np.log(self.conditionals_[j][_parent_state(codes, self.parents_[j], sizes), codes[:, j]] + 1e-12)
        return torch.from_numpy(score)

    def _state(self) -> dict[str, Any]:
        return {
            "order": torch.tensor(self.order_),
            "parents": [torch.tensor(parents, dtype=torch.int64) for parents in self.parents_],
            "lookup": [torch.from_numpy(lookup) for lookup in self.lookup_],
            "conditionals": [torch.from_numpy(table) for table in self.conditionals_],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.cells_ = _cells_of(self._fitted_encoder().layout_, self.config.bins)
        self.order_ = state["order"].tolist()
        self.parents_ = [t.tolist() for t in state["parents"]]
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


def _counts(columns: Sequence[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    """The contingency table of these columns' codes (each in range of its size)."""
    flat = np.bincount(np.ravel_multi_index(tuple(columns), tuple(sizes)), minlength=math.prod(sizes))
    return flat.reshape(tuple(sizes)).astype(np.float64)


def _support_threshold(sigma: float, cells: int) -> float:
    """The count a cell needs to be kept: three deviations of the noise of a sum of `cells` noisy cells.

    Without noise, any count of at least one row.
    """
    return _SUPPORT * sigma * math.sqrt(cells) if sigma > 0 else 0.5


def _compress_table(table: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """A 2-way table's cells summed into their codes along both axes."""
    shape = (int(rows.max()) + 1, int(columns.max()) + 1)
    index = (rows[:, None] * shape[1] + columns[None, :]).ravel()
    return np.bincount(index, weights=table.ravel(), minlength=shape[0] * shape[1]).reshape(shape)


def _spanning_tree(
    errors: dict[tuple[int, int], float], nodes: Sequence[int], noise: _Noise, epsilon: float | None
) -> list[tuple[int, int]]:
    """Kruskal's maximum spanning tree of `nodes`: each edge added is the heaviest joining two components.

    Under DP (`epsilon` set) each is drawn by the exponential mechanism instead.
    """
    component = {node: node for node in nodes}
    edges: list[tuple[int, int]] = []
    for _ in range(len(nodes) - 1):
        candidates = [e for e in errors if component[e[0]] != component[e[1]]]
        weights = np.array([errors[e] for e in candidates])
        pick = noise.exponential_mechanism(weights, epsilon) if epsilon is not None else int(weights.argmax())
        a, b = candidates[pick]
        joined, into = component[b], component[a]
        component = {node: into if c == joined else c for node, c in component.items()}
        edges.append((a, b))
    return edges


def _pooled(
    marginals: dict[int, np.ndarray], variances: dict[int, np.ndarray], tables: dict[tuple[int, int], np.ndarray],
    edge: float,
) -> dict[int, np.ndarray]:
    """Each column's counts: its step-1 measurement and its edges' sums, weighted by inverse variance.

    A sum over k noisy cells of variance `edge` has variance k * `edge`.
    """
    total = {j: y / variances[j] for j, y in marginals.items()}
    weight = {j: 1 / v for j, v in variances.items()}
    for (a, b), table in tables.items():
        for j, sums, other in ((a, table.sum(axis=1), table.shape[1]), (b, table.sum(axis=0), table.shape[0])):
            total[j] = total[j] + sums / (other * edge)
            weight[j] = weight[j] + 1 / (other * edge)
    return {j: total[j] / weight[j] for j in total}


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


def _max_entropy(pair: np.ndarray, beside_a: np.ndarray, beside_b: np.ndarray) -> np.ndarray:
    """The maximum-entropy table of (a, b, label) holding the 2-way marginals (a, b), (a, label) and (b, label).

    Iterative proportional fitting from a uniform table; the three marginals agree where they meet (a's and
    b's counts, the label's), so it converges to them.
    """
    table = np.full((*pair.shape, beside_a.shape[1]), pair.sum() / (pair.size * beside_a.shape[1]))
    for _ in range(_RAKING_ROUNDS):
        table *= (pair / np.maximum(table.sum(axis=2), 1e-300))[:, :, None]
        table *= (beside_a / np.maximum(table.sum(axis=1), 1e-300))[:, None, :]
        table *= (beside_b / np.maximum(table.sum(axis=0), 1e-300))[None, :, :]
    return table


def _network(
    label: int | None, features: Sequence[int], label_counts: np.ndarray, beside: dict[int, np.ndarray],
    cliques: dict[tuple[int, int], np.ndarray],
) -> tuple[list[int], list[list[int]], list[np.ndarray]]:
    """The order rows are drawn in, each column's parents and its conditional table, by the parents' joint cell.

    The label comes first, then the tree from its first feature; a column's parents are its tree parent and
    the label (whichever exist). A parents' cell with no mass draws the column given the label alone.
    """
    neighbours: dict[int, list[int]] = {j: [] for j in features}
    for a, b in cliques:
        neighbours[a].append(b)
        neighbours[b].append(a)
    d = len(features) + int(label is not None)
    order: list[int] = []
    parents: list[list[int]] = [[] for _ in range(d)]
    conditionals = [np.ones((1, 1)) for _ in range(d)]
    with_label = [label] if label is not None else []
    if label is not None:
        order.append(label)
        conditionals[label] = (label_counts / label_counts.sum())[None, :]
    given_label = {j: _normalised_rows(t.T) for j, t in beside.items()}  # by (label cell, column cell)
    root = features[0]
    order.append(root)
    parents[root] = with_label
    conditionals[root] = given_label[root]
    for j in itertools.islice(order, len(with_label), None):  # the order grows as the tree is walked
        for k in neighbours[j]:
            if k in order:
                continue
            # by (parent cell, child cell, label cell)
            table = cliques[(j, k)] if (j, k) in cliques else cliques[(k, j)].transpose(1, 0, 2)
            by_state = table.transpose(0, 2, 1).reshape(-1, table.shape[1])  # rows: parent cell * label cells + label
            fallback = np.tile(given_label[k], (table.shape[0], 1))
            order.append(k)
            parents[k] = [j, *with_label]
            conditionals[k] = _normalised_rows(by_state, fallback)
    return order, parents, conditionals


def _normalised_rows(table: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Each row of `table` as a distribution; a row with no mass is `fallback`'s row (default: the table's margin)."""
    table = np.maximum(table, 0.0)
    sums = table.sum(axis=1, keepdims=True)
    if fallback is None:
        margin = table.sum(axis=0) + 1e-12
        fallback = np.broadcast_to(margin / margin.sum(), table.shape)
    return np.where(sums > 0, table / np.maximum(sums, 1e-300), fallback)


def _parent_state(codes: np.ndarray, parents: Sequence[int], sizes: Sequence[int]) -> np.ndarray:
    """Each row's joint cell of its parents (row-major, as the conditional tables are laid out); 0 with none."""
    if not parents:
        return np.zeros(len(codes), dtype=np.int64)
    return np.ravel_multi_index(tuple(codes[:, p] for p in parents), tuple(sizes[p] for p in parents))
