"""Privacy by distance: do synthetic rows sit closer to the training records than to fresh ones?

Distances are Gower-style over the learned columns: a numerical or datetime column adds
|a - b| / (the real column's range), a categorical or boolean column adds 1 on a mismatch, and the
sum is divided by the number of columns, so a distance lies in [0, 1] (a value outside the real
range counts as the range's nearer end). A null is a value of its own: null to null is 0, null to a
value 1. Id, PII and text columns are left out: they are regenerated from their format, so a match
there says nothing about training.

Distances are computed on the full tables, a chunk of query rows at a time, in torch on the CPU:
the numerical part by `torch.cdist(p=1)`, the categorical part by a one-hot product (matches
counted as `A @ B.T`), so nothing loops over rows in Python. Every distance check is read from two
such passes (`distance_evidence`): synthetic rows against all real rows, and the sampled training
members plus the holdout against the training rows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from generators.schema import BadInputError, ColumnKind, Schema
from privacy.membership import attack_auc, density_ratio_scores, distance_scores
from privacy.outliers import NEAR_FRACTION, most_isolated, outlier_protection

logger = logging.getLogger(__name__)

_NUMERIC = (ColumnKind.NUMERICAL, ColumnKind.DATETIME)
_DISCRETE = (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
_EPOCH = pd.Timestamp(0, tz="UTC")
_NNDR_QUANTILE = 0.05


@dataclass(frozen=True)
class PrivacyConfig:
    """How the distance checks sample and measure; at the defaults full Adult takes ~30 CPU seconds.

    `density_k`: the k of the k-NN densities; 1 because memorisation puts point masses on training
    rows, which only the nearest neighbour resolves (on Adult, copies of a third of the members:
    density-attack AUC 0.66 at k=1, 0.60 at k=2, 0.55 at k=5, for a ceiling of 0.67).
    `isolated_k`: how many of the most isolated training rows the outlier check follows.
    `half_subsets` column subsets of half the learned columns and `small_subsets` of
    `small_subset_size` columns (quasi-identifier-like) repeat the DCR share on `subset_rows`
    sampled synthetic rows: each costs about half a full pass on those rows.
    """

    chunk_rows: int = 256
    density_k: int = 1
    isolated_k: int = 20
    near_fraction: float = NEAR_FRACTION
    half_subsets: int = 8
    small_subsets: int = 4
    small_subset_size: int = 3
    subset_rows: int = 2000
    resamples: int = 200
    onehot_max_levels: int = 512


@dataclass(frozen=True)
class SubsetShare:
    """The fold DCR share measured on some columns only."""

    columns: tuple[str, ...]
    share: float


@dataclass(frozen=True)
class DistanceEvidence:
    """The per-row distance facts every distance check is read from (arrays are not to be modified).

    `folds[f]`: the positions in train of fold f's rows (each fold the holdout's size).
    `fold_wins[i, f]`: 1 if synthetic row i is nearer to fold f than to the holdout, 1/2 on a tie, else 0.
    `synthetic_nndr`, `holdout_nndr`: nearest over second-nearest training distance (0/0 counts as 1:
    equally near two identical records).
    `member_to_synthetic`, `holdout_to_synthetic`: distances from the members (the first fold) and the
    holdout rows to their `density_k` nearest synthetic rows, ascending. `member_radius`,
    `holdout_radius`: their distance to the `density_k`-th nearest training row outside the members
    (NaN when too few are left). `isolated_rows`: positions in train of the most isolated training rows,
    most isolated first, with their `isolation` and `isolated_to_synthetic` distances.
    """

    folds: np.ndarray
    fold_wins: np.ndarray
    synthetic_nndr: np.ndarray
    holdout_nndr: np.ndarray
    member_to_synthetic: np.ndarray
    holdout_to_synthetic: np.ndarray
    member_radius: np.ndarray
    holdout_radius: np.ndarray
    isolated_rows: np.ndarray
    isolation: np.ndarray
    isolated_to_synthetic: np.ndarray
    subsets: tuple[SubsetShare, ...]
    seconds: dict[str, float] = field(compare=False)

    @property
    def dcr_share(self) -> float:
        """Mean of `fold_wins`: 0.5 in expectation when the output does not depend on which rows trained it.

        A fold and the holdout are then two random sets of equal size, equally likely to hold a
        synthetic row's nearest record. A generator that copies its training rows scores 1 on the
        copy's fold and 1/2 on the others; a training row lies in |holdout| / |train| of the folds on
        average (wrapped rows in two), so copying every training row gives 0.5 + 0.5 |holdout| / |train|:
        0.625 at an 80/20 split, 0.67 at 60/20.
        """
        return float(self.fold_wins.mean())

    @property
    def dcr_p_value(self) -> float:
        """One-sided binomial test of the share against 0.5 over the synthetic rows. Conservative: the
        folds of one row are averaged, which makes the share less variable than a single comparison."""
        n = self.fold_wins.shape[0]
        return float(binomtest(round(self.dcr_share * n), n, 0.5, alternative="greater").pvalue)

    @property
    def nndr_low_share(self) -> float:
        """Share of synthetic rows whose NNDR is below the holdout rows' 5th percentile (about 0.05 if
        honest): rows sitting on one training record while away from the others."""
        cutoff = np.quantile(self.holdout_nndr, _NNDR_QUANTILE)
        return float((self.synthetic_nndr < cutoff).mean())

    @property
    def worst_subset(self) -> SubsetShare:
        return max(self.subsets, key=lambda subset: subset.share, default=SubsetShare((), float("nan")))


@dataclass(frozen=True)
class PrivacyResult:
    """The distance-based privacy numbers the gate reads.

    `dcr_share`, `dcr_p_value`: see `DistanceEvidence.dcr_share` (0.5 honest, 0.625 for copies at 80/20).
    `exact_match_rate`: share of synthetic rows equal to some training row on the learned columns.
    `holdout_exact_match_rate`: the same for holdout rows, the baseline a real table sets by itself
    (real tables hold duplicate rows, so a faithful generator reproduces some too).
    `nndr_low_share`: see `DistanceEvidence.nndr_low_share` (about 0.05 honest).
    `subset_dcr_share`, `subset_columns`: the largest DCR share over the column subsets, and where.
    `membership_auc_*`: AUC of the distance and density-ratio attacks (0.5 honest), with 95% intervals.
    `isolated_reproduced` of the `isolated_k` most isolated training rows have a synthetic row nearer
    than the configured fraction of their isolation; `isolated_min_ratio` is the smallest such ratio.
    """

    dcr_share: float
    dcr_p_value: float
    exact_match_rate: float
    holdout_exact_match_rate: float
    nndr_low_share: float
    subset_dcr_share: float
    subset_columns: tuple[str, ...]
    membership_auc_distance: float
    membership_auc_distance_ci: tuple[float, float]
    membership_auc_density: float
    membership_auc_density_ci: tuple[float, float]
    isolated_k: int
    isolated_reproduced: int
    isolated_min_ratio: float
    elapsed_s: float


def evaluate_privacy(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    seed: int = 0,
    config: PrivacyConfig = PrivacyConfig(),
) -> PrivacyResult:
    """Every distance-based privacy number of `synthetic` against the real train/holdout split.

    `seed` drives the fold permutation (whose first fold doubles as the membership-attack members),
    the column subsets, the subset rows and the bootstrap.
    """
    start = time.perf_counter()
    evidence = distance_evidence(train, holdout, synthetic, schema, seed=seed, config=config)
    by_distance = attack_auc(
        distance_scores(evidence.member_to_synthetic[:, 0]),
        distance_scores(evidence.holdout_to_synthetic[:, 0]),
        resamples=config.resamples,
        seed=seed,
    )
    by_density = attack_auc(
        density_ratio_scores(evidence.member_to_synthetic[:, -1], evidence.member_radius),
        density_ratio_scores(evidence.holdout_to_synthetic[:, -1], evidence.holdout_radius),
        resamples=config.resamples,
        seed=seed,
    )
    outliers = outlier_protection(
        evidence.isolation, evidence.isolated_to_synthetic, near_fraction=config.near_fraction
    )
    worst = evidence.worst_subset
    result = PrivacyResult(
        dcr_share=evidence.dcr_share,
        dcr_p_value=evidence.dcr_p_value,
        exact_match_rate=exact_match_rate(synthetic, train, schema),
        holdout_exact_match_rate=exact_match_rate(holdout, train, schema),
        nndr_low_share=evidence.nndr_low_share,
        subset_dcr_share=worst.share,
        subset_columns=worst.columns,
        membership_auc_distance=by_distance.auc,
        membership_auc_distance_ci=by_distance.ci,
        membership_auc_density=by_density.auc,
        membership_auc_density_ci=by_density.ci,
        isolated_k=outliers.k,
        isolated_reproduced=outliers.reproduced,
        isolated_min_ratio=outliers.min_ratio,
        elapsed_s=time.perf_counter() - start,
    )
    logger.info(
        "privacy: dcr share %.4f (p=%.3g), worst subset %.4f, nndr low %.4f, membership auc %.3f/%.3f, "
        "%d/%d isolated rows reproduced, exact matches %.4f vs holdout %.4f, in %.1f s",
        result.dcr_share,
        result.dcr_p_value,
        result.subset_dcr_share,
        result.nndr_low_share,
        result.membership_auc_distance,
        result.membership_auc_density,
        result.isolated_reproduced,
        result.isolated_k,
        result.exact_match_rate,
        result.holdout_exact_match_rate,
        result.elapsed_s,
    )
    return result


def distance_evidence(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    seed: int = 0,
    config: PrivacyConfig = PrivacyConfig(),
) -> DistanceEvidence:
    """Measure every distance the checks need, in two full passes plus small ones.

    Training rows are split by a seeded permutation into k = ceil(|train| / |holdout|) folds of
    exactly |holdout| rows, the last topped up by wrapping around, so every training row is seen
    (a single subsample the holdout's size would hide most memorised rows) and each fold is a
    random set of the holdout's size. The first fold doubles as the membership attack's members;
    the training rows outside it are the real reference of the density attack.
    """
    if len(train) < 2 or holdout.empty or synthetic.empty:
        raise BadInputError("privacy: need at least 2 train rows and some holdout and synthetic rows")
    if len(holdout) > len(train):
        raise BadInputError(f"privacy: the holdout ({len(holdout)} rows) must not outnumber train ({len(train)})")
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    space = _GowerSpace.encode(
        [train, holdout, synthetic], schema, range_rows=len(train) + len(holdout), max_levels=config.onehot_max_levels
    )
    layout = _Layout.make(len(train), len(holdout), len(synthetic), np.random.default_rng(seed))
    seconds["encode"], tick = _lap(tick)
    fold_wins, synthetic_nndr, member_to_synthetic, holdout_to_synthetic = _synthetic_pass(space, layout, config)
    seconds["synthetic pass"], tick = _lap(tick)
    holdout_nndr, member_radius, holdout_radius, isolation_bounds = _real_pass(space, layout, config)
    seconds["real pass"], tick = _lap(tick)
    positions, isolation = most_isolated(
        isolation_bounds,
        lambda rows: _nearest(space, layout.train[rows], layout.train, config.chunk_rows),
        config.isolated_k,
    )
    isolated = layout.train[positions]
    isolated_to_synthetic = _nearest(space, isolated, layout.synthetic, config.chunk_rows)
    seconds["outliers"], tick = _lap(tick)
    subsets = _subset_shares(space, layout, [spec.name for spec in schema.learned], seed, config)
    seconds["subsets"], tick = _lap(tick)
    logger.debug("privacy: seconds per stage %s", {key: round(value, 2) for key, value in seconds.items()})
    return DistanceEvidence(
        folds=layout.folds,
        fold_wins=fold_wins,
        synthetic_nndr=synthetic_nndr,
        holdout_nndr=holdout_nndr,
        member_to_synthetic=member_to_synthetic,
        holdout_to_synthetic=holdout_to_synthetic,
        member_radius=member_radius,
        holdout_radius=holdout_radius,
        isolated_rows=isolated,
        isolation=isolation,
        isolated_to_synthetic=isolated_to_synthetic,
        subsets=subsets,
        seconds=seconds,
    )


@dataclass(frozen=True)
class _Layout:
    """Which encoded rows play which part: rows are stacked train, holdout, synthetic.

    `train`: the training rows in a seeded random order. Fold f is positions f|holdout| to
    (f+1)|holdout| of that order, the last fold wrapping around to the start; the first fold is the
    membership attack's members, the rest of the order the density attack's real reference.
    """

    train: np.ndarray
    holdout: np.ndarray
    synthetic: np.ndarray

    @classmethod
    def make(cls, n_train: int, n_holdout: int, n_synthetic: int, rng: np.random.Generator) -> _Layout:
        real = n_train + n_holdout
        return cls(rng.permutation(n_train), np.arange(n_train, real), np.arange(real, real + n_synthetic))

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_holdout(self) -> int:
        return len(self.holdout)

    @property
    def folds(self) -> np.ndarray:
        """The training rows of each fold, one fold per row of the array."""
        n_folds = math.ceil(self.n_train / self.n_holdout)
        return self.train[np.arange(n_folds * self.n_holdout) % self.n_train].reshape(n_folds, self.n_holdout)

    @property
    def members(self) -> np.ndarray:
        return self.train[: self.n_holdout]

    @property
    def train_then_holdout(self) -> np.ndarray:
        return np.concatenate([self.train, self.holdout])


def _synthetic_pass(
    space: _GowerSpace, layout: _Layout, config: PrivacyConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic rows against folds and holdout: fold wins and NNDR per synthetic row, and, kept as
    running column-wise top-k, the nearest synthetic rows of each member and holdout row."""
    n_holdout, n_train = layout.n_holdout, layout.n_train
    wins = np.empty((len(layout.synthetic), len(layout.folds)), dtype=np.float32)
    nndr = np.empty(len(layout.synthetic))
    to_members = torch.full((config.density_k, n_holdout), torch.inf)
    to_holdout = torch.full((config.density_k, n_holdout), torch.inf)
    for start, distances in space.blocks(layout.synthetic, layout.train_then_holdout, config.chunk_rows):
        rows = slice(start, start + len(distances))
        wins[rows] = _fold_wins(distances, n_train, n_holdout).numpy()
        nndr[rows] = _nndr(distances[:, :n_train])
        _merge_smallest(to_members, distances[:, :n_holdout])
        _merge_smallest(to_holdout, distances[:, n_train:])
    return wins, nndr, to_members.T.double().numpy(), to_holdout.T.double().numpy()


def _real_pass(
    space: _GowerSpace, layout: _Layout, config: PrivacyConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Members and holdout rows against the training rows (each row's self excluded).

    Gives the holdout's NNDR (the honest baseline), the density attack's reference radius for members
    and holdout, and for every training row its distance to the nearest other member: an upper
    bound of its isolation, which spares a full train-against-train pass.
    """
    n_holdout = layout.n_holdout
    queries = np.concatenate([layout.members, layout.holdout])
    nndr = np.empty(len(queries))
    radius = np.full(len(queries), np.nan)
    bounds = torch.full((layout.n_train,), torch.inf)
    has_reference = layout.n_train - n_holdout >= config.density_k
    for start, distances in space.blocks(queries, layout.train, config.chunk_rows, exclude_self=True):
        rows = slice(start, start + len(distances))
        nndr[rows] = _nndr(distances)
        if has_reference:
            reference = distances[:, n_holdout:]
            radius[rows] = reference.topk(config.density_k, dim=1, largest=False).values[:, -1].numpy()
        members = distances[: max(0, n_holdout - start)]
        if len(members):
            bounds = torch.minimum(bounds, members.amin(dim=0))
    if not has_reference:
        logger.warning("privacy: too few training rows outside the members for the density attack")
    return nndr[n_holdout:], radius[:n_holdout], radius[n_holdout:], bounds.double().numpy()


def _subset_shares(
    space: _GowerSpace, layout: _Layout, names: list[str], seed: int, config: PrivacyConfig
) -> tuple[SubsetShare, ...]:
    """The fold DCR share on seeded column subsets, over a seeded sample of the synthetic rows.

    A generator can copy a record on some columns and vary the rest, which dilutes the full-row
    distance; half the columns catches most such copies, small subsets mimic quasi-identifiers.
    """
    rng = np.random.default_rng([seed, 1])
    sizes = [math.ceil(len(names) / 2)] * config.half_subsets
    sizes += [min(config.small_subset_size, len(names))] * config.small_subsets
    chosen = dict.fromkeys(tuple(sorted(rng.choice(len(names), size, replace=False))) for size in sizes)
    rows = np.sort(rng.choice(layout.synthetic, min(config.subset_rows, len(layout.synthetic)), replace=False))
    shares = []
    for picked in chosen:
        columns = tuple(names[i] for i in picked)
        blocks = space.subset(columns).blocks(rows, layout.train_then_holdout, config.chunk_rows)
        wins = torch.cat([_fold_wins(d, layout.n_train, layout.n_holdout) for _, d in blocks])
        shares.append(SubsetShare(columns, float(wins.mean())))
    return tuple(shares)


def _merge_smallest(best: torch.Tensor, block: torch.Tensor) -> None:
    """Update `best` in place to the len(best) smallest values per column of `best` and `block`, ascending.

    Only the columns whose minimum in the block beats the current k-th smallest are re-ranked: after
    the first few chunks that is a small minority, which makes the running top-k cheap.
    """
    improved = torch.nonzero(block.amin(dim=0) < best[-1]).squeeze(1)
    if len(improved):
        merged = torch.cat([best[:, improved], block[:, improved]])
        best[:, improved] = merged.topk(len(best), dim=0, largest=False).values


def _nearest(space: _GowerSpace, query: np.ndarray, reference: np.ndarray, chunk_rows: int) -> np.ndarray:
    """Each query row's distance to its nearest reference row other than itself."""
    blocks = space.blocks(query, reference, chunk_rows, exclude_self=True)
    return np.concatenate([d.amin(dim=1).double().numpy() for _, d in blocks])


def _fold_wins(distances: torch.Tensor, n_train: int, n_holdout: int) -> torch.Tensor:
    """Per row and fold: 1 if the fold's nearest record is nearer than the holdout's, 1/2 on a tie.

    `distances` run over the training rows in fold order, then the holdout. The last fold's wrapped
    rows are read from the start rather than measured twice.
    """
    n_folds = math.ceil(n_train / n_holdout)
    whole = (n_folds - 1) * n_holdout
    wrapped = n_folds * n_holdout - n_train
    last = distances[:, whole:n_train].amin(dim=1, keepdim=True)
    if wrapped:
        last = torch.minimum(last, distances[:, :wrapped].amin(dim=1, keepdim=True))
    first = distances[:, :whole].view(len(distances), n_folds - 1, n_holdout).amin(dim=2)
    to_folds = torch.cat([first, last], dim=1)
    to_holdout = distances[:, n_train:].amin(dim=1, keepdim=True)
    return (to_folds < to_holdout).float() + (to_folds == to_holdout).float() / 2


def _nndr(distances: torch.Tensor) -> np.ndarray:
    """Nearest over second-nearest distance per row; 0/0 (two identical records) counts as 1."""
    first, second = distances.topk(2, dim=1, largest=False).values.double().unbind(dim=1)
    return torch.where(second > 0, first / second.clamp(min=1e-300), 1.0).numpy()


def _lap(tick: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - tick, now


def exact_match_rate(query: pd.DataFrame, reference: pd.DataFrame, schema: Schema) -> float:
    """Share of `query` rows equal to some `reference` row on the learned columns.

    Numerical values are compared at float32 precision (about 7 significant digits), so a copied
    value that went through a generator's float decoding still counts as copied; datetimes are
    compared to the microsecond and nulls equal nulls.
    """
    numeric, codes = _learned_arrays([reference, query], schema)
    is_datetime = np.array([spec.kind is ColumnKind.DATETIME for spec in schema.of_kind(*_NUMERIC)], dtype=bool)
    rounded = np.where(is_datetime, numeric, numeric.astype(np.float32).astype(np.float64))
    canonical = np.where(np.isnan(rounded), np.nan, rounded + 0.0)  # one NaN bit pattern, no -0.0
    keys = pd.util.hash_pandas_object(pd.DataFrame(np.column_stack([canonical, codes])), index=False).to_numpy()
    return float(np.isin(keys[len(reference) :], keys[: len(reference)]).mean())


def gower_distance_chunks(
    query: pd.DataFrame,
    reference: pd.DataFrame,
    schema: Schema,
    *,
    chunk_rows: int = 512,
    onehot_max_levels: int = 512,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Gower distances from each chunk of `query` rows to every `reference` row, as (first row, matrix).

    Numerical ranges come from `reference`. A categorical column with more than `onehot_max_levels`
    distinct values is compared code to code instead of through the one-hot product, so the one-hot
    matrix stays small (|reference| x levels floats) whatever the cardinality.
    """
    if query.empty or reference.empty:
        raise BadInputError("privacy: cannot measure distances to or from an empty frame")
    space = _GowerSpace.encode([reference, query], schema, range_rows=len(reference), max_levels=onehot_max_levels)
    n_ref = len(reference)
    yield from space.blocks(np.arange(n_ref, n_ref + len(query)), np.arange(n_ref), chunk_rows)


@dataclass(frozen=True)
class _GowerSpace:
    """Encoded rows whose Gower distances are an L1 distance plus a one-hot product.

    `numeric`: range-scaled numbers, laid out so that L1 distance is Gower's (see `_embed`).
    `onehot`: one column per level of the categorical columns with few levels; `wide`: the codes of
    the others, compared code to code. `owners` name the learned column of each numeric, one-hot and
    wide column, so that a subset of columns is a subset of these.
    """

    numeric: torch.Tensor
    onehot: torch.Tensor
    wide: torch.Tensor
    owners: tuple[np.ndarray, np.ndarray, np.ndarray]
    n_discrete: int
    n_features: int

    @classmethod
    def encode(cls, frames: Sequence[pd.DataFrame], schema: Schema, *, range_rows: int, max_levels: int) -> _GowerSpace:
        """Encode the stacked frames, with numerical ranges taken from their first `range_rows` rows."""
        numeric, codes = _learned_arrays(frames, schema)
        numeric_names = np.array([spec.name for spec in schema.of_kind(*_NUMERIC)], dtype=object)
        discrete_names = np.array([spec.name for spec in schema.of_kind(*_DISCRETE)], dtype=object)
        if len(numeric_names) + len(discrete_names) == 0:
            raise BadInputError("privacy: the schema has no learned columns to compare")
        embedded, numeric_owner = _embed(numeric, range_rows, numeric_names)
        levels = codes.max(axis=0, initial=-1) + 1
        narrow = levels <= max_levels
        logger.debug("privacy: %d one-hot levels, %d code-compared columns", levels[narrow].sum(), (~narrow).sum())
        return cls(
            numeric=torch.from_numpy(embedded).float(),
            onehot=_one_hot(codes[:, narrow], levels[narrow]),
            wide=torch.from_numpy(codes[:, ~narrow]),
            owners=(numeric_owner, np.repeat(discrete_names[narrow], levels[narrow]), discrete_names[~narrow]),
            n_discrete=len(discrete_names),
            n_features=len(numeric_names) + len(discrete_names),
        )

    def subset(self, columns: Sequence[str]) -> _GowerSpace:
        """The same rows measured on `columns` only."""
        keep = [np.isin(owner, list(columns)) for owner in self.owners]
        wide_names = set(self.owners[2][keep[2]])
        return _GowerSpace(
            numeric=self.numeric[:, torch.from_numpy(keep[0])],
            onehot=self.onehot[:, torch.from_numpy(keep[1])],
            wide=self.wide[:, torch.from_numpy(keep[2])],
            owners=(self.owners[0][keep[0]], self.owners[1][keep[1]], self.owners[2][keep[2]]),
            n_discrete=len(set(self.owners[1][keep[1]]) | wide_names),
            n_features=len(set(columns)),
        )

    def blocks(
        self, query: np.ndarray, reference: np.ndarray, chunk_rows: int, *, exclude_self: bool = False
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Distances from each chunk of `query` rows to the `reference` rows, as (first position, matrix).

        The mismatch count is one product with a constant column appended (matches minus the number
        of discrete columns), kept in small integers so that it is exact: identical rows are exactly
        0 apart and equal distances tie exactly. With `exclude_self`, a row's distance to itself is
        infinite (the reference rows must then be distinct).
        """
        if chunk_rows < 1:
            raise BadInputError(f"privacy: chunk_rows must be positive, got {chunk_rows}")
        ref = torch.from_numpy(reference)
        ref_numeric, ref_wide = self.numeric[ref], self.wide[ref]
        constant = torch.full((len(ref), 1), -float(self.n_discrete))
        ref_onehot_t = torch.cat([self.onehot[ref], constant], 1).T.contiguous()
        position = np.full(len(self.numeric), -1)
        position[reference] = np.arange(len(reference))
        for start in range(0, len(query), chunk_rows):
            rows = query[start : start + chunk_rows]
            index = torch.from_numpy(rows)
            distances = torch.cdist(self.numeric[index], ref_numeric, p=1)
            onehot = torch.cat([self.onehot[index], torch.ones(len(rows), 1)], 1)
            distances.addmm_(onehot, ref_onehot_t, alpha=-1)  # plus the mismatches
            for column in range(ref_wide.shape[1]):
                distances.sub_((self.wide[index, column, None] == ref_wide[None, :, column]).float())
            distances.div_(self.n_features)
            if exclude_self:
                own = position[rows]
                at = np.flatnonzero(own >= 0)
                distances[torch.from_numpy(at), torch.from_numpy(own[at])] = torch.inf
            yield start, distances


def _learned_arrays(frames: Sequence[pd.DataFrame], schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """The frames' learned columns, stacked: numbers (float64, NaN for null) and category codes.

    Datetimes become UTC epoch seconds (naive ones read as UTC). Codes are shared across the frames,
    one per distinct value, with null as a code of its own.
    """
    names = [spec.name for spec in schema.learned]
    stacked = pd.concat([frame[names] for frame in frames], ignore_index=True)
    n = len(stacked)
    numeric = np.column_stack(
        [np.empty((n, 0)), *(_as_number(stacked[spec.name], spec.kind) for spec in schema.of_kind(*_NUMERIC))]
    )
    codes = np.column_stack(
        [np.empty((n, 0), dtype=np.int64), *(_codes(stacked[spec.name]) for spec in schema.of_kind(*_DISCRETE))]
    )
    return numeric, codes


def _as_number(column: pd.Series, kind: ColumnKind) -> np.ndarray:
    if kind is ColumnKind.DATETIME:
        column = (pd.to_datetime(column, utc=True) - _EPOCH) / pd.Timedelta(seconds=1)
    return pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan)


def _codes(column: pd.Series) -> np.ndarray:
    codes, uniques = pd.factorize(column)
    return np.where(codes < 0, len(uniques), codes)


def _embed(numeric: np.ndarray, range_rows: int, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range-scaled values laid out so that L1 distance is Gower's, nulls included; and each part's column.

    A value v, scaled to [0, 1] by the range of the first `range_rows` rows (a value outside it counts
    as the nearer end), stays v in a column without nulls. In a column with nulls it becomes (v/2,
    -v/2) and a null (1/2, 1/2): two values are |a - b| apart, a null is exactly 1 from any value and
    0 from another null. Only columns with nulls pay for the second part, which halves the L1 work
    on tables without them.
    """
    real = pd.DataFrame(numeric[:range_rows])
    low, span = real.min().to_numpy(), (real.max() - real.min()).to_numpy()
    scaled = np.clip((numeric - np.nan_to_num(low)) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    null = np.isnan(scaled)
    nullable = null.any(axis=0)
    parts = [scaled[:, ~nullable], np.where(null, 0.5, scaled / 2)[:, nullable], np.where(null, 0.5, -scaled / 2)]
    parts[2] = parts[2][:, nullable]
    owners = np.concatenate([names[~nullable], names[nullable], names[nullable]])
    return np.concatenate(parts, axis=1), owners


def _one_hot(codes: np.ndarray, levels: np.ndarray) -> torch.Tensor:
    offsets = np.cumsum(levels) - levels
    onehot = torch.zeros(len(codes), int(levels.sum()))
    onehot[torch.arange(len(codes))[:, None], torch.from_numpy(codes + offsets)] = 1.0
    return onehot
