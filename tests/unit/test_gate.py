"""The gate: each check's rule, direction, threshold and name, one at a time, on hand-made evidence.

End to end on planted faults, planted leaks and honest rows: tests/integration/test_evaluate.py and
benchmarks/calibrate.py.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from flows.gate import BudgetUse, Check, GateThresholds, Verdict, judge, label_of, markdown_table, spec_of
from generators.base import Generator
from generators.tabular import checks
from generators.tabular.checks import CheckSpec, Context, Reading, Rule, Setting, declared
from privacy.attacks import AttackResult, AttacksResult
from privacy.audit import PrivacyAudit
from privacy.distance import PrivacyResult
from privacy.membership import AttackScore, AucEstimate, TprAtFpr
from privacy.pii import PiiLeaks
from validation.audit import FidelityAudit
from validation.c2st import C2stResult
from validation.comparison import ColumnComparisons, Comparison, PairComparison
from validation.drift import CategoryCoverage
from validation.expectations import ExpectationOutcome, ExpectationsResult
from validation.fidelity import FidelityResult
from validation.marginals import MarginalDistance
from validation.utility import UtilityResult

SAFE_ATTACK = AttackResult("attack", 0.1, (0.08, 0.12), 0.1, (0.08, 0.12), 0.01, 0.0, (0.0, 0.01), 500)
CLOSE = Comparison(0.95, 0.8, "test")
GOOD_FIDELITY = FidelityAudit(
    quality=FidelityResult(0.9, 0.95, 0.85, {"age": 0.95}, {"age|job": 0.9}, {}, {}, 0.1),
    diagnostic=1.0,
    validity=Comparison(1.0, 1.0, "test"),
    columns=ColumnComparisons(
        shapes={"age": CLOSE, "job": CLOSE},
        pairs={"age|job": PairComparison(0.9, 0.5, "test", 0.6, 0.54)},
        nulls={"age": Comparison(1.0, 1.0, "test"), "job": Comparison(0.99, 0.5, "test")},
        skipped={},
    ),
    expectations=ExpectationsResult(
        (ExpectationOutcome("age: values within [17, 90]", "expect_column_values_to_be_between", "age", True, ""),),
        0.1, None),
    coverage=CategoryCoverage({"job": 1.0}, {}, 10.0),
    utility=UtilityResult("job", "classification", "macro_f1", 0.8, 0.76, 0.5, 1e-9, 0.2),
    c2st=C2stResult(0.55, (0.53, 0.57), 500, {"age": 0.02, "job": 0.01}, (("age", "job", 0.54),), 0.1),
    marginals=MarginalDistance(2, 0.05, 0.05, 1.0, 1, 1, 500),
    figures={},
    timings={},
)


ATTACKS = ("distance", "density", "ensemble")


def _honest_attack(low_fpr: float) -> AttackScore:
    """A membership attack that learned nothing: AUC 0.5, TPR equal to each FPR, no bound below it."""
    return AttackScore(AucEstimate(0.5, (0.49, 0.51)),
                       {fpr: TprAtFpr(fpr, fpr, (fpr, fpr + 0.015), fpr) for fpr in (low_fpr, 0.01, 0.1)})


def _privacy_result(**values: Any) -> PrivacyResult:
    """Honest distance evidence: every number at its honest value, every interval around it."""
    honest: dict[str, Any] = {"dcr_share": 0.5, "nndr_low_share": 0.05, "subset_dcr_share": 0.5,
                              "membership_low_fpr": 0.005, "isolated_k": 20, "isolated_holdout_k": 20,
                              "subset_columns": ("age", "job"), "alpha": 0.001,
                              "membership": {attack: _honest_attack(0.005) for attack in ATTACKS}}
    for field in dataclasses.fields(PrivacyResult):
        name = field.name
        if name in honest:
            continue
        if name.endswith("_ci"):
            centre = honest.get(name[:-3], 0.0)
            honest[name] = (centre - 0.01, centre + 0.01)
        else:
            honest[name] = 0.0
    return PrivacyResult(**{**honest, **values})


GOOD_PRIVACY = PrivacyAudit(
    distances=_privacy_result(),
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
        "fidelity.column_shape[job]", "fidelity.pair_trend[age|job]", "fidelity.null_drift[age]",
        "fidelity.null_drift[job]", "fidelity.category_coverage[job]",
        "expectations.expect_column_values_to_be_between[age]", "utility.lift_kept",
        "privacy.pii_leaks", "privacy.dcr_share", "privacy.exact_match_rate", "privacy.nndr_low_share",
        "privacy.subset_dcr_share", "privacy.membership_tpr[distance]", "privacy.membership_tpr[density]",
        "privacy.membership_tpr[ensemble]", "privacy.isolated_reproduced", "privacy.singling_out_risk",
        "privacy.singling_out_univariate_risk", "privacy.linkability_risk", "privacy.inference_risk",
    ]
    assert all(check.to_dict()["label"] != check.name for check in verdict.checks)
    assert all(check.rule for check in verdict.checks)


def _shape(name: str, value: float, p_value: float) -> FidelityAudit:
    shapes = {**GOOD_FIDELITY.columns.shapes, name: Comparison(value, p_value, "test")}
    return replace(GOOD_FIDELITY, columns=replace(GOOD_FIDELITY.columns, shapes=shapes))


def _distances(**values: object) -> PrivacyAudit:
    return replace(GOOD_PRIVACY, distances=replace(GOOD_PRIVACY.distances, **values))


def _membership(attack: str, tpr: float, ci: tuple[float, float] | None = None) -> PrivacyAudit:
    """Honest evidence but for one attack's TPR at the gated 0.5% FPR (and its interval, if given)."""
    distances = GOOD_PRIVACY.distances
    score = distances.membership[attack]
    at = score.tpr[distances.membership_low_fpr]
    leaked = replace(score, tpr={**score.tpr, at.fpr: replace(at, tpr=tpr, ci=ci or at.ci)})
    return _distances(membership={**distances.membership, attack: leaked})


def _attack(field: str, low: float) -> PrivacyAudit:
    risky = replace(SAFE_ATTACK, risk=low + 0.05, risk_ci=(low, low + 0.1))
    return replace(GOOD_PRIVACY, attacks=replace(GOOD_PRIVACY.attacks, **{field: risky}))


FAR = 1e-9  # a p-value that no family of checks explains as noise


@pytest.mark.parametrize(
    ("fidelity", "privacy", "expected"),
    [
        # below its line, and a column differs beyond noise (within its own line): the quality's shortfall is real
        (replace(_shape("age", 0.95, FAR), quality=replace(GOOD_FIDELITY.quality, quality=0.74)), GOOD_PRIVACY,
         "fidelity.quality"),
        (replace(GOOD_FIDELITY, quality=replace(GOOD_FIDELITY.quality, quality=math.nan)), GOOD_PRIVACY,
         "fidelity.quality"),
        (replace(GOOD_FIDELITY, diagnostic=0.99, validity=Comparison(0.95, FAR, "test")), GOOD_PRIVACY,
         "fidelity.diagnostic"),
        (_shape("age", 0.7, FAR), GOOD_PRIVACY, "fidelity.column_shape[age]"),
        (replace(GOOD_FIDELITY, columns=replace(GOOD_FIDELITY.columns, pairs={
            "age|job": PairComparison(0.1, FAR, "test", 0.6, 0.06)})), GOOD_PRIVACY, "fidelity.pair_trend[age|job]"),
        (replace(GOOD_FIDELITY, columns=replace(GOOD_FIDELITY.columns, nulls={
            **GOOD_FIDELITY.columns.nulls, "age": Comparison(0.7, FAR, "test")})), GOOD_PRIVACY,
         "fidelity.null_drift[age]"),
        (replace(GOOD_FIDELITY, coverage=CategoryCoverage({"job": 0.75}, {"job": ("nurse",)}, 10.0)), GOOD_PRIVACY,
         "fidelity.category_coverage[job]"),
        (replace(GOOD_FIDELITY, expectations=ExpectationsResult(
            (ExpectationOutcome("age: at most 5% nulls", "expect_column_values_to_not_be_null", "age", False,
                                "30% nulls"),), 0.1, None)), GOOD_PRIVACY,
         "expectations.expect_column_values_to_not_be_null[age]"),
        (replace(GOOD_FIDELITY, utility=UtilityResult("job", "classification", "macro_f1", 0.8, 0.5, 0.4, 1e-9, FAR)),
         GOOD_PRIVACY, "utility.lift_kept"),
        (GOOD_FIDELITY, replace(GOOD_PRIVACY, pii=PiiLeaks(1, {"email": 1}, 100)), "privacy.pii_leaks"),
        (GOOD_FIDELITY, _distances(dcr_share=0.61, dcr_share_ci=(0.53, 0.69)), "privacy.dcr_share"),
        (GOOD_FIDELITY, _distances(exact_match_excess=0.02, exact_match_excess_ci=(0.006, 0.03)),
         "privacy.exact_match_rate"),
        (GOOD_FIDELITY, _distances(nndr_low_share=0.2, nndr_low_share_ci=(0.1, 0.3)), "privacy.nndr_low_share"),
        (GOOD_FIDELITY, _distances(subset_dcr_share=0.7, subset_dcr_share_ci=(0.6, 0.8)), "privacy.subset_dcr_share"),
        (GOOD_FIDELITY, _membership("distance", 0.02, (0.008, 0.03)),
         "privacy.membership_tpr[distance]"),
        (GOOD_FIDELITY, _membership("density", 0.02, (0.008, 0.03)), "privacy.membership_tpr[density]"),
        (GOOD_FIDELITY, _membership("ensemble", 0.02, (0.008, 0.03)),
         "privacy.membership_tpr[ensemble]"),
        (GOOD_FIDELITY, _distances(isolated_excess=0.5, isolated_excess_ci=(0.2, 0.8)), "privacy.isolated_reproduced"),
        (GOOD_FIDELITY, _attack("singling_out", 0.05), "privacy.singling_out_risk"),
        (GOOD_FIDELITY, _attack("singling_out_univariate", 0.05), "privacy.singling_out_univariate_risk"),
        (GOOD_FIDELITY, _attack("linkability", 0.05), "privacy.linkability_risk"),
        (GOOD_FIDELITY, _attack("inference", 0.2), "privacy.inference_risk"),
    ],
    ids=lambda value: "" if not isinstance(value, str) else value,
)
def test_each_check_refuses_on_its_own(fidelity: FidelityAudit, privacy: PrivacyAudit, expected: str) -> None:
    assert failed(fidelity, privacy) == [expected]


@pytest.mark.parametrize(
    ("fidelity", "privacy"),
    [
        (_shape("age", 0.5, 0.01), GOOD_PRIVACY),  # far below the line, but as real rows of this size score
        (replace(GOOD_FIDELITY, quality=replace(GOOD_FIDELITY.quality, quality=0.6)), GOOD_PRIVACY),
        (replace(GOOD_FIDELITY, diagnostic=0.95), GOOD_PRIVACY),  # the holdout steps out of the domain as often
        (GOOD_FIDELITY, _distances(dcr_share=0.6, dcr_share_ci=(0.49, 0.71))),  # 0.6 on few rows: within noise
        (GOOD_FIDELITY, _membership("density", 0.03)),  # a high point TPR, a chance-level bound
    ],
    ids=["shape", "quality", "diagnostic", "dcr", "tpr"],
)
def test_a_value_past_its_line_that_noise_explains_passes(fidelity: FidelityAudit, privacy: PrivacyAudit) -> None:
    assert failed(fidelity, privacy) == []


def test_a_family_is_judged_on_holm_adjusted_p_values() -> None:
    """A p-value of 0.0006 alone is evidence at alpha 0.001; as the smallest of three shape p-values it is not."""
    lone = _shape("age", 0.6, 0.0006)
    assert failed(replace(lone, columns=replace(lone.columns, shapes={"age": lone.columns.shapes["age"]}))) == [
        "fidelity.column_shape[age]"]
    shapes = {"age": Comparison(0.6, 0.0006, "t"), "job": CLOSE, "pay": CLOSE}
    assert failed(replace(GOOD_FIDELITY, columns=replace(GOOD_FIDELITY.columns, shapes=shapes))) == []


def test_utility_without_a_real_lift_is_not_applicable() -> None:
    noise = replace(GOOD_FIDELITY, utility=UtilityResult("job", "classification", "macro_f1", 0.5, 0.2, 0.5, 0.4, 0.0))
    (check,) = [c for c in judge(noise, GOOD_PRIVACY, GateThresholds()).checks if c.name == "utility.lift_kept"]
    assert check.passed and not check.applicable and "no better than guessing" in check.rule
    assert math.isnan(check.value)


def test_rules_and_intervals_reach_the_manifest() -> None:
    checks = {c.name: c.to_dict() for c in judge(GOOD_FIDELITY, GOOD_PRIVACY, GateThresholds()).checks}
    dcr = checks["privacy.dcr_share"]
    assert dcr["interval"] == [0.49, 0.51] and dcr["rule"] == "lower 99.9% bound ≤ 0.52" and dcr["p_value"] is None
    shape = checks["fidelity.column_shape[age]"]
    assert shape["interval"] is None and shape["p_value"] == pytest.approx(1.0)
    assert shape["rule"] == "≥ 0.75, or within what real unseen rows of this size show (p ≥ 0.001)"
    assert checks["privacy.pii_leaks"]["rule"] == "≤ 0"


def test_the_budget_refuses_a_release_that_would_overspend_or_is_not_private() -> None:
    assert failed(budget=BudgetUse(spent=6.0, requested=4.0, budget=10.0)) == []
    assert failed(budget=BudgetUse(spent=7.0, requested=4.0, budget=10.0)) == ["privacy.budget"]
    assert failed(budget=BudgetUse(spent=0.0, requested=math.inf, budget=10.0)) == ["privacy.budget"]


def test_verdict_to_dict_and_an_empty_verdict() -> None:
    failing = Check.plain("fidelity.quality", 0.5, 0.75, ">=")
    verdict = Verdict((failing, Check.plain("privacy.dcr_share", 0.5, 0.6, "<=", "DCR")))
    assert verdict.to_dict() == {
        "passed": False,
        "checks": [
            {"name": "fidelity.quality", "label": _declared_label("fidelity.quality"), "value": 0.5, "threshold": 0.75,
             "comparison": ">=", "interval": None, "p_value": None, "rule": "≥ 0.75", "applicable": True,
             "passed": False},
            {"name": "privacy.dcr_share", "label": "DCR", "value": 0.5, "threshold": 0.6, "comparison": "<=",
             "interval": None, "p_value": None, "rule": "≤ 0.6", "applicable": True, "passed": True},
        ],
    }
    assert verdict.failed == (failing,)
    assert not Verdict(()).passed  # nothing checked is not a pass


def _declared_label(name: str) -> str:
    spec = spec_of(name)
    assert spec is not None
    return spec.label


def test_the_ledger_refuses_the_release_that_would_exceed_the_dataset_budget(tmp_path: Path) -> None:
    """Two DP releases of 4 each fit a budget of 10 and are recorded; the third is refused by name."""
    from flows.config import RunConfig
    from flows.release import ledger
    from flows.steps import budget_use, spend_budget

    config = RunConfig(out=tmp_path, name="patients", generator="vae", privacy_budget=10.0)
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


def test_the_readme_table_of_checks_is_the_declared_one() -> None:
    """README.md's table is written by `python -m flows.gate --markdown`; rerun it when a check changes."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- checks:start -->\n", 1)[1].split("<!-- checks:end -->", 1)[0]
    printed = subprocess.run([sys.executable, "-m", "flows.gate", "--markdown"], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert shown == printed, "README.md's table of checks is out of date: paste `python -m flows.gate --markdown`"
    for spec in declared():
        assert f"`{spec.name}" in shown


def test_a_check_declared_beside_its_metric_is_judged_with_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """What adding a check takes: one declaration; the gate judges it, its line is a gate setting, the README lists it.

    The declaration here gates the classifier two-sample AUC, which the fidelity audit measures already.
    """
    monkeypatch.setattr(checks, "_DECLARED", dict(checks._DECLARED))  # this test's declarations end with it
    line = Setting("max_c2st_auc", 0.6, "classifier two-sample AUC (lower bound)", gt=0.5, le=1)

    def auc(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
        yield Reading(audit.c2st.auc, interval=audit.c2st.auc_ci)

    checks.declare(CheckSpec(name="fidelity.c2st_auc", label="A classifier tells synthetic rows apart (AUC)",
                             direction="<=", threshold=line, rule=Rule.BOUNDED, evidence="fidelity", read=auc,
                             refuses="lower bound of the AUC > {threshold}", order=75))
    told_apart = replace(GOOD_FIDELITY, c2st=replace(GOOD_FIDELITY.c2st, auc=0.8, auc_ci=(0.75, 0.85)))
    assert failed(told_apart) == ["fidelity.c2st_auc"]
    assert failed(GOOD_FIDELITY) == []
    names = [check.name for check in judge(GOOD_FIDELITY, GOOD_PRIVACY, GateThresholds()).checks]
    assert names.index("fidelity.category_coverage[job]") < names.index("fidelity.c2st_auc") < names.index(
        "expectations.expect_column_values_to_be_between[age]")
    assert judge(told_apart, GOOD_PRIVACY, GateThresholds(lines={"max_c2st_auc": 0.9})).passed
    assert "| `fidelity.c2st_auc` | lower bound of the AUC > 0.6 | `gate.max_c2st_auc` |" in markdown_table()
    assert label_of("fidelity.c2st_auc") == "A classifier tells synthetic rows apart (AUC)"


def test_a_check_or_a_setting_is_declared_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_DECLARED", dict(checks._DECLARED))
    quality = spec_of("fidelity.quality")
    assert quality is not None
    with pytest.raises(ValueError, match=r"fidelity\.quality is declared twice"):
        checks.declare(quality)
    other = Setting("min_quality", 0.5, "another meaning")
    with pytest.raises(ValueError, match="min_quality is declared twice, differently"):
        checks.declare(replace(quality, name="fidelity.quality_again", threshold=other))
    with pytest.raises(ValueError, match="no gate check is held to min_qualty"):
        GateThresholds(lines={"min_qualty": 0.8})
