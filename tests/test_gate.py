"""The gate: each check's direction, threshold and name, one at a time, on hand-made evidence. (End to end
on planted faults, planted leaks and honest rows: tests/test_evaluate.py.)"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from flows.gate import LABELS, BudgetUse, Check, GateThresholds, Verdict, judge
from generators.base import Generator
from privacy.attacks import AttackResult, AttacksResult
from privacy.audit import PrivacyAudit
from privacy.distance import PrivacyResult
from privacy.pii import PiiLeaks
from validation.audit import FidelityAudit
from validation.drift import ColumnDrift
from validation.expectations import ExpectationOutcome, ExpectationsResult
from validation.fidelity import FidelityResult
from validation.utility import UtilityResult

SAFE_ATTACK = AttackResult("attack", 0.1, (0.08, 0.12), 0.1, (0.08, 0.12), 0.01, 0.0, (0.0, 0.01), 500)
GOOD_FIDELITY = FidelityAudit(
    quality=FidelityResult(0.9, 0.95, 0.85, {"age": 0.95}, {"age|job": 0.9}, {}, 0.1),
    diagnostic=1.0,
    expectations=ExpectationsResult(
        (ExpectationOutcome("age: values within [17, 90]", "expect_column_values_to_be_between", "age", True, ""),),
        0.1, None),
    drift=ColumnDrift({"age": 0.0, "job": 0.01}, {"job": 1.0}, {}),
    utility=UtilityResult("job", "classification", "macro_f1", 0.8, 0.76),
    figures={},
    timings={},
)
GOOD_PRIVACY = PrivacyAudit(
    distances=PrivacyResult(0.5, 0.5, 0.0, 0.0, 0.05, 0.52, ("age", "job"), 0.5, (0.48, 0.52), 0.5, (0.48, 0.52),
                            20, 0, 0.9, 1.0),
    attacks=AttacksResult(SAFE_ATTACK, SAFE_ATTACK, SAFE_ATTACK, SAFE_ATTACK, "job", 1.0),
    pii=PiiLeaks(0, {}, 100),
    timings={},
)


def failed(fidelity: FidelityAudit = GOOD_FIDELITY, privacy: PrivacyAudit = GOOD_PRIVACY,
           budget: BudgetUse | None = None) -> list[str]:
    return [check.name for check in judge(fidelity, privacy, GateThresholds(), budget).failed]


def test_good_evidence_passes_every_check_and_each_is_named() -> None:
    verdict = judge(GOOD_FIDELITY, GOOD_PRIVACY, GateThresholds())
    assert verdict.passed
    assert [c.name for c in verdict.checks] == [
        "fidelity.quality", "fidelity.diagnostic", "fidelity.unscored", "fidelity.column_shape[age]",
        "fidelity.pair_trend[age|job]", "fidelity.null_drift[age]", "fidelity.null_drift[job]",
        "fidelity.category_coverage[job]", "expectations.expect_column_values_to_be_between[age]", "utility.ratio",
        "privacy.pii_leaks", "privacy.dcr_share", "privacy.exact_match_rate", "privacy.nndr_low_share",
        "privacy.subset_dcr_share", "privacy.membership_auc_distance", "privacy.membership_auc_density",
        "privacy.isolated_reproduced", "privacy.singling_out_risk", "privacy.singling_out_univariate_risk",
        "privacy.linkability_risk", "privacy.inference_risk",
    ]
    assert all(check.to_dict()["label"] != check.name for check in verdict.checks)


def _fidelity(**quality: object) -> FidelityAudit:
    return replace(GOOD_FIDELITY, quality=replace(GOOD_FIDELITY.quality, **quality))


def _distances(**values: object) -> PrivacyAudit:
    return replace(GOOD_PRIVACY, distances=replace(GOOD_PRIVACY.distances, **values))


def _attack(field: str, low: float) -> PrivacyAudit:
    risky = replace(SAFE_ATTACK, risk=low + 0.05, risk_ci=(low, low + 0.1))
    return replace(GOOD_PRIVACY, attacks=replace(GOOD_PRIVACY.attacks, **{field: risky}))


@pytest.mark.parametrize(
    ("fidelity", "privacy", "expected"),
    [
        (_fidelity(quality=0.74), GOOD_PRIVACY, "fidelity.quality"),
        (_fidelity(quality=math.nan), GOOD_PRIVACY, "fidelity.quality"),
        (replace(GOOD_FIDELITY, diagnostic=0.99), GOOD_PRIVACY, "fidelity.diagnostic"),
        (_fidelity(per_column={"age": 0.7}), GOOD_PRIVACY, "fidelity.column_shape[age]"),
        (_fidelity(per_pair={"age|job": 0.5}), GOOD_PRIVACY, "fidelity.pair_trend[age|job]"),
        (replace(GOOD_FIDELITY, drift=ColumnDrift({"age": 0.3}, {}, {})), GOOD_PRIVACY, "fidelity.null_drift[age]"),
        (replace(GOOD_FIDELITY, drift=ColumnDrift({}, {"job": 0.75}, {"job": ("nurse",)})), GOOD_PRIVACY,
         "fidelity.category_coverage[job]"),
        (replace(GOOD_FIDELITY, expectations=ExpectationsResult(
            (ExpectationOutcome("age: at most 5% nulls", "expect_column_values_to_not_be_null", "age", False,
                                "30% nulls"),), 0.1, None)), GOOD_PRIVACY,
         "expectations.expect_column_values_to_not_be_null[age]"),
        (replace(GOOD_FIDELITY, utility=UtilityResult("job", "classification", "macro_f1", 0.8, 0.5)), GOOD_PRIVACY,
         "utility.ratio"),
        (GOOD_FIDELITY, replace(GOOD_PRIVACY, pii=PiiLeaks(1, {"email": 1}, 100)), "privacy.pii_leaks"),
        (GOOD_FIDELITY, _distances(dcr_share=0.61), "privacy.dcr_share"),
        (GOOD_FIDELITY, _distances(exact_match_rate=0.006), "privacy.exact_match_rate"),
        (GOOD_FIDELITY, _distances(nndr_low_share=0.2), "privacy.nndr_low_share"),
        (GOOD_FIDELITY, _distances(subset_dcr_share=0.7), "privacy.subset_dcr_share"),
        (GOOD_FIDELITY, _distances(membership_auc_distance=0.7), "privacy.membership_auc_distance"),
        (GOOD_FIDELITY, _distances(membership_auc_density=0.7), "privacy.membership_auc_density"),
        (GOOD_FIDELITY, _distances(isolated_reproduced=1), "privacy.isolated_reproduced"),
        (GOOD_FIDELITY, _attack("singling_out", 0.05), "privacy.singling_out_risk"),
        (GOOD_FIDELITY, _attack("singling_out_univariate", 0.05), "privacy.singling_out_univariate_risk"),
        (GOOD_FIDELITY, _attack("linkability", 0.05), "privacy.linkability_risk"),
        (GOOD_FIDELITY, _attack("inference", 0.2), "privacy.inference_risk"),
    ],
    ids=lambda value: "" if not isinstance(value, str) else value,
)
def test_each_check_refuses_on_its_own(fidelity: FidelityAudit, privacy: PrivacyAudit, expected: str) -> None:
    assert failed(fidelity, privacy) == [expected]


def test_thresholds_are_inclusive_and_exact_matches_are_relative_to_the_holdout() -> None:
    at_the_line = _distances(dcr_share=0.55, exact_match_rate=0.014, holdout_exact_match_rate=0.01)
    assert failed(_fidelity(quality=0.75), at_the_line) == []
    exact = next(c for c in judge(GOOD_FIDELITY, at_the_line, GateThresholds()).checks
                 if c.name == "privacy.exact_match_rate")
    assert exact.threshold == pytest.approx(0.015) and exact.comparison == "<="


def test_the_budget_refuses_a_release_that_would_overspend_or_is_not_private() -> None:
    assert failed(budget=BudgetUse(spent=6.0, requested=4.0, budget=10.0)) == []
    assert failed(budget=BudgetUse(spent=7.0, requested=4.0, budget=10.0)) == ["privacy.budget"]
    assert failed(budget=BudgetUse(spent=0.0, requested=math.inf, budget=10.0)) == ["privacy.budget"]


def test_verdict_to_dict_and_an_empty_verdict() -> None:
    failing = Check.at_least("fidelity.quality", 0.5, 0.75)
    verdict = Verdict((failing, Check.at_most("privacy.dcr_share", 0.5, 0.6, "DCR")))
    assert verdict.to_dict() == {
        "passed": False,
        "checks": [
            {"name": "fidelity.quality", "label": LABELS["fidelity.quality"], "value": 0.5, "threshold": 0.75,
             "comparison": ">=", "passed": False},
            {"name": "privacy.dcr_share", "label": "DCR", "value": 0.5, "threshold": 0.6, "comparison": "<=",
             "passed": True},
        ],
    }
    assert verdict.failed == (failing,)
    assert not Verdict(()).passed  # nothing checked is not a pass


def test_the_ledger_refuses_the_release_that_would_exceed_the_dataset_budget(tmp_path: Path) -> None:
    """Two DP releases of 4 each fit a budget of 10 and are recorded; the third is refused by name."""
    from flows import ledger
    from flows.config import RunConfig
    from flows.steps import budget_use, spend_budget

    config = RunConfig(out=tmp_path, name="patients", privacy_budget=10.0)
    private = cast(Generator, SimpleNamespace(privacy_spent_={"epsilon": 4.0, "delta": 1e-5}))
    for release in ("r1", "r2"):
        budget = budget_use(config, private)
        assert budget is not None and failed(budget=budget) == []
        spend_budget(config, release, private)
    assert ledger.spent(tmp_path, "patients") == 8.0
    third = budget_use(config, private)
    assert third == BudgetUse(spent=8.0, requested=4.0, budget=10.0)
    assert failed(budget=third) == ["privacy.budget"]
    not_private = cast(Generator, SimpleNamespace(privacy_spent_=None))
    assert failed(budget=budget_use(config, not_private)) == ["privacy.budget"]
    assert budget_use(RunConfig(out=tmp_path, name="patients"), private) is None  # no budget, no ledger check
