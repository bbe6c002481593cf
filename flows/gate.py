"""The gate's vocabulary and its judgement: each check a release must pass, and the verdict written into
the manifest.

A release is published only if every check passes. Every check decides on evidence, not on a point
estimate that noise can push over a line; the null hypothesis is always "this release is no worse than
real rows never trained on would be", and each check says how it was decided (`rule`):

- a risk with a confidence interval (privacy) fails only when its LOWER bound exceeds the threshold;
- a fidelity score fails only when it is past the threshold AND the difference from the real rows is
  significant (Holm-adjusted p-value below `alpha` within its family of per-column or per-pair checks):
  on 67 rows a column-shape score of 0.70 is what real unseen rows score too, on 30,000 it is a fault;
- a count or an outcome that has no noise (PII found, unscored columns, expectations) is compared as is.

`alpha` is the chance that one check (or one family of per-column checks) refuses honest data: with
about twenty of them, an honest table is refused by chance at most a few percent of the time, far less
in practice, where most checks are also far from their thresholds. A check that does not apply (no
utility to keep, an attack with nothing to attack) is recorded as passed with its reason; a value that
could not be computed fails, since a number that could not be computed vouches for nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from privacy.audit import PrivacyAudit
from validation.audit import FidelityAudit
from validation.comparison import holm

Comparison = Literal[">=", "<="]

# What each fixed check means, in the words a data steward reads in the report and the manifest.
LABELS = {
    "fidelity.quality": "Overall fidelity (sdmetrics quality score)",
    "fidelity.diagnostic": "Valid values and structure (sdmetrics diagnostic score)",
    "fidelity.unscored": "Columns or pairs that could not be scored",
    "utility.lift_kept": "Share of the real model's lift over guessing that training on synthetic rows keeps",
    "privacy.pii_leaks": "Real identifiers (id or PII values) found anywhere in the output (cells)",
    "privacy.dcr_share": "Synthetic rows nearer to training than to unseen rows (share)",
    "privacy.exact_match_rate": "Synthetic rows that copy a training row exactly, beyond the holdout's rate",
    "privacy.nndr_low_share": "Synthetic rows sitting on one training record, away from the rest (share)",
    "privacy.subset_dcr_share": "Worst column subset: rows nearer to training than to unseen rows (share)",
    "privacy.isolated_reproduced": "Most isolated records reproduced, training rows beyond unseen rows (rate)",
    "privacy.singling_out_risk": "Singling-out risk, multivariate (attack beyond control)",
    "privacy.singling_out_univariate_risk": "Singling-out risk, univariate (attack beyond control)",
    "privacy.linkability_risk": "Linkability risk (attack beyond control)",
    "privacy.inference_risk": "Attribute inference risk, worst column (attack beyond control)",
    "privacy.budget": "Differential-privacy budget spent with this release (epsilon)",
}

# The reason a significance test exists: how a shortfall that noise explains is described in a rule.
_WITHIN_NOISE = "or within what real unseen rows of this size show"


@dataclass(frozen=True)
class Check:
    """One named number held against its threshold; `comparison` says which side passes.

    `interval`: the value's confidence interval at the gate's alpha (two-sided 1 - 2 alpha), when the
    check decides on a bound. `p_value`: the (family-adjusted) p-value of "no worse than real unseen
    rows", when the check decides on significance. `rule`: how it was decided, in words.
    `applicable`: False when there is nothing to judge (then `passed` is True and `rule` says why).
    """

    name: str
    value: float
    threshold: float
    passed: bool
    comparison: Comparison
    label: str = ""
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    rule: str = ""
    applicable: bool = True

    @classmethod
    def plain(cls, name: str, value: float, threshold: float, comparison: Comparison, label: str = "") -> Check:
        """A number without noise (a count, an outcome) against its threshold; NaN fails."""
        return cls(name, float(value), float(threshold), _on_side(value, threshold, comparison), comparison, label,
                   rule=f"{_sign(comparison)} {threshold:g}")

    @classmethod
    def bounded(cls, name: str, value: float, interval: tuple[float, float], threshold: float, alpha: float,
                comparison: Comparison = "<=", label: str = "") -> Check:
        """A risk decided by its confidence bound: `<=` fails only when the lower bound is above the threshold
        (`>=`: only when the upper bound is below it)."""
        low, high = float(interval[0]), float(interval[1])
        bound, side = (low, "lower") if comparison == "<=" else (high, "upper")
        level = f"{100 * (1 - alpha):g}%"
        return cls(name, float(value), float(threshold), _on_side(bound, threshold, comparison), comparison, label,
                   interval=(low, high), rule=f"{side} {level} bound {_sign(comparison)} {threshold:g}")

    @classmethod
    def tested(cls, name: str, value: float, p_value: float, threshold: float, alpha: float,
               comparison: Comparison = ">=", label: str = "") -> Check:
        """A score that fails only when past its threshold and significantly worse than real unseen rows."""
        passed = _on_side(value, threshold, comparison) or (not math.isnan(value) and p_value >= alpha)
        return cls(name, float(value), float(threshold), bool(passed), comparison, label, p_value=float(p_value),
                   rule=f"{_sign(comparison)} {threshold:g}, {_WITHIN_NOISE} (p ≥ {alpha:g})")

    @classmethod
    def not_applicable(cls, name: str, threshold: float, comparison: Comparison, reason: str, label: str = "") -> Check:
        """Nothing to judge: recorded, passed, with the reason."""
        return cls(name, math.nan, float(threshold), True, comparison, label, rule=f"not applicable: {reason}",
                   applicable=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or LABELS.get(self.name, self.name),
            "value": self.value,
            "threshold": self.threshold,
            "comparison": self.comparison,
            "interval": list(self.interval) if self.interval is not None else None,
            "p_value": self.p_value,
            "rule": self.rule,
            "applicable": self.applicable,
            "passed": self.passed,
        }


def _on_side(value: float, threshold: float, comparison: Comparison) -> bool:
    return bool(value >= threshold) if comparison == ">=" else bool(value <= threshold)


def _sign(comparison: Comparison) -> str:
    return "≥" if comparison == ">=" else "≤"


@dataclass(frozen=True)
class Verdict:
    """All checks of one run; it passes only if there is at least one check and every one passed."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [check.to_dict() for check in self.checks]}


@dataclass(frozen=True)
class GateThresholds:
    """Where each check's line is drawn (the defaults are calibrated in BENCHMARKS.md, "Gate calibration":
    real rows never trained on pass, on tables nobody tuned the gate on, the planted faults and leaks do not).

    `alpha`: the chance that one check (or one family of per-column or per-pair checks) refuses real
    unseen rows by chance; each interval is at this level and each p-value is held against it.

    Fidelity: `min_quality` (sdmetrics' overall score), `min_diagnostic` (sdmetrics' validity and
    structure score; its significance is the synthetic rows' share of values outside the real domain
    against the holdout's own share: fresh real values fall past n training extremes with probability
    2/(n+1)), `max_fidelity_errors` (columns or pairs sdmetrics failed to score although they have a
    score: they drop out of its average silently; constant and all-null columns are judged exactly by
    the column checks instead), `min_column_shape` (each column's KS/TV complement), `min_pair_trend`
    (1 - |synthetic - real association| of each strongly associated pair, Spearman or Cramér's V: a
    shuffled column keeps its shape but loses its partner), `max_null_drift` (absolute change of a column's
    null fraction), and `min_category_coverage` (share of a column's common categories present; 1.0:
    none lost). `min_utility_kept`: the share of the real model's lift over the trivial baseline that a
    model trained on synthetic rows keeps, when the real model beats the baseline significantly.

    Privacy, each judged by the lower bound of its interval: `max_pii_leaks` (real identifier cells in the
    output, exact), `max_dcr_share` (equal-size DCR share; honest 0.5), `exact_match_tolerance` (exact
    copies beyond the holdout's own duplicate rate), `max_nndr_low_share` (honest 0.05),
    `max_subset_dcr_share`, `max_membership_tpr` (each membership attack's true-positive rate at 0.5%
    false positives; honest 0.005: any attack sure of more members than chance refuses), `max_isolated_excess`
    (the most isolated training rows reproduced more often than as many equally isolated unseen rows) and
    the anonymeter-style risks.
    """

    alpha: float = 0.001
    min_quality: float = 0.75
    min_diagnostic: float = 0.999
    max_fidelity_errors: int = 0
    min_column_shape: float = 0.75
    min_pair_trend: float = 0.7
    max_null_drift: float = 0.05
    min_category_coverage: float = 1.0
    min_utility_kept: float = 0.75
    max_pii_leaks: int = 0
    max_dcr_share: float = 0.52
    exact_match_tolerance: float = 0.0
    max_nndr_low_share: float = 0.06
    max_subset_dcr_share: float = 0.52
    max_membership_tpr: float = 0.005
    max_isolated_excess: float = 0.0
    max_singling_out_risk: float = 0.02
    max_linkability_risk: float = 0.02
    max_inference_risk: float = 0.15


@dataclass(frozen=True)
class BudgetUse:
    """A differential-privacy release against the dataset's budget: `spent` before it, `requested` by it."""

    spent: float
    requested: float
    budget: float


def judge(
    fidelity: FidelityAudit,
    privacy: PrivacyAudit,
    thresholds: GateThresholds,
    budget: BudgetUse | None = None,
    rebalanced: str | None = None,
) -> Verdict:
    """Hold the fidelity and privacy evidence against the thresholds. `rebalanced`: the column whose values
    were deliberately given equal shares; its shape and its pairs' trends differ from the real table's by
    design, so they are not held to the floors (the overall quality still counts them)."""
    return Verdict((*fidelity_checks(fidelity, thresholds, rebalanced), *privacy_checks(privacy, thresholds, budget)))


# The utility check applies only when the real model beats the trivial baseline at this level: below it,
# there is no lift whose share could be kept.
_UTILITY_EVIDENCE = 0.05


def fidelity_checks(audit: FidelityAudit, t: GateThresholds, rebalanced: str | None = None) -> Iterator[Check]:
    columns = audit.columns
    shapes = {name: c for name, c in columns.shapes.items() if name != rebalanced}
    pairs = {name: c for name, c in columns.pairs.items() if rebalanced not in name.split("|", 1)}
    shape_p = holm({name: c.p_value for name, c in shapes.items()})
    # A stronger relationship is a more important one to keep: its share of the false-alarm budget grows
    # with the square of the real association (the variance it explains).
    pair_p = holm({name: c.p_value for name, c in pairs.items()},
                  {name: c.real_association**2 for name, c in pairs.items()})
    null_p = holm({name: c.p_value for name, c in columns.nulls.items()})
    yield Check.tested("fidelity.quality", audit.quality.quality, min([*shape_p.values(), *pair_p.values(), 1.0]),
                       t.min_quality, t.alpha)
    yield Check.tested("fidelity.diagnostic", audit.diagnostic, audit.validity.p_value, t.min_diagnostic, t.alpha)
    yield Check.plain("fidelity.unscored", len(audit.quality.errors), t.max_fidelity_errors, "<=")
    for name, shape in shapes.items():
        detail = f", {columns.skipped[name]}: judged exactly" if name in columns.skipped else ""
        yield Check.tested(f"fidelity.column_shape[{name}]", shape.value, shape_p[name], t.min_column_shape,
                           t.alpha, label=f"Shape of column {name} ({shape.method}{detail})")
    for pair, association in pairs.items():
        a, b = pair.split("|", 1)
        yield Check.tested(
            f"fidelity.pair_trend[{pair}]", association.value, pair_p[pair], t.min_pair_trend, t.alpha,
            label=f"Association between {a} and {b} (1 - |change|; {association.method}: real "
                  f"{association.real_association:.2f}, synthetic {association.synthetic_association:.2f})")
    for name, nulls in columns.nulls.items():
        yield Check.tested(f"fidelity.null_drift[{name}]", 1.0 - nulls.value, null_p[name], t.max_null_drift,
                           t.alpha, "<=", f"Change of the null fraction of {name}")
    for name, coverage in audit.coverage.coverage.items():
        lost = audit.coverage.missing.get(name, ())
        detail = f" (lost: {', '.join(lost[:5])}{', …' if len(lost) > 5 else ''})" if lost else ""
        yield Check.plain(f"fidelity.category_coverage[{name}]", coverage, t.min_category_coverage, ">=",
                          f"Categories of {name} expected at least {audit.coverage.expected_count:.0f} times, "
                          f"present{detail}")
    for outcome in audit.expectations.outcomes:
        yield Check.plain(f"expectations.{outcome.expectation}[{outcome.column or 'table'}]",
                          1.0 if outcome.success else 0.0, 1.0, ">=", f"Expectation: {outcome.name}")
    if audit.utility is not None:
        yield _utility_check(audit, t)


def _utility_check(audit: FidelityAudit, t: GateThresholds) -> Check:
    u = audit.utility
    assert u is not None
    label = (f"Predicting {u.target} ({u.metric}): real {u.real_score:.3f}, synthetic {u.synthetic_score:.3f}, "
             f"guessing {u.baseline_score:.3f}")
    if not u.real_lift_p < _UTILITY_EVIDENCE:
        reason = f"the real model predicts {u.target} no better than guessing (p = {u.real_lift_p:.2g})"
        return Check.not_applicable("utility.lift_kept", t.min_utility_kept, ">=", reason, label)
    return Check.tested("utility.lift_kept", u.lift_kept, u.gap_p, t.min_utility_kept, t.alpha, label=label)


_ATTACKS = ("distance", "density", "ensemble")


def privacy_checks(audit: PrivacyAudit, t: GateThresholds, budget: BudgetUse | None) -> Iterator[Check]:
    d, a = audit.distances, audit.attacks
    yield Check.plain("privacy.pii_leaks", audit.pii.leaked_cells, t.max_pii_leaks, "<=")
    yield Check.bounded("privacy.dcr_share", d.dcr_share, d.dcr_share_ci, t.max_dcr_share, t.alpha)
    yield Check.bounded("privacy.exact_match_rate", d.exact_match_excess, d.exact_match_excess_ci,
                        t.exact_match_tolerance, t.alpha,
                        label=f"Synthetic rows that copy a training row exactly, beyond the holdout's own rate "
                              f"({d.exact_match_rate:.4f} vs {d.holdout_exact_match_rate:.4f})")
    yield Check.bounded("privacy.nndr_low_share", d.nndr_low_share, d.nndr_low_share_ci, t.max_nndr_low_share,
                        t.alpha)
    yield Check.bounded("privacy.subset_dcr_share", d.subset_dcr_share, d.subset_dcr_share_ci,
                        t.max_subset_dcr_share, t.alpha,
                        label=f"Worst column subset ({', '.join(d.subset_columns)}): rows nearer to training (share)")
    for attack in _ATTACKS:
        yield Check.bounded(
            f"privacy.membership_tpr[{attack}]", getattr(d, f"membership_tpr_low_fpr_{attack}"),
            getattr(d, f"membership_tpr_low_fpr_{attack}_ci"), t.max_membership_tpr, t.alpha,
            label=f"Membership inference ({attack} attack): members caught at {d.membership_low_fpr:.1%} false "
                  f"positives (AUC {getattr(d, f'membership_auc_{attack}'):.3f}, reported only)")
    yield Check.bounded(
        "privacy.isolated_reproduced", d.isolated_excess, d.isolated_excess_ci, t.max_isolated_excess, t.alpha,
        label=f"Most isolated records reproduced: {d.isolated_reproduced} of {d.isolated_k} training rows against "
              f"{d.isolated_holdout_reproduced} of {d.isolated_holdout_k} unseen rows (excess rate)")
    risks = {
        "privacy.singling_out_risk": (a.singling_out, t.max_singling_out_risk, ""),
        "privacy.singling_out_univariate_risk": (a.singling_out_univariate, t.max_singling_out_risk, ""),
        "privacy.linkability_risk": (a.linkability, t.max_linkability_risk, ""),
        "privacy.inference_risk": (a.inference, t.max_inference_risk,
                                   f"Attribute inference risk, worst column {a.inference_column} "
                                   "(attack beyond control)"),
    }
    for name, (attack_result, threshold, label) in risks.items():
        if attack_result.n_attacks == 0:  # e.g. no value of a few-valued table singles out one row
            yield Check.not_applicable(name, threshold, "<=", "no attack of this kind could be formed on this table",
                                       label)
        else:
            yield Check.bounded(name, attack_result.risk, attack_result.risk_ci, threshold, t.alpha, label=label)
    if budget is not None:
        yield Check.plain("privacy.budget", budget.spent + budget.requested, budget.budget, "<=",
                          f"Epsilon spent on this dataset with this release ({budget.spent:g} before, "
                          f"{budget.requested:g} now)")
