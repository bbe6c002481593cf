"""The gate's vocabulary and its judgement: each check a release must pass, and the verdict written into the manifest.

Each check is declared once, beside the code that measures what it judges (`generators.tabular.checks`:
`validation/` and `privacy/` declare theirs, this module the run's privacy budget); the gate judges every
declaration whose evidence is at hand, and its thresholds, the run config's `gate:` section, the report's
labels and the README's table (`python -m flows.gate --markdown`) are derived from the declarations.

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

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from generators.tabular.checks import (
    CheckSpec,
    Context,
    Direction,
    Evidence,
    Reading,
    Rule,
    Setting,
    declare,
    declared,
    settings,
)
from generators.tabular.schema import Schema, infer_target
from privacy.audit import PrivacyAudit, audit_privacy
from privacy.distance import CopyExcess, PrivacyConfig
from validation.audit import FidelityAudit, audit_fidelity

# The gate's own setting: the false-alarm rate every interval and every test is held to.
ALPHA = Setting("alpha", 0.001, "chance that one check refuses real unseen rows by chance (bounds, tests)", gt=0,
                lt=0.5)

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
    comparison: Direction
    label: str = ""
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    rule: str = ""
    applicable: bool = True

    @classmethod
    def plain(cls, name: str, value: float, threshold: float, comparison: Direction, label: str = "") -> Check:
        """A number without noise (a count, an outcome) against its threshold; NaN fails."""
        return cls(name, float(value), float(threshold), _on_side(value, threshold, comparison), comparison, label,
                   rule=_plain_rule(comparison, threshold))

    @classmethod
    def bounded(cls, name: str, value: float, interval: tuple[float, float], threshold: float, alpha: float,
                comparison: Direction = "<=", label: str = "") -> Check:
        """A risk decided by its confidence bound: `<=` fails only when the lower bound is above the threshold.

        With `>=`, it fails only when the upper bound is below the threshold.
        """
        low, high = float(interval[0]), float(interval[1])
        bound, side = (low, "lower") if comparison == "<=" else (high, "upper")
        level = f"{100 * (1 - alpha):g}%"
        return cls(name, float(value), float(threshold), _on_side(bound, threshold, comparison), comparison, label,
                   interval=(low, high), rule=f"{side} {level} bound {_sign(comparison)} {threshold:g}")

    @classmethod
    def tested(cls, name: str, value: float, p_value: float, threshold: float, alpha: float,
               comparison: Direction = ">=", label: str = "") -> Check:
        """A score that fails only when past its threshold and significantly worse than real unseen rows."""
        passed = _on_side(value, threshold, comparison) or (not math.isnan(value) and p_value >= alpha)
        return cls(name, float(value), float(threshold), bool(passed), comparison, label, p_value=float(p_value),
                   rule=f"{_sign(comparison)} {threshold:g}, {_WITHIN_NOISE} (p ≥ {alpha:g})")

    @classmethod
    def not_applicable(cls, name: str, threshold: float, comparison: Direction, reason: str, label: str = "") -> Check:
        """Nothing to judge: recorded, passed, with the reason."""
        return cls(name, math.nan, float(threshold), True, comparison, label, rule=f"not applicable: {reason}",
                   applicable=False)

    @property
    def title(self) -> str:
        """The check in words: its own label, else its declaration's."""
        return self.label or label_of(self.name)

    def to_dict(self) -> dict[str, Any]:
        """The check as the manifest stores it, with its label in words; `from_dict` reads it back."""
        return {
            "name": self.name,
            "label": self.title,
            "value": self.value,
            "threshold": self.threshold,
            "comparison": self.comparison,
            "interval": list(self.interval) if self.interval is not None else None,
            "p_value": self.p_value,
            "rule": self.rule,
            "applicable": self.applicable,
            "passed": self.passed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        """The check as `to_dict` wrote it (null numbers read as NaN).

        A manifest from before rules gets the plain rule of its comparison.
        """
        comparison = data["comparison"]
        if comparison not in (">=", "<="):
            raise ValueError(f"check {data.get('name')!r}: comparison must be >= or <=, not {comparison!r}")
        threshold = _float(data.get("threshold"))
        interval = data.get("interval")
        return cls(
            name=str(data["name"]),
            value=_float(data.get("value")),
            threshold=threshold,
            passed=bool(data["passed"]),
            comparison=comparison,
            label=str(data.get("label") or ""),
            interval=(_float(interval[0]), _float(interval[1])) if interval is not None else None,
            p_value=None if data.get("p_value") is None else _float(data["p_value"]),
            rule=str(data.get("rule") or _plain_rule(comparison, threshold)),
            applicable=bool(data.get("applicable", True)),
        )


def _on_side(value: float, threshold: float, comparison: Direction) -> bool:
    return bool(value >= threshold) if comparison == ">=" else bool(value <= threshold)


def _sign(comparison: Direction) -> str:
    return "≥" if comparison == ">=" else "≤"


def _plain_rule(comparison: Direction, threshold: float) -> str:
    return f"{_sign(comparison)} {threshold:g}"


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Verdict:
    """All checks of one run; it passes only if there is at least one check and every one passed."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """Whether the release may be published: no checks at all is no evidence, so it fails."""
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that refused the release, in the verdict's order."""
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        """The verdict as the manifest stores it: whether it passed, and every check."""
        return {"passed": self.passed, "checks": [check.to_dict() for check in self.checks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """The verdict as `to_dict` wrote it; `passed` is recomputed from the checks, not trusted."""
        return cls(tuple(Check.from_dict(check) for check in data.get("checks") or ()))


@dataclass(frozen=True)
class GateThresholds:
    """Where each check's line is drawn: `lines` maps a declared `Setting`'s name to its value.

    A setting left out keeps its default (the defaults are calibrated in BENCHMARKS.md, "Gate calibration": real rows
    never trained on pass, on tables nobody tuned the gate on, the planted faults and leaks do not). Each setting's
    meaning is declared with its check (`python -m flows.gate --markdown` lists them).

    `alpha`: the chance that one check (or one family of per-column or per-pair checks) refuses real
    unseen rows by chance; each interval is at this level and each p-value is held against it.
    """

    alpha: float = ALPHA.default
    lines: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.lines) - {setting.name for setting in settings()})
        if unknown:
            raise ValueError(f"no gate check is held to {', '.join(unknown)}")

    def line(self, setting: Setting) -> float:
        """The value `setting` is held to in this run: its entry in `lines`, else its declared default."""
        return float(self.lines.get(setting.name, setting.default))


@dataclass(frozen=True)
class BudgetUse:
    """A differential-privacy release against the dataset's budget (`flows.release.ledger`).

    `spent`: the epsilon spent before it; `requested`: the epsilon it spends.
    """

    spent: float
    requested: float
    budget: float


def _budget(use: BudgetUse, context: Context) -> Iterator[Reading]:
    yield Reading(use.spent + use.requested, threshold=use.budget,
                  label=f"Epsilon spent on this dataset with this release ({use.spent:g} before, "
                        f"{use.requested:g} now)")


declare(CheckSpec(
    name="privacy.budget", label="Differential-privacy budget spent with this release (epsilon)", direction="<=",
    threshold=None, rule=Rule.PLAIN, evidence="budget", read=_budget, order=210,
    refuses="with `privacy_budget`: epsilon spent on the dataset, this release included, > the budget",
))


def spec_of(name: str) -> CheckSpec[Any] | None:
    """The declaration a check of this name comes from (`fidelity.column_shape` for `fidelity.column_shape[age]`)."""
    found = [spec for spec in declared() if name == spec.name or name.startswith((f"{spec.name}[", f"{spec.name}."))]
    return max(found, key=lambda spec: len(spec.name), default=None)


def label_of(name: str) -> str:
    """A check's name in words: its declaration's label, else the name's own words.

    The name's own words serve a manifest's check that is not declared here.
    """
    spec = spec_of(name)
    return spec.label if spec is not None else in_words(name)


def in_words(name: str) -> str:
    """`exact_match_rate` → `Exact match rate`: a check's or a measure's name in words."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def judge(
    fidelity: FidelityAudit,
    privacy: PrivacyAudit,
    thresholds: GateThresholds,
    budget: BudgetUse | None = None,
    rebalanced: str | None = None,
) -> Verdict:
    """Hold the fidelity and privacy evidence against the thresholds.

    `rebalanced`: the column whose values were deliberately given equal shares; its shape and its pairs' trends
    differ from the real table's by design, so they are not held to the floors (the overall quality still counts
    them).
    """
    evidence: dict[Evidence, object | None] = {"fidelity": fidelity, "privacy": privacy, "budget": budget}
    return Verdict(tuple(judge_declared(evidence, thresholds, Context(rebalanced))))


def judge_rows(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *, seed: int,
               thresholds: GateThresholds) -> Verdict:
    """The whole gate on three tables, nothing drawn and nothing written (no figures, no Data Docs).

    It is what `generator: auto` judges each candidate by, and the calibration benchmark thousands of tables by.
    """
    return audit_and_judge(train, holdout, synthetic, schema, seed=seed, thresholds=thresholds)[2]


def audit_and_judge(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    seed: int,
    thresholds: GateThresholds,
    copies: CopyExcess | None = None,
    every_synthetic: Callable[[], Iterable[pd.DataFrame]] | None = None,
) -> tuple[FidelityAudit, PrivacyAudit, Verdict]:
    """`judge_rows` with the evidence it judged; `copies` and `every_synthetic` as `audit_privacy` takes them.

    So a benchmark judges samples of big tables as a release does (`flows.steps.rows_to_check`).
    """
    fidelity = audit_fidelity(train, holdout, synthetic, schema, target=infer_target(schema), docs_dir=None, seed=seed,
                              alpha=thresholds.alpha, figures=False)
    privacy = audit_privacy(train, holdout, synthetic, schema, seed=seed, config=PrivacyConfig(alpha=thresholds.alpha),
                            copies=copies, every_synthetic=every_synthetic)
    return fidelity, privacy, judge(fidelity, privacy, thresholds)


def privacy_checks(audit: PrivacyAudit, thresholds: GateThresholds, budget: BudgetUse | None) -> Iterator[Check]:
    """The privacy checks alone: what the privacy tests hold honest and leaking tables to."""
    return judge_declared({"privacy": audit, "budget": budget}, thresholds, Context())


def judge_declared(evidence: Mapping[Evidence, object | None], thresholds: GateThresholds, context: Context
                   ) -> Iterator[Check]:
    """Every declared check whose evidence is at hand, in order, one `Check` per reading."""
    for spec in declared():
        found = evidence.get(spec.evidence)
        if found is not None:
            for reading in spec.read(found, context):
                yield _judged(spec, reading, thresholds)


def _judged(spec: CheckSpec[Any], reading: Reading, thresholds: GateThresholds) -> Check:
    name, label, direction = spec.name + reading.suffix, reading.label or spec.label, spec.direction
    threshold = _line(spec, reading, thresholds)
    if reading.inapplicable:
        return Check.not_applicable(name, threshold, direction, reading.inapplicable, label)
    if spec.rule is Rule.BOUNDED:
        if reading.interval is None:
            raise ValueError(f"{name}: a bounded check's reading needs an interval")
        return Check.bounded(name, reading.value, reading.interval, threshold, thresholds.alpha, direction, label)
    if spec.rule is Rule.TESTED:
        if reading.p_value is None:
            raise ValueError(f"{name}: a tested check's reading needs a p-value")
        return Check.tested(name, reading.value, reading.p_value, threshold, thresholds.alpha, direction, label)
    return Check.plain(name, reading.value, threshold, direction, label)


def _line(spec: CheckSpec[Any], reading: Reading, thresholds: GateThresholds) -> float:
    """The reading's own line (a budget), else the setting's value in `thresholds`, else the fixed line."""
    if reading.threshold is not None:
        return reading.threshold
    if isinstance(spec.threshold, Setting):
        return thresholds.line(spec.threshold)
    if spec.threshold is None:
        raise ValueError(f"{spec.name}: declared without a line, its reading must bring one")
    return spec.threshold


def markdown_table() -> str:
    """README's table of the declared checks (between its `checks:start` and `checks:end` markers)."""
    rows = ["| check | refuses when (default) | setting |", "|---|---|---|"]
    for spec in declared():
        line = spec.threshold
        default = f"{line.default:g}" if isinstance(line, Setting) else "" if line is None else f"{line:g}"
        setting = f"`gate.{line.name}`" if isinstance(line, Setting) else "—"
        rows.append(f"| `{_cell(spec.name + spec.instances)}` | {_cell(spec.refuses.format(threshold=default))} "
                    f"| {setting} |")
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    """A markdown table cell: its pipes escaped."""
    return text.replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m flows.gate --markdown`: print README's table of checks, so it is regenerated, never hand-kept."""
    parser = argparse.ArgumentParser(prog="python -m flows.gate", description="The gate's declared checks.")
    parser.add_argument("--markdown", action="store_true", required=True,
                        help="print README's table of checks, to paste between its checks markers")
    parser.parse_args(argv)
    sys.stdout.write(markdown_table())


if __name__ == "__main__":
    main()
