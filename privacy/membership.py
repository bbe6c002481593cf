"""Membership inference: can an attacker holding the synthetic table tell training rows from unseen ones?

The attack is scored on equal numbers of members (training rows) and non-members (holdout rows) by
its AUC: 0.5 means the synthetic table says nothing about who was in the training set, 1.0 that it
gives every member away. Both attacks here read distances already measured by `privacy.distance`,
so this module is plain arithmetic on arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.schema import BadInputError

# Added to k-NN radii before taking logs, so that a radius of 0 (k identical rows) stays finite.
# Far below any Gower distance between two distinct rows that float32 resolves.
_RADIUS_FLOOR = 1e-9


@dataclass(frozen=True)
class AucEstimate:
    """`auc`: probability that a random member outscores a random non-member (ties count 1/2).
    `ci`: the 2.5 and 97.5 percentiles of the AUC over stratified bootstrap resamples."""

    auc: float
    ci: tuple[float, float]


def distance_scores(nearest_synthetic: np.ndarray) -> np.ndarray:
    """The distance attack: the closer a real row's nearest synthetic row, the likelier it was trained on."""
    return -np.asarray(nearest_synthetic, dtype=np.float64)


def density_ratio_scores(synthetic_radius: np.ndarray, reference_radius: np.ndarray) -> np.ndarray:
    """The density attack (DOMIAS-like): how much denser the synthetic rows are around a point than the
    real population is.

    A generator that memorises piles synthetic rows onto its training records, so the synthetic
    density there exceeds the population's; a plain distance attack cannot tell that from a point
    that merely lies in a dense region, the ratio can. Both densities are k-nearest-neighbour
    estimates, p(x) ~ k / (n r_k(x)^d), with r_k the distance to the k-th nearest synthetic row and to
    the k-th nearest row of a real reference sample disjoint from the scored rows. The log ratio is
    d (log r_ref - log r_syn) plus a constant, and an AUC depends only on the ranking, so neither the
    unknown dimension d of a Gower space nor the sample sizes need to be known.
    """
    syn = np.asarray(synthetic_radius, dtype=np.float64)
    ref = np.asarray(reference_radius, dtype=np.float64)
    return np.log(ref + _RADIUS_FLOOR) - np.log(syn + _RADIUS_FLOOR)


def attack_auc(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, *, resamples: int = 200, seed: int = 0
) -> AucEstimate:
    """Rank AUC of an attack's scores, with a stratified bootstrap 95% interval.

    Vectorised over resamples: each resample is a count per row (how often it was drawn), and a
    member's wins are read off the cumulative counts of the sorted non-member scores, so no resample
    sorts anything.
    """
    members = np.asarray(member_scores, dtype=np.float64)
    nonmembers = np.sort(np.asarray(nonmember_scores, dtype=np.float64))
    if members.size == 0 or nonmembers.size == 0:
        raise BadInputError("privacy: a membership attack needs both members and non-members")
    if np.isnan(members).any() or np.isnan(nonmembers).any():
        return AucEstimate(float("nan"), (float("nan"), float("nan")))
    below = np.searchsorted(nonmembers, members, side="left")
    at_most = np.searchsorted(nonmembers, members, side="right")
    rng = np.random.default_rng(seed)
    member_counts = np.vstack([np.ones(members.size), _draw_counts(rng, members.size, resamples)])
    nonmember_counts = np.vstack([np.ones(nonmembers.size), _draw_counts(rng, nonmembers.size, resamples)])
    cumulative = np.hstack([np.zeros((resamples + 1, 1)), nonmember_counts.cumsum(axis=1)])
    wins = (cumulative[:, below] + cumulative[:, at_most]) / 2  # strictly below, plus half the ties
    aucs = (member_counts * wins).sum(axis=1) / (members.size * nonmembers.size)
    low, high = np.percentile(aucs[1:], [2.5, 97.5])
    return AucEstimate(float(aucs[0]), (float(low), float(high)))


def _draw_counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """How often each of n rows is drawn in each of `resamples` bootstrap samples of size n."""
    draws = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    return np.bincount(draws.ravel(), minlength=n * resamples).reshape(resamples, n).astype(np.float64)
