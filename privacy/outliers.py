"""Outlier protection: the riskiest real rows must not reappear in the synthetic table more when trained on than not.

A record far from every other record (the one 90-year-old with a capital gain of 99,999) is the
easiest to re-identify, and the one an average-case check like the DCR share overlooks: copying it
moves a share of 30,000 rows by 1/30,000. So the most isolated real rows are followed one by one: a
synthetic row closer to one than `near_fraction` of its isolation (its distance to the nearest other
real row, training and holdout alike) reproduces it, or nearly.

Even real rows never trained on get "reproduced" now and then (a fresh row can land next to an
outlier, and real tables hold near-twins), so a count alone refuses honest data. Isolation is measured
the same way for members and non-members, as many of the most isolated rows are taken from each group,
and the check is whether members are reproduced more often than equally isolated non-members. A row
with an exact twin elsewhere among the real rows has isolation 0 and is never isolated.

Distances come from `privacy.distance`; this module only picks the rows and compares the counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from generators.tabular.checks import CheckSpec, Context, Reading, Rule, Setting, declare
from privacy.membership import DEFAULT_ALPHA, excess_p_value, rate_difference

if TYPE_CHECKING:
    from privacy.audit import PrivacyAudit

# Calibrated on UCI Adult (benchmarks/privacy_timing.py --calibrate, 60/20/20 splits of real rows): over 20
# honest 8,000-row splits the smallest ratio among the 20 most isolated rows was 0.39 (median 0.67; 0.68 and
# 0.69 on two full-size splits), while a planted copy sits at 0 and a copy with noise of 1% of each column's
# standard deviation at 0.001. 0.1 stays 4x below the honest minimum and still counts copies with ~50x that noise.
NEAR_FRACTION = 0.1


@dataclass(frozen=True)
class OutlierProtection:
    """The most isolated real rows and how many of them a synthetic row reproduces, by membership.

    `members`, `nonmembers`: the isolated rows (indices into the arrays given), most isolated first;
    `members_reproduced`, `nonmembers_reproduced`: how many of each have a synthetic row nearer than
    `near_fraction` times their isolation. `excess`: the members' reproduced rate less the
    non-members', `excess_ci` its Newcombe interval at alpha, `p_value` the one-sided Fisher test of
    the same. `min_ratio`: the smallest nearest-synthetic distance over isolation among the isolated
    members (inf when there are none).
    """

    members: np.ndarray
    nonmembers: np.ndarray
    members_reproduced: int
    nonmembers_reproduced: int
    excess: float
    excess_ci: tuple[float, float]
    p_value: float
    min_ratio: float
    near_fraction: float


def isolated(isolation: np.ndarray, is_member: np.ndarray, *, share: float, minimum: int) -> np.ndarray:
    """Indices of the k most isolated members and the k most isolated non-members, most isolated first.

    k is the same for both groups (`share` of the smaller group's rows with a positive isolation, at least
    `minimum`, at most all of them), so the comparison is balanced whatever the split: with a training
    part three times the holdout, a pooled ranking would hold three members per non-member, and 20
    reproduced members could not be told from chance at a strict level. The reproduction radius is a
    fixed fraction of each row's own isolation, so a rarer neighbourhood gets a proportionally larger
    ball, and fresh rows reproduce the members' more isolated top k by chance no more often than the
    non-members' top k.
    """
    isolation = np.asarray(isolation, dtype=np.float64)
    is_member = np.asarray(is_member, dtype=bool)
    groups = [np.flatnonzero((isolation > 0) & side) for side in (is_member, ~is_member)]
    smaller = min(len(group) for group in groups)
    k = min(smaller, max(minimum, math.ceil(share * smaller)))
    picked = np.concatenate([group[np.argsort(-isolation[group], kind="stable")[:k]] for group in groups])
    return picked[np.argsort(-isolation[picked], kind="stable")]


def outlier_protection(
    isolation: np.ndarray,
    nearest_synthetic: np.ndarray,
    is_member: np.ndarray,
    *,
    near_fraction: float = NEAR_FRACTION,
    share: float = 0.01,
    minimum: int = 20,
    alpha: float = DEFAULT_ALPHA,
) -> OutlierProtection:
    """Compare how often the most isolated members and non-members have a synthetic row near them."""
    isolation = np.asarray(isolation, dtype=np.float64)
    nearest = np.asarray(nearest_synthetic, dtype=np.float64)
    is_member = np.asarray(is_member, dtype=bool)
    top = isolated(isolation, is_member, share=share, minimum=minimum)
    ratio = nearest[top] / isolation[top]
    reproduced = ratio < near_fraction
    in_members = is_member[top]
    counts = (int(reproduced[in_members].sum()), int(in_members.sum()))
    base = (int(reproduced[~in_members].sum()), int((~in_members).sum()))
    excess, excess_ci = rate_difference(*counts, *base, alpha)
    return OutlierProtection(
        members=top[in_members],
        nonmembers=top[~in_members],
        members_reproduced=counts[0],
        nonmembers_reproduced=base[0],
        excess=excess,
        excess_ci=excess_ci,
        p_value=excess_p_value(*counts, *base),
        min_ratio=float(ratio[in_members].min(initial=np.inf)),
        near_fraction=near_fraction,
    )


def _isolated(audit: PrivacyAudit, context: Context) -> Iterator[Reading]:
    d = audit.distances
    yield Reading(d.isolated_excess, interval=d.isolated_excess_ci,
                  label=f"Most isolated records reproduced: {d.isolated_reproduced} of {d.isolated_k} training rows "
                        f"against {d.isolated_holdout_reproduced} of {d.isolated_holdout_k} unseen rows (excess rate)")


declare(CheckSpec(
    name="privacy.isolated_reproduced",
    label="Most isolated records reproduced, training rows beyond unseen rows (rate)", direction="<=",
    threshold=Setting("max_isolated_excess", 0.0,
                      "isolated training rows reproduced beyond unseen ones (lower bound, rate)", ge=0, le=1),
    rule=Rule.BOUNDED, evidence="privacy", read=_isolated, order=160,
    refuses="lower bound of the rate at which the most isolated training rows have a synthetic row within 0.1 of "
            "their isolation, beyond as many equally isolated holdout rows > {threshold}",
))
