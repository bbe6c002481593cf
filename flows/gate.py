"""The gate's vocabulary and its judgement: each check a release must pass, and the verdict written into
the manifest.

A release is published only if every check passes; a check whose value is NaN fails, since a number
that could not be computed vouches for nothing. Checks are per column and per pair where an average
could hide a broken one, so a refusal names exactly what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from privacy.audit import PrivacyAudit
from validation.audit import FidelityAudit

Comparison = Literal[">=", "<="]

# What each fixed check means, in the words a data steward reads in the report and the manifest.
LABELS = {
    "fidelity.quality": "Overall fidelity (sdmetrics quality score)",
    "fidelity.diagnostic": "Valid values and structure (sdmetrics diagnostic score)",
    "fidelity.unscored": "Columns or pairs that could not be scored",
    "utility.ratio": "Prediction quality when trained on synthetic rather than real rows (ratio)",
    "privacy.pii_leaks": "Real identifiers (id or PII values) found anywhere in the output (cells)",
    "privacy.dcr_share": "Synthetic rows nearer to training than to unseen rows (share)",
    "privacy.exact_match_rate": "Synthetic rows that copy a training row exactly (rate)",
    "privacy.nndr_low_share": "Synthetic rows sitting on one training record, away from the rest (share)",
    "privacy.subset_dcr_share": "Worst column subset: rows nearer to training than to unseen rows (share)",
    "privacy.membership_auc_distance": "Membership inference by distance (AUC; 0.5 is a coin toss)",
    "privacy.membership_auc_density": "Membership inference by local density (AUC; 0.5 is a coin toss)",
    "privacy.isolated_reproduced": "Most isolated training records reproduced or nearly (count)",
    "privacy.singling_out_risk": "Singling-out risk, multivariate (lower 95% bound, attack beyond control)",
    "privacy.singling_out_univariate_risk": "Singling-out risk, univariate (lower 95% bound, attack beyond control)",
    "privacy.linkability_risk": "Linkability risk (lower 95% bound, attack beyond control)",
    "privacy.inference_risk": "Attribute inference risk, worst column (lower 95% bound, attack beyond control)",
    "privacy.budget": "Differential-privacy budget spent with this release (epsilon)",
}


@dataclass(frozen=True)
class Check:
    """One named number held against its threshold; `comparison` says which side passes."""

    name: str
    value: float
    threshold: float
    passed: bool
    comparison: Comparison
    label: str = ""

    @classmethod
    def at_least(cls, name: str, value: float, threshold: float, label: str = "") -> Check:
        return cls(name, float(value), float(threshold), bool(value >= threshold), ">=", label)

    @classmethod
    def at_most(cls, name: str, value: float, threshold: float, label: str = "") -> Check:
        return cls(name, float(value), float(threshold), bool(value <= threshold), "<=", label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or LABELS.get(self.name, self.name),
            "value": self.value,
            "threshold": self.threshold,
            "comparison": self.comparison,
            "passed": self.passed,
        }


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
    """Where each check's line is drawn (the defaults are calibrated in BENCHMARKS.md: real rows never
    trained on pass, the planted faults and leaks of the tests do not).

    Fidelity: `min_quality` (sdmetrics' overall score), `min_diagnostic` (sdmetrics' validity and
    structure score; a generator that keeps to the real ranges and categories scores 1.0, but real rows
    never trained on score about 0.9999, since a fresh value falls past n training values' extremes with
    probability 2/(n+1): 0.999 passes them, and the GX suite holds each column to its range on its own),
    `max_fidelity_errors` (columns or pairs sdmetrics failed to score:
    they drop out of its average silently), `min_column_shape` (each column's KS/TV complement),
    `min_pair_trend` (each strongly associated pair's trend score: a shuffled column keeps its shape but
    loses its partner), `max_null_drift` (absolute change of a column's null fraction), and
    `min_category_coverage` (share of a column's common categories present; 1.0: none lost).
    `min_utility_ratio`: synthetic-trained / real-trained score on the holdout, when there is a target.

    Privacy: `max_pii_leaks` (real identifier cells in the output), `max_dcr_share` (equal-size DCR
    share; honest: 0.5), `exact_match_tolerance` (exact copies beyond the holdout's own duplicate rate),
    `max_nndr_low_share`, `max_subset_dcr_share`, the membership-inference AUCs, `max_isolated_reproduced`
    and the anonymeter-style risks. Those risks are judged by the lower bound of their 95% interval: a point
    estimate of the worst of 14 inference columns reaches 0.21 on real rows never trained on, while copied
    rows lift the bound far above the line (BENCHMARKS.md, privacy calibration).
    """

    min_quality: float = 0.75
    min_diagnostic: float = 0.999
    max_fidelity_errors: int = 0
    min_column_shape: float = 0.75
    min_pair_trend: float = 0.60
    max_null_drift: float = 0.05
    min_category_coverage: float = 1.0
    min_utility_ratio: float = 0.80
    max_pii_leaks: int = 0
    max_dcr_share: float = 0.55
    exact_match_tolerance: float = 0.005
    max_nndr_low_share: float = 0.08
    max_subset_dcr_share: float = 0.56
    max_membership_auc: float = 0.55
    max_isolated_reproduced: int = 0
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


def fidelity_checks(audit: FidelityAudit, t: GateThresholds, rebalanced: str | None = None) -> Iterator[Check]:
    quality = audit.quality
    yield Check.at_least("fidelity.quality", quality.quality, t.min_quality)
    yield Check.at_least("fidelity.diagnostic", audit.diagnostic, t.min_diagnostic)
    yield Check.at_most("fidelity.unscored", len(quality.errors), t.max_fidelity_errors)
    for column, score in quality.per_column.items():
        if column != rebalanced:
            yield Check.at_least(f"fidelity.column_shape[{column}]", score, t.min_column_shape,
                                 f"Shape of column {column} (KS/TV complement)")
    for pair, score in quality.per_pair.items():
        a, b = pair.split("|", 1)
        if rebalanced not in (a, b):
            yield Check.at_least(f"fidelity.pair_trend[{pair}]", score, t.min_pair_trend,
                                 f"Trend between {a} and {b} (strongly associated pair)")
    for column, drift in audit.drift.null_drift.items():
        yield Check.at_most(f"fidelity.null_drift[{column}]", drift, t.max_null_drift,
                            f"Change of the null fraction of {column}")
    for column, coverage in audit.drift.category_coverage.items():
        lost = audit.drift.missing_categories.get(column, ())
        detail = f" (lost: {', '.join(lost[:5])}{', …' if len(lost) > 5 else ''})" if lost else ""
        yield Check.at_least(f"fidelity.category_coverage[{column}]", coverage, t.min_category_coverage,
                             f"Common categories of {column} present{detail}")
    for outcome in audit.expectations.outcomes:
        yield Check.at_least(f"expectations.{outcome.expectation}[{outcome.column or 'table'}]",
                             1.0 if outcome.success else 0.0, 1.0, f"Expectation: {outcome.name}")
    if audit.utility is not None:
        u = audit.utility
        yield Check.at_least("utility.ratio", u.ratio, t.min_utility_ratio,
                             f"Predicting {u.target}: {u.metric} trained on synthetic / trained on real")


def privacy_checks(audit: PrivacyAudit, t: GateThresholds, budget: BudgetUse | None) -> Iterator[Check]:
    d, a = audit.distances, audit.attacks
    yield Check.at_most("privacy.pii_leaks", audit.pii.leaked_cells, t.max_pii_leaks)
    yield Check.at_most("privacy.dcr_share", d.dcr_share, t.max_dcr_share)
    yield Check.at_most("privacy.exact_match_rate", d.exact_match_rate,
                        d.holdout_exact_match_rate + t.exact_match_tolerance)
    yield Check.at_most("privacy.nndr_low_share", d.nndr_low_share, t.max_nndr_low_share)
    yield Check.at_most("privacy.subset_dcr_share", d.subset_dcr_share, t.max_subset_dcr_share,
                        f"Worst column subset ({', '.join(d.subset_columns)}): rows nearer to training (share)")
    yield Check.at_most("privacy.membership_auc_distance", d.membership_auc_distance, t.max_membership_auc)
    yield Check.at_most("privacy.membership_auc_density", d.membership_auc_density, t.max_membership_auc)
    yield Check.at_most("privacy.isolated_reproduced", d.isolated_reproduced, t.max_isolated_reproduced,
                        f"Of the {d.isolated_k} most isolated training records, reproduced or nearly (count)")
    yield Check.at_most("privacy.singling_out_risk", a.singling_out.risk_ci[0], t.max_singling_out_risk)
    yield Check.at_most("privacy.singling_out_univariate_risk", a.singling_out_univariate.risk_ci[0],
                        t.max_singling_out_risk)
    yield Check.at_most("privacy.linkability_risk", a.linkability.risk_ci[0], t.max_linkability_risk)
    yield Check.at_most("privacy.inference_risk", a.inference.risk_ci[0], t.max_inference_risk,
                        f"Attribute inference risk, worst column {a.inference_column} "
                        "(lower 95% bound, attack beyond control)")
    if budget is not None:
        yield Check.at_most("privacy.budget", budget.spent + budget.requested, budget.budget,
                            f"Epsilon spent on this dataset with this release ({budget.spent:g} before, "
                            f"{budget.requested:g} now)")
