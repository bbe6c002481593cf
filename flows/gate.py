"""The gate's vocabulary: each check a release must pass, and the verdict written into the manifest.

A release is published only if every check passes; a check whose value is NaN fails, since a number
that could not be computed vouches for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from privacy.distance import PrivacyResult
from validation.fidelity import FidelityResult

Comparison = Literal[">=", "<="]

# What each check means, in the words a data steward reads in the report and the manifest.
LABELS = {
    "fidelity.quality": "Overall fidelity (sdmetrics quality score)",
    "fidelity.unscored": "Columns or pairs that could not be scored",
    "privacy.dcr_share": "Synthetic rows nearer to training than to unseen rows (share)",
    "privacy.exact_match_rate": "Synthetic rows that copy a training row exactly (rate)",
}


@dataclass(frozen=True)
class Check:
    """One named number held against its threshold; `comparison` says which side passes."""

    name: str
    value: float
    threshold: float
    passed: bool
    comparison: Comparison

    @classmethod
    def at_least(cls, name: str, value: float, threshold: float) -> Check:
        return cls(name, float(value), float(threshold), bool(value >= threshold), ">=")

    @classmethod
    def at_most(cls, name: str, value: float, threshold: float) -> Check:
        return cls(name, float(value), float(threshold), bool(value <= threshold), "<=")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": LABELS.get(self.name, self.name),
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
    """Where each check's line is drawn.

    `min_quality`: sdmetrics' overall quality score (mean of column shapes and pair trends).
    `max_dcr_share`: the size-weighted share of synthetic rows nearest to a training record; an
    honest generator sits at 0.5 (standard error about 0.005 on 30,000 synthetic rows), so 0.60 only
    refuses a clear lean towards the training rows.
    `exact_match_tolerance`: the synthetic exact-match rate may exceed the holdout's own rate (the
    duplicates a real table holds by itself) by this much. 0.005 (one row in 200) is about the
    holdout rate's sampling noise: its standard error sqrt(p(1-p)/n) stays under 0.005 for n ≥ 400
    holdout rows at p ≤ 1%, so a faithful generator is not refused by chance, while one that copies
    even 1% of the training rows verbatim is.
    `max_fidelity_errors`: columns or pairs sdmetrics failed to score; they drop out of its average
    silently, so by default a single one refuses the release.
    """

    min_quality: float = 0.75
    max_dcr_share: float = 0.60
    exact_match_tolerance: float = 0.005
    max_fidelity_errors: int = 0


def judge(fidelity: FidelityResult, privacy: PrivacyResult, thresholds: GateThresholds) -> Verdict:
    """Hold the fidelity and privacy results against the thresholds."""
    return Verdict(
        (
            Check.at_least("fidelity.quality", fidelity.quality, thresholds.min_quality),
            Check.at_most("fidelity.unscored", len(fidelity.errors), thresholds.max_fidelity_errors),
            Check.at_most("privacy.dcr_share", privacy.dcr_share, thresholds.max_dcr_share),
            Check.at_most(
                "privacy.exact_match_rate",
                privacy.exact_match_rate,
                privacy.holdout_exact_match_rate + thresholds.exact_match_tolerance,
            ),
        )
    )
