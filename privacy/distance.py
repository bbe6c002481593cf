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
such passes (`distance_evidence`): synthetic rows against all real rows, and all real rows against
each other.

Every number comes with an interval whose two sides each err with probability `PrivacyConfig.alpha`.
The null hypothesis of every check is that the release leaks no more than real rows never trained on
would (the holdout is our sample of those), so each number has an honest value (a DCR share of 0.5, an
excess of 0, a TPR equal to its FPR) and the gate refuses only when the lower bound is past its line:
noise alone cannot push a number over it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scipy import stats
from scipy.stats import norm

from generators.tabular.checks import CheckSpec, Context, Reading, Rule, Setting, declare
from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, Schema
from privacy.membership import (
    DEFAULT_ALPHA,
    NEIGHBOURS,
    REPORTED_FPRS,
    AttackScore,
    TprAtFpr,
    density_ratio_scores,
    distance_scores,
    ensemble_scores,
    neighbour_features,
    score_attack,
    tpr_at_fpr,
)
from privacy.outliers import NEAR_FRACTION, isolated, outlier_protection

if TYPE_CHECKING:
    from privacy.audit import PrivacyAudit

logger = logging.getLogger(__name__)

_NUMERIC = (ColumnKind.NUMERICAL, ColumnKind.DATETIME)
_DISCRETE = (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
_EPOCH = pd.Timestamp(0, tz="UTC")
_NNDR_QUANTILE = 0.05
_EVERYWHERE_CHUNK = 64  # outlier rows per distance block against a whole part: 64 x 250,000 floats, 64 MB
_NULL_KEY = np.uint64(0x9E3779B97F4A7C15)  # a null category's key: a constant, as unlikely as any hash to collide


@dataclass(frozen=True)
class PrivacyConfig:
    """How the distance checks sample, measure and bound; at the defaults full Adult takes ~20 CPU seconds.

    `alpha`: the one-sided error of every interval (each is [lower at alpha, upper at 1 - alpha]); a
    number that is the worst of k candidates (the column subsets) is bounded at alpha / k (Bonferroni),
    so that taking the worst does not turn noise into false alarms.
    `density_k`: the k of the k-NN densities; 1 because memorisation puts point masses on training
    rows, which only the nearest neighbour resolves (on Adult, copies of a third of the members:
    density-attack AUC 0.66 at k=1, 0.60 at k=2, 0.55 at k=5, for a ceiling of 0.67).
    `low_fpr`: the false-positive rate at which the membership attacks' TPR is gated.
    `isolated_share`, `isolated_k`: the outlier check follows as many of the most isolated training rows as
    of the most isolated holdout rows: `isolated_share` of the smaller group, and at least `isolated_k`.
    `half_subsets` column subsets of half the learned columns and `small_subsets` of
    `small_subset_size` columns (quasi-identifier-like) repeat the DCR share on `subset_rows`
    sampled synthetic rows: each costs about half a full pass on those rows.
    """

    chunk_rows: int = 256
    alpha: float = DEFAULT_ALPHA
    density_k: int = 1
    low_fpr: float = 0.005
    isolated_share: float = 0.01
    isolated_k: int = 20
    near_fraction: float = NEAR_FRACTION
    half_subsets: int = 8
    small_subsets: int = 4
    small_subset_size: int = 3
    subset_rows: int = 2000
    onehot_max_levels: int = 512


@dataclass(frozen=True)
class SubsetShare:
    """The fold DCR share measured on some columns only, with its standard error."""

    columns: tuple[str, ...]
    share: float
    standard_error: float


@dataclass(frozen=True)
class DistanceEvidence:
    """The per-row distance facts every distance check is read from (arrays are not to be modified).

    `folds[f]`: the positions in train of fold f's rows (each fold the size of the DCR's holdout:
    the holdout, or a seeded sample of it of train's size when the holdout is the larger).
    `fold_wins[i, f]`: 1 if synthetic row i is nearer to fold f than to that holdout, 1/2 on a tie, else 0;
    `fold_nearest[i, f]`: which real row (a position in the real order below) is its nearest of the two.
    `synthetic_nndr`, `holdout_nndr`: nearest over second-nearest training distance (0/0 counts as 1:
    equally near two identical records).
    Per real row, training rows first: `real_rows` (position in train, or in holdout, in a seeded
    order), `is_member` (a training row), `to_synthetic` (distances to its nearest synthetic rows,
    ascending), `real_radius` (to its `density_k`-th nearest other real row) and `isolation` (to its
    nearest other real row). `isolated_rows`: positions in train of the training rows the outlier check
    follows, most isolated first.
    """

    folds: np.ndarray
    fold_wins: np.ndarray
    fold_nearest: np.ndarray
    synthetic_nndr: np.ndarray
    holdout_nndr: np.ndarray
    real_rows: np.ndarray
    is_member: np.ndarray
    to_synthetic: np.ndarray
    real_radius: np.ndarray
    isolation: np.ndarray
    isolated_rows: np.ndarray
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
    def dcr_standard_error(self) -> float:
        """Standard error of `dcr_share`, clustered by deciding real row and by synthetic row (`_share_error`)."""
        return _share_error(self.fold_wins, self.fold_nearest)

    def nndr_low_share(self, alpha: float) -> TprAtFpr:
        """Share of synthetic rows whose NNDR is below the holdout rows' 5th percentile (0.05 if honest).

        Those are rows sitting on one training record while away from the others. It is a true-positive rate
        at 5% false positives, synthetic rows taken for members and holdout rows for non-members, so its
        bounds are `tpr_at_fpr`'s: exact, with the noise of a percentile read off few holdout rows (the 5th
        percentile of 40 rows is the 2nd or 3rd smallest, and its true level can be 15%).
        """
        return tpr_at_fpr(-self.synthetic_nndr, -self.holdout_nndr, _NNDR_QUANTILE, alpha=alpha)

    @property
    def worst_subset(self) -> SubsetShare:
        """The column subset with the highest DCR share (NaN share and error when no subset was measured)."""
        return max(self.subsets, key=lambda subset: subset.share, default=SubsetShare((), math.nan, math.nan))


@dataclass(frozen=True)
class PrivacyResult:
    """The distance-based privacy numbers the gate reads, each `*_ci` the (lower, upper) bounds at `alpha`.

    `dcr_share`: see `DistanceEvidence.dcr_share` (0.5 honest, 0.625 for copies at 80/20); its interval
    and `dcr_p_value` (one-sided, against 0.5) count the synthetic rows that share a nearest real row as
    one cluster, since they win or lose together.
    `exact_match_rate`: share of synthetic rows equal to some training row on the learned columns.
    `holdout_exact_match_rate`: the same for real rows never trained on (holdout rows, and training rows
    against the others), the baseline a real table sets by itself (real tables hold duplicate rows, so
    a faithful generator reproduces some too). `exact_match_excess`: the first less the second (0
    honest), with the interval of `CopyExcess`.
    `nndr_low_share`: see `DistanceEvidence.nndr_low_share` (0.05 honest); its interval carries the
    noise of the holdout's 5th percentile as well as the synthetic rows', exactly.
    `subset_dcr_share`, `subset_columns`: the largest DCR share over the column subsets, and where; its
    interval is at alpha / (number of subsets).
    `membership`: each attack (`distance`, `density`, `ensemble`) scored on members (every training row)
    against non-members (every holdout row): its AUC (0.5 honest) and its TPR at `membership_low_fpr` (equal
    to it when honest; the gated one) and at 1% and 10% FPR (reported), each with an interval that carries
    the threshold's noise (`privacy.membership.tpr_at_fpr`: the lower bound exceeds the FPR with
    probability at most alpha when the release leaks nothing).
    `isolated_k` training and `isolated_holdout_k` holdout rows (as many) are the most isolated real rows;
    `isolated_reproduced` and `isolated_holdout_reproduced` of them have a synthetic row nearer than
    the configured fraction of their isolation. `isolated_excess` is the first rate less the second
    (0 honest), with Newcombe's interval and the one-sided Fisher `isolated_p_value`;
    `isolated_min_ratio` is the smallest nearest-synthetic over isolation ratio of the training ones.
    """

    dcr_share: float
    dcr_share_ci: tuple[float, float]
    dcr_p_value: float
    exact_match_rate: float
    holdout_exact_match_rate: float
    exact_match_excess: float
    exact_match_excess_ci: tuple[float, float]
    nndr_low_share: float
    nndr_low_share_ci: tuple[float, float]
    subset_dcr_share: float
    subset_dcr_share_ci: tuple[float, float]
    subset_columns: tuple[str, ...]
    membership_low_fpr: float
    membership: Mapping[str, AttackScore]
    isolated_k: int
    isolated_reproduced: int
    isolated_holdout_k: int
    isolated_holdout_reproduced: int
    isolated_excess: float
    isolated_excess_ci: tuple[float, float]
    isolated_p_value: float
    isolated_min_ratio: float
    alpha: float
    elapsed_s: float


def evaluate_privacy(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    seed: int = 0,
    config: PrivacyConfig = PrivacyConfig(),
    copies: CopyExcess | None = None,
    every_synthetic: Callable[[], Iterable[pd.DataFrame]] | None = None,
) -> PrivacyResult:
    """Every distance-based privacy number of `synthetic` against the real train/holdout split.

    `seed` drives the fold permutation, the holdout sample of the DCR (when the holdout outnumbers
    train), the column subsets, the subset rows and the ensemble attack's halves. `copies`: the exact-copy
    evidence over the whole tables when these are samples of them (`CopyCounts`); by default it is measured
    on the tables given. `every_synthetic`: the whole synthetic table, part by part, when `synthetic` is a sample
    of it: the most isolated real rows are then looked for among every synthetic row (`nearest_everywhere`), since
    a handful of reproduced outliers among millions of rows would rarely fall in a sample.
    """
    start = time.perf_counter()
    evidence = distance_evidence(train, holdout, synthetic, schema, seed=seed, config=config)
    alpha = config.alpha
    nndr = evidence.nndr_low_share(alpha)
    copies = copies or copy_excess(train, holdout, synthetic, schema, alpha)
    worst = evidence.worst_subset
    attacks = _membership_attacks(evidence, seed, config)
    nearest = evidence.to_synthetic[:, 0]
    if every_synthetic is not None:
        nearest = nearest_everywhere(evidence, train, holdout, every_synthetic(), schema, config)
    outliers = outlier_protection(
        evidence.isolation,
        nearest,
        evidence.is_member,
        near_fraction=config.near_fraction,
        share=config.isolated_share,
        minimum=config.isolated_k,
        alpha=alpha,
    )
    dcr_error = evidence.dcr_standard_error
    result = PrivacyResult(
        dcr_share=evidence.dcr_share,
        dcr_share_ci=_normal_interval(evidence.dcr_share, dcr_error, alpha),
        dcr_p_value=_p_above_half(evidence.dcr_share, dcr_error),
        exact_match_rate=copies.rate,
        holdout_exact_match_rate=copies.honest_rate,
        exact_match_excess=copies.rate - copies.honest_rate,
        exact_match_excess_ci=copies.excess_ci,
        nndr_low_share=nndr.tpr,
        nndr_low_share_ci=nndr.ci,
        subset_dcr_share=worst.share,
        subset_dcr_share_ci=_normal_interval(worst.share, worst.standard_error, alpha / max(len(evidence.subsets), 1)),
        subset_columns=worst.columns,
        membership_low_fpr=config.low_fpr,
        membership=attacks,
        isolated_k=len(outliers.members),
        isolated_reproduced=outliers.members_reproduced,
        isolated_holdout_k=len(outliers.nonmembers),
        isolated_holdout_reproduced=outliers.nonmembers_reproduced,
        isolated_excess=outliers.excess,
        isolated_excess_ci=outliers.excess_ci,
        isolated_p_value=outliers.p_value,
        isolated_min_ratio=outliers.min_ratio,
        alpha=alpha,
        elapsed_s=time.perf_counter() - start,
    )
    _log(result)
    return result


def nearest_everywhere(evidence: DistanceEvidence, train: pd.DataFrame, holdout: pd.DataFrame,
                       parts: Iterable[pd.DataFrame], schema: Schema, config: PrivacyConfig) -> np.ndarray:
    """Each real row's distance to its nearest synthetic row, the outlier check's rows measured against every part.

    The rows the outlier check follows (`isolated`) are compared with each part in turn, in the space of the real
    rows' ranges, so memory holds one part; the other rows keep their distance to the sample.
    """
    top = isolated(evidence.isolation, evidence.is_member, share=config.isolated_share, minimum=config.isolated_k)
    top = np.concatenate([top[evidence.is_member[top]], top[~evidence.is_member[top]]])  # members first
    members = evidence.is_member[top]
    rows = pd.concat([train.iloc[evidence.real_rows[top[members]]], holdout.iloc[evidence.real_rows[top[~members]]]],
                     ignore_index=True)
    ranges = numeric_ranges([train, holdout], schema)
    nearest = evidence.to_synthetic[:, 0].copy()
    for part in parts:
        for start, distances in gower_distance_chunks(rows, part, schema, chunk_rows=_EVERYWHERE_CHUNK,
                                                      onehot_max_levels=config.onehot_max_levels, ranges=ranges):
            at = top[start:start + len(distances)]
            nearest[at] = np.minimum(nearest[at], distances.min(dim=1).values.numpy())
    return nearest


def _membership_attacks(evidence: DistanceEvidence, seed: int, config: PrivacyConfig) -> dict[str, AttackScore]:
    """Score every real row by each attack and judge each attack on members against non-members."""
    nearest = evidence.to_synthetic
    scores = {
        "distance": distance_scores(nearest[:, 0]),
        "density": density_ratio_scores(nearest[:, config.density_k - 1], evidence.real_radius),
        "ensemble": ensemble_scores(neighbour_features(nearest, evidence.isolation), evidence.is_member, seed),
    }
    members = evidence.is_member
    return {
        name: score_attack(score[members], score[~members], (config.low_fpr, *REPORTED_FPRS), config.alpha)
        for name, score in scores.items()
    }


def _normal_interval(share: float, standard_error: float, alpha: float) -> tuple[float, float]:
    error = float(norm.ppf(1 - alpha)) * standard_error
    return max(share - error, 0.0), min(share + error, 1.0)


def _p_above_half(share: float, standard_error: float) -> float:
    """One-sided normal p-value of a share against 0.5; with no spread at all, the share decides alone."""
    if standard_error > 0:
        return float(norm.sf((share - 0.5) / standard_error))
    return 0.0 if share > 0.5 else 1.0 if share < 0.5 else 0.5


def _log(result: PrivacyResult) -> None:
    logger.info(
        "privacy: dcr share %.4f %s, worst subset %.4f %s, nndr low %.4f %s, exact excess %.4f %s, "
        "membership auc %s, tpr at %g fpr %s, "
        "isolated reproduced %d/%d vs holdout %d/%d "
        "(excess %s), in %.1f s",
        result.dcr_share,
        _bounds(result.dcr_share_ci),
        result.subset_dcr_share,
        _bounds(result.subset_dcr_share_ci),
        result.nndr_low_share,
        _bounds(result.nndr_low_share_ci),
        result.exact_match_excess,
        _bounds(result.exact_match_excess_ci),
        "/".join(f"{score.auc.auc:.3f}" for score in result.membership.values()),
        result.membership_low_fpr,
        " / ".join(f"{tpr.tpr:.4f} {_bounds(tpr.ci)}"
                   for tpr in (score.tpr[result.membership_low_fpr] for score in result.membership.values())),
        result.isolated_reproduced,
        result.isolated_k,
        result.isolated_holdout_reproduced,
        result.isolated_holdout_k,
        _bounds(result.isolated_excess_ci),
        result.elapsed_s,
    )


def _bounds(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]"


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

    Training rows are split by a seeded permutation into k = ceil(|train| / s) folds of exactly s
    rows, s the size of the DCR's holdout, the last fold topped up by wrapping around, so every
    training row is seen (a single subsample the holdout's size would hide most memorised rows) and
    each fold is a random set of the holdout's size. A holdout larger than train is cut to a seeded
    sample of train's size for the DCR only (one fold: all of train); every other check uses all of it.
    """
    if len(train) < 2 or holdout.empty or synthetic.empty:
        raise BadInputError("privacy: need at least 2 train rows and some holdout and synthetic rows")
    if not 1 <= config.density_k < len(train) + len(holdout) or config.density_k > len(synthetic):
        raise BadInputError(f"privacy: density_k {config.density_k} needs that many synthetic and more real rows")
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    space = _GowerSpace.encode(
        [train, holdout, synthetic], schema, range_rows=len(train) + len(holdout), max_levels=config.onehot_max_levels
    )
    layout = _Layout.make(len(train), len(holdout), len(synthetic), np.random.default_rng(seed))
    seconds["encode"], tick = _lap(tick)
    fold_wins, fold_nearest, synthetic_nndr, to_synthetic = _synthetic_pass(space, layout, config)
    seconds["synthetic pass"], tick = _lap(tick)
    holdout_nndr, real_radius, isolation = _real_pass(space, layout, config)
    seconds["real pass"], tick = _lap(tick)
    subsets = _subset_shares(space, layout, [spec.name for spec in schema.learned], seed, config)
    seconds["subsets"], tick = _lap(tick)
    is_member = np.arange(layout.n_real) < layout.n_train
    top = isolated(isolation, is_member, share=config.isolated_share, minimum=config.isolated_k)
    logger.debug("privacy: seconds per stage %s", {key: round(value, 2) for key, value in seconds.items()})
    return DistanceEvidence(
        folds=layout.folds,
        fold_wins=fold_wins,
        fold_nearest=fold_nearest,
        synthetic_nndr=synthetic_nndr,
        holdout_nndr=holdout_nndr,
        real_rows=layout.real_rows,
        is_member=is_member,
        to_synthetic=to_synthetic,
        real_radius=real_radius,
        isolation=isolation,
        isolated_rows=layout.real_rows[top[is_member[top]]],
        subsets=subsets,
        seconds=seconds,
    )


@dataclass(frozen=True)
class _Layout:
    """Which encoded rows play which part: rows are stacked train, holdout, synthetic.

    `train`: the training rows in a seeded random order; fold f is positions fs to (f+1)s of that
    order (s = `fold_size`), the last fold wrapping around to the start. `holdout`: the holdout rows in
    a seeded random order, whose first s rows are the DCR's holdout. The real rows are `train` then
    `holdout`, the order of every per-real-row array and of the reference of both passes.
    """

    train: np.ndarray
    holdout: np.ndarray
    synthetic: np.ndarray

    @classmethod
    def make(cls, n_train: int, n_holdout: int, n_synthetic: int, rng: np.random.Generator) -> _Layout:
        real = n_train + n_holdout
        train = rng.permutation(n_train)
        return cls(train, n_train + rng.permutation(n_holdout), np.arange(real, real + n_synthetic))

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_real(self) -> int:
        return len(self.train) + len(self.holdout)

    @property
    def fold_size(self) -> int:
        return min(len(self.train), len(self.holdout))

    @property
    def folds(self) -> np.ndarray:
        """The training rows of each fold, one fold per row of the array."""
        n_folds = math.ceil(self.n_train / self.fold_size)
        return self.train[np.arange(n_folds * self.fold_size) % self.n_train].reshape(n_folds, self.fold_size)

    @property
    def real(self) -> np.ndarray:
        return np.concatenate([self.train, self.holdout])

    @property
    def real_rows(self) -> np.ndarray:
        """Each real row's position in its own frame (train or holdout)."""
        return np.concatenate([self.train, self.holdout - self.n_train])


def _synthetic_pass(
    space: _GowerSpace, layout: _Layout, config: PrivacyConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic rows against all real rows: fold wins (and who decided them) and NNDR per synthetic row.

    Also every real row's nearest synthetic rows, kept as a running column-wise top-k.
    """
    n_train, fold_size = layout.n_train, layout.fold_size
    n_folds = len(layout.folds)
    wins = np.empty((len(layout.synthetic), n_folds), dtype=np.float32)
    nearest = np.empty((len(layout.synthetic), n_folds), dtype=np.int64)
    nndr = np.empty(len(layout.synthetic))
    to_real = torch.full((min(max(NEIGHBOURS[-1], config.density_k), len(layout.synthetic)), layout.n_real), torch.inf)
    for start, distances in space.blocks(layout.synthetic, layout.real, config.chunk_rows):
        rows = slice(start, start + len(distances))
        block_wins, block_nearest = _fold_wins(distances, n_train, fold_size)
        wins[rows], nearest[rows] = block_wins.numpy(), block_nearest.numpy()
        nndr[rows] = _nndr(distances[:, :n_train])
        _merge_smallest(to_real, distances)
    return wins, nearest, nndr, to_real.T.double().numpy()


def _real_pass(space: _GowerSpace, layout: _Layout, config: PrivacyConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All real rows against each other, each row's self excluded.

    Gives the holdout's NNDR against train (the honest baseline), and every real row's distance to its
    `density_k`-th nearest and nearest other real row (the density attack's reference and the row's
    isolation), measured alike for members and non-members.
    """
    n_train = layout.n_train
    holdout_nndr = np.empty(layout.n_real - n_train)
    radius = np.empty(layout.n_real)
    isolation = np.empty(layout.n_real)
    for start, distances in space.blocks(layout.real, layout.real, config.chunk_rows, exclude_self=True):
        rows = slice(start, start + len(distances))
        isolation[rows] = distances.amin(dim=1).double().numpy()
        radius[rows] = isolation[rows]
        if config.density_k > 1:
            radius[rows] = distances.topk(config.density_k, dim=1, largest=False).values[:, -1].double().numpy()
        first_holdout = max(n_train - start, 0)
        if first_holdout < len(distances):
            holdout_nndr[start + first_holdout - n_train : start + len(distances) - n_train] = _nndr(
                distances[first_holdout:, :n_train]
            )
    return holdout_nndr, radius, isolation


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
    reference = layout.real[: layout.n_train + layout.fold_size]
    shares = []
    for picked in chosen:
        columns = tuple(names[i] for i in picked)
        blocks = space.subset(columns).blocks(rows, reference, config.chunk_rows)
        wins, nearest = (torch.cat(parts).numpy() for parts in zip(
            *(_fold_wins(d, layout.n_train, layout.fold_size) for _, d in blocks), strict=True
        ))
        shares.append(SubsetShare(columns, float(wins.mean()), _share_error(wins, nearest)))
    return tuple(shares)


def _share_error(wins: np.ndarray, nearest: np.ndarray) -> float:
    """Standard error of a DCR share, clustered by the real row that decided each comparison and by synthetic row.

    Synthetic rows whose nearest record (of a fold and the holdout) is the same real row win or lose
    together, and a real row can be the nearest of many: on Adult the clustered error is about 1.5
    times the binomial one. A synthetic row's comparisons with the folds share its holdout distance, so
    they move together too. Every (synthetic row, fold) comparison is thus an observation clustered two
    ways (Cameron, Gelbach and Miller 2011): V = V_decider + V_row - V_both, kept at least either one.
    """
    residual = wins - wins.mean()
    rows = np.broadcast_to(np.arange(len(wins))[:, None], wins.shape)
    by_decider = _clustered_square_sum(residual, nearest)
    by_row = _clustered_square_sum(residual, rows)
    by_both = _clustered_square_sum(residual, nearest.astype(np.int64) * len(wins) + rows)
    return math.sqrt(max(by_decider + by_row - by_both, by_decider, by_row)) / wins.size


def _clustered_square_sum(residual: np.ndarray, keys: np.ndarray) -> float:
    """Sum over clusters (equal keys) of the squared sum of their residuals."""
    _, cluster = np.unique(keys.ravel(), return_inverse=True)
    return float((np.bincount(cluster.ravel(), weights=residual.ravel()) ** 2).sum())


def _merge_smallest(best: torch.Tensor, block: torch.Tensor) -> None:
    """Update `best` in place to the len(best) smallest values per column of `best` and `block`, ascending.

    Only the columns whose minimum in the block beats the current k-th smallest are re-ranked: after
    the first few chunks that is a small minority, which makes the running top-k cheap. They are
    re-ranked by k successive minima (each taken out once read), several times faster than `topk`
    along columns on the CPU.
    """
    improved = torch.nonzero(block.amin(dim=0) < best[-1]).squeeze(1)
    if len(improved):
        merged = torch.cat([best[:, improved], block[:, improved]])
        columns = torch.arange(len(improved))
        for rank in range(len(best)):
            values, rows = merged.min(dim=0)
            best[rank, improved] = values
            merged[rows, columns] = torch.inf


def _fold_wins(distances: torch.Tensor, n_train: int, fold_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row and fold: whether the fold's nearest record beats the holdout's, and the column of the nearer.

    The first is 1 if the fold's nearest record is nearer than the holdout's, 1/2 on a tie; the second is
    the column of the nearer of the two (the fold's on a tie).

    `distances` run over the training rows in fold order, then the DCR's holdout (its first
    `fold_size` rows). The last fold's wrapped rows are read from the start rather than measured twice.
    """
    n_folds = math.ceil(n_train / fold_size)
    whole = (n_folds - 1) * fold_size
    wrapped = n_folds * fold_size - n_train
    last, last_at = distances[:, whole:n_train].min(dim=1, keepdim=True)
    last_at += whole
    if wrapped:
        head, head_at = distances[:, :wrapped].min(dim=1, keepdim=True)
        last_at = torch.where(head < last, head_at, last_at)
        last = torch.minimum(last, head)
    first, first_at = distances[:, :whole].view(len(distances), n_folds - 1, fold_size).min(dim=2)
    first_at += torch.arange(n_folds - 1) * fold_size
    to_folds, fold_at = torch.cat([first, last], dim=1), torch.cat([first_at, last_at], dim=1)
    to_holdout, holdout_at = distances[:, n_train : n_train + fold_size].min(dim=1, keepdim=True)
    wins = (to_folds < to_holdout).float() + (to_folds == to_holdout).float() / 2
    return wins, torch.where(to_folds <= to_holdout, fold_at, holdout_at + n_train)


def _nndr(distances: torch.Tensor) -> np.ndarray:
    """Nearest over second-nearest distance per row; 0/0 (two identical records) counts as 1.

    The second nearest is the minimum once the nearest is set aside (it is put back afterwards):
    several times faster than `topk` on the CPU.
    """
    first, at = distances.min(dim=1)
    rows = torch.arange(len(distances))
    distances[rows, at] = torch.inf
    second = distances.amin(dim=1)
    distances[rows, at] = first
    first64, second64 = first.double(), second.double()
    return torch.where(second64 > 0, first64 / second64.clamp(min=1e-300), 1.0).numpy()


def _lap(tick: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - tick, now


@dataclass(frozen=True)
class CopyExcess:
    """Exact copies of training rows in the synthetic table against what real rows show by themselves.

    `rate`: share of synthetic rows equal to some training row. `honest_rate`: the same for real rows
    never trained on: holdout rows against the training rows, and training rows against the other
    training rows (each row left out of its own reference), pooled, so a table's natural duplicates are
    measured on every real row rather than on the holdout alone. `excess_ci`: the synthetic rate less
    the count of copies a faithful table of its size shows at most (at least) at level alpha, predicted
    from the honest rate by a beta-binomial; its lower bound is above 0 only for copies beyond chance.
    """

    rate: float
    honest_rate: float
    excess_ci: tuple[float, float]


def copy_excess(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, alpha: float
) -> CopyExcess:
    """How many synthetic rows copy a training row, beyond what real rows never trained on do."""
    return CopyCounts.of(row_keys(train, schema), row_keys(holdout, schema)).judge(
        row_keys(synthetic, schema), alpha)


@dataclass(frozen=True)
class CopyCounts:
    """The training rows' keys (sorted) and how many real rows equal a training row by themselves.

    Kept apart from the synthetic rows so that a synthetic table too big for memory is judged in parts
    (`copies_in`) against every training row, and the excess judged once on the totals (`excess`).
    """

    train_keys: np.ndarray  # sorted, repeats kept
    found: int  # holdout rows equal to a training row, plus training rows equal to another training row
    seen: int  # real rows those were looked for in

    @classmethod
    def of(cls, train_keys: np.ndarray, holdout_keys: np.ndarray) -> CopyCounts:
        """The honest counts of these real rows (each training row left out of its own reference).

        Sorting and searching, never `np.unique`/`np.isin`, so the working memory is a few bits a row beside the
        keys: 80 million training keys (640 MB) need no second copy. Keys already sorted are used as they are.
        """
        keys = train_keys if len(train_keys) < 2 or bool(np.all(train_keys[1:] >= train_keys[:-1])) \
            else np.sort(train_keys)
        repeated = keys[1:] == keys[:-1]
        twins = np.zeros(len(keys), dtype=bool)  # training rows with an equal row among the others
        twins[1:] |= repeated
        twins[:-1] |= repeated
        counts = cls(keys, 0, 0)
        held = counts.copies_in(holdout_keys)
        return cls(keys, held + int(twins.sum()), len(keys) + len(holdout_keys))

    def copies_in(self, synthetic_keys: np.ndarray) -> int:
        """How many of these synthetic rows equal some training row."""
        at = np.searchsorted(self.train_keys, synthetic_keys).clip(max=max(len(self.train_keys) - 1, 0))
        return int((self.train_keys[at] == synthetic_keys).sum()) if len(self.train_keys) else 0

    def judge(self, synthetic_keys: np.ndarray, alpha: float) -> CopyExcess:
        """The copy evidence of one synthetic table given whole."""
        return self.excess(self.copies_in(synthetic_keys), len(synthetic_keys), alpha)

    def excess(self, copies: int, rows: int, alpha: float) -> CopyExcess:
        """`copies` among `rows` synthetic rows against the honest rate, bounded by a beta-binomial at `alpha`."""
        chance = stats.betabinom(rows, self.found + 1, self.seen - self.found + 1)
        return CopyExcess(
            rate=copies / rows,
            honest_rate=self.found / self.seen,
            excess_ci=((copies - chance.ppf(1 - alpha)) / rows, (copies - chance.ppf(alpha)) / rows),
        )


def exact_match_rate(query: pd.DataFrame, reference: pd.DataFrame, schema: Schema) -> float:
    """Share of `query` rows equal to some `reference` row on the learned columns (see `row_keys`)."""
    return float(np.isin(row_keys(query, schema), row_keys(reference, schema)).mean())


def row_keys(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """A 64-bit hash of each row's learned columns: equal rows, equal keys, whatever frame or part a row is in.

    Numerical values are compared at float32 precision (about 7 significant digits), so a copied
    value that went through a generator's float decoding still counts as copied; datetimes are
    compared to the microsecond and nulls equal nulls. Categories and booleans are compared as written
    (`True` and a text `True` are one value), so a table hashed in parts gives every part's rows the same keys.
    """
    columns: dict[str, np.ndarray] = {}
    for spec in schema.of_kind(*_NUMERIC):
        number = _as_number(frame[spec.name], spec.kind)
        rounded = number if spec.kind is ColumnKind.DATETIME else number.astype(np.float32).astype(np.float64)
        columns[spec.name] = np.where(np.isnan(rounded), np.nan, rounded + 0.0)  # one NaN bit pattern, no -0.0
    for spec in schema.of_kind(*_DISCRETE):
        codes, uniques = pd.factorize(frame[spec.name])
        written = pd.util.hash_array(np.array([str(u) for u in uniques] + [""], dtype=object), categorize=False)
        columns[spec.name] = np.where(codes < 0, _NULL_KEY, written[codes])
    return pd.util.hash_pandas_object(pd.DataFrame(columns, index=range(len(frame))), index=False).to_numpy()


def gower_distance_chunks(
    query: pd.DataFrame,
    reference: pd.DataFrame,
    schema: Schema,
    *,
    chunk_rows: int = 512,
    onehot_max_levels: int = 512,
    ranges: Ranges | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Gower distances from each chunk of `query` rows to every `reference` row, as (first row, matrix).

    Numerical ranges come from `reference`, or are `ranges` (`numeric_ranges`) when the distances must be those of
    a bigger table's space. A categorical column with more than `onehot_max_levels`
    distinct values is compared code to code instead of through the one-hot product, so the one-hot
    matrix stays small (|reference| x levels floats) whatever the cardinality.
    """
    if query.empty or reference.empty:
        raise BadInputError("privacy: cannot measure distances to or from an empty frame")
    space = _GowerSpace.encode([reference, query], schema, range_rows=len(reference), max_levels=onehot_max_levels,
                               ranges=ranges)
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
    def encode(cls, frames: Sequence[pd.DataFrame], schema: Schema, *, range_rows: int, max_levels: int,
               ranges: Ranges | None = None) -> _GowerSpace:
        """Encode the stacked frames, with numerical ranges taken from their first `range_rows` rows (or `ranges`)."""
        numeric, codes = _learned_arrays(frames, schema)
        numeric_names = np.array([spec.name for spec in schema.of_kind(*_NUMERIC)], dtype=object)
        discrete_names = np.array([spec.name for spec in schema.of_kind(*_DISCRETE)], dtype=object)
        if len(numeric_names) + len(discrete_names) == 0:
            raise BadInputError("privacy: the schema has no learned columns to compare")
        embedded, numeric_owner = _embed(numeric, ranges or _ranges_of(numeric[:range_rows]), numeric_names)
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


Ranges = tuple[np.ndarray, np.ndarray]  # each numerical learned column's low end and span


def numeric_ranges(frames: Sequence[pd.DataFrame], schema: Schema) -> Ranges:
    """The ranges Gower distances scale numbers by: each numerical learned column's over the stacked frames."""
    return _ranges_of(_learned_arrays(frames, schema)[0])


def _ranges_of(numeric: np.ndarray) -> Ranges:
    real = pd.DataFrame(numeric)
    return np.nan_to_num(real.min().to_numpy()), (real.max() - real.min()).to_numpy()


def _embed(numeric: np.ndarray, ranges: Ranges, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range-scaled values laid out so that L1 distance is Gower's, nulls included; and each part's column.

    A value v, scaled to [0, 1] by `ranges` (a value outside it counts as the nearer end), stays v in a column
    without nulls. In a column with nulls it becomes (v/2,
    -v/2) and a null (1/2, 1/2): two values are |a - b| apart, a null is exactly 1 from any value and
    0 from another null. Only columns with nulls pay for the second part, which halves the L1 work
    on tables without them.
    """
    low, span = ranges
    scaled = np.clip((numeric - low) / np.where(span > 0, span, 1.0), 0.0, 1.0)
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


def _dcr(audit: PrivacyAudit, context: Context) -> Iterator[Reading]:
    yield Reading(audit.distances.dcr_share, interval=audit.distances.dcr_share_ci)


def _exact_copies(audit: PrivacyAudit, context: Context) -> Iterator[Reading]:
    d = audit.distances
    yield Reading(d.exact_match_excess, interval=d.exact_match_excess_ci,
                  label=f"Synthetic rows that copy a training row exactly, beyond the holdout's own rate "
                        f"({d.exact_match_rate:.4f} vs {d.holdout_exact_match_rate:.4f})")


def _nndr_share(audit: PrivacyAudit, context: Context) -> Iterator[Reading]:
    yield Reading(audit.distances.nndr_low_share, interval=audit.distances.nndr_low_share_ci)


def _subsets(audit: PrivacyAudit, context: Context) -> Iterator[Reading]:
    d = audit.distances
    yield Reading(d.subset_dcr_share, interval=d.subset_dcr_share_ci,
                  label=f"Worst column subset ({', '.join(d.subset_columns)}): rows nearer to training (share)")


declare(CheckSpec(
    name="privacy.dcr_share", label="Synthetic rows nearer to training than to unseen rows (share)", direction="<=",
    threshold=Setting("max_dcr_share", 0.52, "share of synthetic rows closer to train than to holdout (lower bound)",
                      gt=0.5, le=1),
    rule=Rule.BOUNDED, evidence="privacy", read=_dcr, order=110,
    refuses="lower bound of the share of synthetic rows nearer to training than to the holdout (folds the "
            "holdout's size; honest 0.5) > {threshold}",
))
declare(CheckSpec(
    name="privacy.exact_match_rate",
    label="Synthetic rows that copy a training row exactly, beyond the holdout's rate", direction="<=",
    threshold=Setting("exact_match_tolerance", 0.0,
                      "exact-copy rate beyond real unseen rows' own rate (lower bound) at most", ge=0, le=1),
    rule=Rule.BOUNDED, evidence="privacy", read=_exact_copies, order=120,
    refuses="lower bound of the rate of exact copies of training rows beyond what real unseen rows show (holdout, "
            "and training rows against the others) > {threshold}",
))
declare(CheckSpec(
    name="privacy.nndr_low_share", label="Synthetic rows sitting on one training record, away from the rest (share)",
    direction="<=",
    threshold=Setting("max_nndr_low_share", 0.06, "rows sitting on one training record (lower bound)", gt=0, le=1),
    rule=Rule.BOUNDED, evidence="privacy", read=_nndr_share, order=130,
    refuses="lower bound of the share of synthetic rows whose nearest-neighbour distance ratio is below the "
            "holdout's 5th percentile (honest 0.05) > {threshold}",
))
declare(CheckSpec(
    name="privacy.subset_dcr_share",
    label="Worst column subset: rows nearer to training than to unseen rows (share)", direction="<=",
    threshold=Setting("max_subset_dcr_share", 0.52, "worst column subset's DCR share (lower bound)", gt=0.5, le=1),
    rule=Rule.BOUNDED, evidence="privacy", read=_subsets, order=140,
    refuses="lower bound of the worst DCR share over seeded column subsets > {threshold}",
))
