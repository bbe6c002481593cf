"""The gate: each check's direction and threshold, and end to end on planted leaks and honest rows."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import make_mixed_frame, mixed_schema_for

from flows.gate import LABELS, Check, GateThresholds, Verdict, judge
from privacy.distance import PrivacyResult, evaluate_privacy
from validation.fidelity import FidelityResult, evaluate_fidelity

GOOD_FIDELITY = FidelityResult(0.9, 0.95, 0.85, {"a": 0.95}, {}, {}, 0.1)
GOOD_PRIVACY = PrivacyResult(0.5, 0.5, 0.01, 0.01, (0.1,), 0.1)


def _failed_names(fidelity: FidelityResult, privacy: PrivacyResult) -> list[str]:
    return [check.name for check in judge(fidelity, privacy, GateThresholds()).failed]


def test_good_results_pass_every_check() -> None:
    verdict = judge(GOOD_FIDELITY, GOOD_PRIVACY, GateThresholds())
    assert verdict.passed
    assert [c.name for c in verdict.checks] == [
        "fidelity.quality",
        "fidelity.unscored",
        "privacy.dcr_share",
        "privacy.exact_match_rate",
    ]


@pytest.mark.parametrize(
    ("fidelity", "privacy", "failed"),
    [
        (replace(GOOD_FIDELITY, quality=0.74), GOOD_PRIVACY, ["fidelity.quality"]),
        (replace(GOOD_FIDELITY, quality=math.nan), GOOD_PRIVACY, ["fidelity.quality"]),
        (replace(GOOD_FIDELITY, errors={"a": "no score"}), GOOD_PRIVACY, ["fidelity.unscored"]),
        (GOOD_FIDELITY, replace(GOOD_PRIVACY, dcr_share=0.61), ["privacy.dcr_share"]),
        (GOOD_FIDELITY, replace(GOOD_PRIVACY, exact_match_rate=0.016), ["privacy.exact_match_rate"]),
    ],
    ids=["low-quality", "nan-quality", "unscored-column", "dcr-lean", "copies-beyond-holdout-rate"],
)
def test_each_check_refuses_on_its_own(fidelity: FidelityResult, privacy: PrivacyResult, failed: list[str]) -> None:
    assert _failed_names(fidelity, privacy) == failed


def test_thresholds_are_inclusive_and_exact_matches_are_relative_to_the_holdout() -> None:
    at_the_line = replace(GOOD_PRIVACY, dcr_share=0.60, exact_match_rate=0.014, holdout_exact_match_rate=0.01)
    assert _failed_names(replace(GOOD_FIDELITY, quality=0.75), at_the_line) == []
    verdict = judge(GOOD_FIDELITY, at_the_line, GateThresholds())
    exact = verdict.checks[-1]
    assert exact.threshold == pytest.approx(0.015)
    assert exact.comparison == "<="


def test_verdict_to_dict_and_an_empty_verdict() -> None:
    failing = Check.at_least("fidelity.quality", 0.5, 0.75)
    verdict = Verdict((failing, Check.at_most("privacy.dcr_share", 0.5, 0.6)))
    assert verdict.to_dict() == {
        "passed": False,
        "checks": [
            {
                "name": "fidelity.quality",
                "label": LABELS["fidelity.quality"],
                "value": 0.5,
                "threshold": 0.75,
                "comparison": ">=",
                "passed": False,
            },
            {
                "name": "privacy.dcr_share",
                "label": LABELS["privacy.dcr_share"],
                "value": 0.5,
                "threshold": 0.6,
                "comparison": "<=",
                "passed": True,
            },
        ],
    }
    assert verdict.failed == (failing,)
    assert not Verdict(()).passed  # nothing checked is not a pass


def test_gate_refuses_planted_copy_of_training_rows() -> None:
    frame = make_mixed_frame(800, seed=5)
    schema = mixed_schema_for(frame)
    order = np.random.default_rng(5).permutation(len(frame))
    train, holdout = frame.iloc[order[:600]], frame.iloc[order[600:]]
    synthetic = train.reset_index(drop=True)
    verdict = judge(
        evaluate_fidelity(train, synthetic, schema),
        evaluate_privacy(train, holdout, synthetic, schema),
        GateThresholds(),
    )
    assert not verdict.passed
    assert {c.name for c in verdict.failed} == {"privacy.dcr_share", "privacy.exact_match_rate"}


def test_gate_passes_privacy_for_fresh_rows_from_the_same_population() -> None:
    frame = make_mixed_frame(1500, seed=6)
    schema = mixed_schema_for(frame)
    train, holdout, fresh = (
        frame.iloc[idx] for idx in np.split(np.random.default_rng(6).permutation(1500), [750, 1000])
    )
    privacy = evaluate_privacy(train, holdout, fresh, schema)
    assert [c.name for c in judge(GOOD_FIDELITY, privacy, GateThresholds()).failed] == []
