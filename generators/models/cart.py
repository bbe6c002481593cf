"""Sequential tree synthesis in the style of synthpop's CART: each column drawn from the leaf its row falls into.

The columns are synthesised one after the other, in the encoder's order. The first is drawn from its training
values; each next one from a regression tree fitted on the columns before it: a synthetic row is dropped down
that tree and takes the column's value from a training row (a *donor*) of the leaf it lands in. So every
conditional distribution is the training data's own, within leaves of at least `min_leaf` donors; a leaf of one
donor would copy a real value, which makes `min_leaf` a privacy knob as much as a fidelity one.

Everything happens on the encoded matrix, which keeps the encoder's work (missing values, rare categories, the
spikes of numbers, datetimes and their zones) shared with every other model. The trees see each column through a
small *view*: a category as its one-hot block, a boolean as its flag, a number as one ordinal scalar (its mode's
rank, modes being sorted by mean, plus its place within the mode) and its null flag. As targets, the same views
make one criterion serve every kind: squared error on a one-hot block is the Gini impurity. A donor hands over
the column's whole encoded block. A number's within-mode value that fewer than `min_leaf` training rows hold is
then smoothed by a Gaussian kernel of the leaf's bandwidth (synthpop's `smoothing = "density"`), so rare values
are not copied verbatim while common ones (a spike such as 40 hours a week) are kept exactly.

Privacy: synthpop's default leaf of 5 donors leaks on Adult (the gate refuses it: membership-inference TPR
0.04-0.05 against 0.005, DCR share 0.55, NNDR 0.12); leaves of 20 still fail the membership attacks; 50
publishes (C2ST AUC 0.496, quality 0.991). A leaf's size bounds each training row's share of what its leaf hands
out, so the leaf is at least a count (`min_leaf`); but the rows still give away a small, fixed advantage (on
Adult-like tables a membership TPR of 0.007-0.008 at 0.5 % false positives with leaves of 50), which the gate's
checks resolve once they hold enough rows: fitted on 50,000 rows and judged on 50,000 a side, leaves of 50 are
refused and leaves of 200 publish (BENCHMARKS.md, issue 14). So the leaf is also a share of the training rows
(`min_leaf_share`, 0.4 %: 200 of 50,000, 105 of Adult's 26,049), the larger of the two: the more rows the checks
hold, the less any one row may show through. Below 12,500 rows the count rules, as before.

The trees are scikit-learn's (CPU only: trees have no CUDA path), kept as plain arrays (children, features,
thresholds, and each leaf's donors) so the model file loads with `torch.load(weights_only=True)`. The donors are
training values: the model file holds every column's values, grouped by leaf.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.tree import DecisionTreeRegressor

from generators.base import Generator
from generators.nn.training import History
from generators.registry import register
from generators.tabular.encoder import Span
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)

_FIELDS = ("left", "right", "feature", "threshold", "leaf", "starts", "keys", "values", "bandwidth")


@dataclass(frozen=True)
class CartConfig:
    """Hyper-parameters.

    `min_leaf`: the fewest training rows (donors) a leaf may hold; larger leaves blur the conditionals and copy
    less (synthpop's `minbucket` is 5, which leaks: see the module's note). `min_leaf_share`: the same as a share
    of the training rows; a leaf holds at least the larger of the two (`leaf_size`). `smoothing`: whether a
    number's donated value, when fewer than that many training rows hold it, is moved by a Gaussian kernel of its
    leaf's bandwidth, so no rare training value is reproduced exactly.
    """

    min_leaf: int = 50
    min_leaf_share: float = 0.004
    smoothing: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.min_leaf, bool) or not isinstance(self.min_leaf, int) or self.min_leaf < 1:
            raise BadInputError("cart: min_leaf must be an integer ≥ 1")
        if isinstance(self.min_leaf_share, bool) or not 0 <= self.min_leaf_share < 1:
            raise BadInputError("cart: min_leaf_share must be a number in [0, 1)")

    def leaf_size(self, rows: int) -> int:
        """The fewest donors a leaf of a tree fitted on `rows` training rows holds."""
        return max(self.min_leaf, math.ceil(self.min_leaf_share * rows))


@dataclass(frozen=True)
class _Column:
    """One learned column's place in the encoded matrix.

    `discrete`: its one-hot groups and flags as (start, width, role); `value`: its within-mode value's
    position, -1 without one.
    """

    discrete: tuple[tuple[int, int, str], ...]
    value: int

    @property
    def levels(self) -> int:
        """How many discrete patterns (keys) the column can take."""
        return int(np.prod([max(width, 2) for _, width, _ in self.discrete]))

    @property
    def view_width(self) -> int:
        """Width of the column's view: a one-hot block stays one, a number with modes becomes one scalar."""
        return sum(width if role == "category" else 1 for _, width, role in self.discrete if role != "mode") + (
            self.value >= 0
        )

    def keys(self, x: np.ndarray) -> np.ndarray:
        """Each row's discrete pattern as one mixed-radix number (a group's hot slot, a flag's bit)."""
        key = np.zeros(len(x), dtype=np.int64)
        for start, width, _ in self.discrete:
            code = x[:, start : start + width].argmax(axis=1) if width > 1 else (x[:, start] > 0.5).astype(np.int64)
            key = key * max(width, 2) + code
        return key

    def write(self, out: np.ndarray, key: np.ndarray, value: np.ndarray) -> None:
        """Write the encoded block of patterns `key` and within-mode `value` into `out` (zeros there)."""
        rows = np.arange(len(out))
        for start, width, _ in reversed(self.discrete):
            code = key % max(width, 2)
            key = key // max(width, 2)
            if width > 1:
                out[rows, start + code] = 1.0
            else:
                out[:, start] = code
        if self.value >= 0:
            out[:, self.value] = value

    def view(self, x: np.ndarray) -> np.ndarray:
        """What the trees see of the column: one-hot blocks, flags, and a number as its mode's rank plus its place."""
        parts = []
        rank = np.zeros(len(x), dtype=np.float32)
        for start, width, role in self.discrete:
            if role == "mode":
                rank = x[:, start : start + width].argmax(axis=1).astype(np.float32)
            elif role == "category":
                parts.append(x[:, start : start + width])
            else:
                parts.append(x[:, start : start + 1])
        if self.value >= 0:
            parts.insert(0, (rank + (np.clip(x[:, self.value], -1, 1) + 1) / 2)[:, None])
        return np.concatenate(parts, axis=1).astype(np.float32)


@dataclass(frozen=True)
class _Tree:
    """One column's tree as arrays, and its leaves' donors.

    Nodes: `left`, `right` (-1 at a leaf), `feature`, `threshold`; `leaf` maps a node to its leaf's index (-1
    inside). Leaf k's donors are `keys[starts[k]:starts[k + 1]]` (their discrete patterns) and the same slices of
    `values` (within-mode values) and `bandwidth` (the width of the Gaussian kernel that smooths each donor's
    value: its leaf's, or 0 for a value too common to identify anyone).
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    leaf: np.ndarray
    starts: np.ndarray
    keys: np.ndarray
    values: np.ndarray
    bandwidth: np.ndarray

    def apply(self, features: np.ndarray) -> np.ndarray:
        """The leaf each row falls into (scikit-learn's rule: left when feature ≤ threshold)."""
        node = np.zeros(len(features), dtype=np.int64)
        inside = np.flatnonzero(self.left[node] >= 0)
        while inside.size:
            at = node[inside]
            goes_left = features[inside, self.feature[at]] <= self.threshold[at]
            node[inside] = np.where(goes_left, self.left[at], self.right[at])
            inside = inside[self.left[node[inside]] >= 0]
        return self.leaf[node]

    def donate(self, leaves: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """For each row, a donor drawn uniformly from its leaf: its key, and its value moved by its kernel."""
        sizes = self.starts[leaves + 1] - self.starts[leaves]
        donor = self.starts[leaves] + np.floor(rng.random(len(leaves)) * sizes).astype(np.int64)
        noise = rng.standard_normal(len(leaves)).astype(np.float32)
        return self.keys[donor], self.values[donor] + noise * self.bandwidth[donor]

    def log_frequency(self, leaves: np.ndarray, keys: np.ndarray, levels: int) -> np.ndarray:
        """The log of each row's pattern's share among its leaf's donors, with one pseudo-count per pattern."""
        donor_leaf = np.repeat(np.arange(len(self.starts) - 1), np.diff(self.starts))
        known = np.sort(donor_leaf * levels + self.keys)
        wanted = leaves * levels + keys
        count = np.searchsorted(known, wanted, side="right") - np.searchsorted(known, wanted)
        sizes = self.starts[leaves + 1] - self.starts[leaves]
        return np.log((count + 1.0) / (sizes + levels))

    def state(self, j: int) -> dict[str, torch.Tensor]:
        return {f"tree{j}.{name}": torch.from_numpy(np.ascontiguousarray(getattr(self, name))) for name in _FIELDS}

    @classmethod
    def from_state(cls, state: dict[str, Any], j: int) -> _Tree:
        return cls(**{name: state[f"tree{j}.{name}"].cpu().numpy() for name in _FIELDS})


@register
class CartGenerator(Generator):
    """Sequential CART synthesis (synthpop style): each column drawn from donors of a tree's leaf."""

    name: ClassVar[str] = "cart"
    config_class: ClassVar[type[Any]] = CartConfig
    holds_training_values: ClassVar[bool] = True  # each leaf's donors: a release carries no cart model
    config: CartConfig

    def _fit(self, x: torch.Tensor, generator: torch.Generator) -> History:
        """One tree per column after the first, on the views of the columns before it; one record per column."""
        rng = _numpy_rng(generator)
        matrix = x.detach().cpu().numpy()
        leaf = self.config.leaf_size(len(matrix))
        columns = self._columns()
        views = np.concatenate([c.view(matrix) for c in columns], axis=1)
        self.trees_: list[_Tree] = []
        records = []
        offset = 0
        for j, column in enumerate(columns):
            features = views[:, :offset]
            offset += column.view_width
            tree = self._grow(features, views[:, offset - column.view_width : offset], column, matrix, leaf,
                              int(rng.integers(2**31 - 1)))
            self.trees_.append(tree)
            leaves = len(tree.starts) - 1
            records.append({"step": j + 1, "epoch": (j + 1) / len(columns), "leaves": leaves,
                            "features": features.shape[1]})
            logger.debug("cart: column %d of %d, %d leaves", j + 1, len(columns), leaves)
        logger.info("cart: %d trees, %d leaves of at least %d donors", len(self.trees_),
                    sum(r["leaves"] for r in records), leaf)
        return History(tuple(records), len(columns), len(columns), 1.0)

    def _grow(self, features: np.ndarray, target: np.ndarray, column: _Column, matrix: np.ndarray, fewest: int,
              seed: int) -> _Tree:
        """The column's tree, of leaves of at least `fewest` donors; the first column's (no features) is one leaf."""
        if features.shape[1]:
            model = DecisionTreeRegressor(min_samples_leaf=fewest, random_state=seed)
            model.fit(features, target)
            nodes = model.tree_
            left, right = nodes.children_left.astype(np.int64), nodes.children_right.astype(np.int64)
            feature, threshold = nodes.feature.astype(np.int64), nodes.threshold.astype(np.float64)
        else:
            left = right = feature = np.array([-1], dtype=np.int64)
            threshold = np.zeros(1)
        leaf = np.where(left < 0, np.cumsum(left < 0) - 1, -1)
        partial = _Tree(left, right, feature, threshold, leaf, np.zeros(1, np.int64), np.zeros(0, np.int64),
                        np.zeros(0, np.float32), np.zeros(0, np.float32))
        of_row = partial.apply(features)
        order = np.argsort(of_row, kind="stable")
        count = np.bincount(of_row, minlength=int((left < 0).sum()))
        keys = column.keys(matrix)[order]
        values = matrix[order, column.value] if column.value >= 0 else np.zeros(len(order), np.float32)
        starts = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
        bandwidth = np.zeros(len(order), np.float32)
        if self.config.smoothing and column.value >= 0:
            rare = _rare(keys, values, fewest)
            bandwidth[rare] = np.repeat(_bandwidths(values, starts), count)[rare]
        return _Tree(left, right, feature, threshold, leaf, starts, keys, values.astype(np.float32), bandwidth)

    def _columns(self) -> list[_Column]:
        """The learned columns in the encoder's order, from its layout."""
        spans: dict[str, list[Span]] = {}
        for span in self._fitted_encoder().layout_:
            spans.setdefault(span.column, []).append(span)
        return [
            _Column(tuple((s.start, s.width, s.role) for s in group if s.role != "value"),
                    next((s.start for s in group if s.role == "value"), -1))
            for group in spans.values()
        ]

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        rng = _numpy_rng(generator)
        out = np.zeros((n, self._fitted_encoder().width_), dtype=np.float32)
        views: list[np.ndarray] = [np.zeros((n, 0), dtype=np.float32)]
        for column, tree in zip(self._columns(), self.trees_, strict=True):
            leaves = tree.apply(np.concatenate(views, axis=1))
            column.write(out, *tree.donate(leaves, rng))
            views.append(column.view(out))
        return torch.from_numpy(out).to(self.device_)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over columns of the log share, among the donors of the row's leaf, of the row's discrete pattern."""
        matrix = x.detach().cpu().numpy()
        columns = self._columns()
        views = np.concatenate([c.view(matrix) for c in columns], axis=1)
        total = np.zeros(len(matrix))
        offset = 0
        for column, tree in zip(columns, self.trees_, strict=True):
            total += tree.log_frequency(tree.apply(views[:, :offset]), column.keys(matrix), column.levels)
            offset += column.view_width
        return torch.from_numpy(total).to(self.device_)

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"trees": len(self.trees_)}
        for j, tree in enumerate(self.trees_):
            state |= tree.state(j)
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        self.trees_ = [_Tree.from_state(state, j) for j in range(int(state["trees"]))]


def _numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A NumPy generator seeded from the torch one, so the generator's seed fixes every draw of the trees."""
    return np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))


def _rare(keys: np.ndarray, values: np.ndarray, fewest: int) -> np.ndarray:
    """Which donors hold a (pattern, value) that fewer than `fewest` training rows share: only those are smoothed.

    A value many rows share (40 hours a week) identifies nobody and is copied as it is, so the spikes of a
    number survive: smoothing them all made Adult's hours-per-week the column that gave the rows away (C2ST AUC
    0.65 against 0.49).
    """
    _, inverse, counts = np.unique(np.stack([keys.astype(np.float64), values.astype(np.float64)], axis=1),
                                   axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] < fewest


def _bandwidths(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per leaf, Silverman's rule of thumb (R's `bw.nrd0`, synthpop's density smoothing) over its donors' values.

    0.9 min(sd, IQR / 1.34) m^(-1/5), falling back to the sd when the IQR is 0; a leaf of one value gets 0.
    """
    sizes = np.diff(starts)
    leaf = np.repeat(np.arange(len(sizes)), sizes)
    ordered = values[np.lexsort((values, leaf))].astype(np.float64)
    mean = np.bincount(leaf, ordered, len(sizes)) / np.maximum(sizes, 1)
    sd = np.sqrt(np.bincount(leaf, (ordered - mean[leaf]) ** 2, len(sizes)) / np.maximum(sizes - 1, 1))

    def quantile(p: float) -> np.ndarray:
        position = starts[:-1] + p * np.maximum(sizes - 1, 0)
        low = np.minimum(np.floor(position).astype(np.int64), len(ordered) - 1)
        high = np.minimum(low + 1, starts[1:] - 1)
        return ordered[low] + (position - low) * (ordered[high] - ordered[low])

    spread = (quantile(0.75) - quantile(0.25)) / 1.34
    scale = np.where(spread > 0, np.minimum(sd, spread), sd)
    return (0.9 * scale * np.maximum(sizes, 1) ** -0.2).astype(np.float32)
