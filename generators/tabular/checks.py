"""A gate check, declared once, beside the code that measures what it judges.

A `CheckSpec` says everything about a check that is not a measurement: its name and words, which side of
its line passes, the line itself (a `Setting` a user may move, with its default, meaning and bounds), how
it is decided (`Rule`) and how its readings (value, interval or p-value, applicability) are taken from the
evidence. A metric module calls `declare` at import; the gate judges every declared check, and the gate's
config, the report's labels and the README's table are derived from the declarations, so a new check is
one declaration in its metric module (and its test).

The table-model layer holds this so that `validation` and `privacy` can both declare without importing
the application (`flows`) that judges; nothing here imports a model or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

Direction = Literal[">=", "<="]
# Which evidence the gate hands a check's reader: validation's `FidelityAudit`, privacy's `PrivacyAudit`,
# or the run's `BudgetUse` (flows' privacy ledger; only when the dataset has a budget).
Evidence = Literal["fidelity", "privacy", "budget"]
E = TypeVar("E")


class Rule(Enum):
    """How a reading is held against its line; every rule passes what real rows never trained on would show."""

    PLAIN = "compared as it is"  # a count or an outcome without noise
    BOUNDED = "its confidence bound nearer the line decides"  # a risk with an interval
    TESTED = "past the line and significantly worse than real unseen rows"  # a score with a p-value


@dataclass(frozen=True)
class Setting:
    """A line a user may move: one field of the gate's config (`gate:` in a run's YAML).

    It holds the field's calibrated default, what it means, and the values it may take (`ge`, `gt`, `le`,
    `lt`; `integer` for a count).
    """

    name: str
    default: float
    description: str
    integer: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class Context:
    """What the gate knows of the run beyond the evidence.

    `rebalanced`: the column whose values were given equal shares on purpose, whose shape and pairs differ
    from the real table's by design.
    """

    rebalanced: str | None = None


@dataclass(frozen=True)
class Reading:
    """One value a check judges.

    `suffix` completes the check's name (`[age]` for a column); `label` says it in words with its
    particulars (else the declared label). `interval` (a `BOUNDED` check's) and `p_value` (a `TESTED`
    check's) are what it is decided on. `threshold`: the line, when the evidence brings it (a dataset's
    privacy budget). `inapplicable`: why there is nothing to judge (the check then passes).
    """

    value: float
    suffix: str = ""
    label: str = ""
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    threshold: float | None = None
    inapplicable: str = ""


@dataclass(frozen=True)
class CheckSpec(Generic[E]):
    """A check of the gate: everything about it that is not a measurement.

    `name` (completed by each reading's suffix; `instances` shows those suffixes in the README, e.g. `[c]`),
    `label` in words, `direction` (the side of the line that passes), `threshold` (a `Setting`, a fixed
    line, or None when each reading brings its own), `rule`, which `evidence` its `read` takes, `refuses`
    (when it refuses, for the README; `{threshold}` stands for the default line) and `order` (where it
    stands in the verdict, the report and the README, lowest first).
    """

    name: str
    label: str
    direction: Direction
    threshold: Setting | float | None
    rule: Rule
    evidence: Evidence
    read: Callable[[E, Context], Iterable[Reading]]
    refuses: str
    order: int
    instances: str = ""


_DECLARED: dict[str, CheckSpec[Any]] = {}


def declare(spec: CheckSpec[E]) -> CheckSpec[E]:
    """Register a check; a second check of the same name, or a differing setting of the same name, is an error.

    Two declarations of one thing would drift apart.
    """
    if spec.name in _DECLARED:
        raise ValueError(f"gate check {spec.name} is declared twice")
    if isinstance(spec.threshold, Setting):
        for other in settings():
            if other.name == spec.threshold.name and other != spec.threshold:
                raise ValueError(f"gate setting {other.name} is declared twice, differently")
    _DECLARED[spec.name] = spec
    return spec


def declared() -> tuple[CheckSpec[Any], ...]:
    """Every declared check, in `order`."""
    return tuple(sorted(_DECLARED.values(), key=lambda spec: spec.order))


def settings() -> tuple[Setting, ...]:
    """The settings of the declared checks, each once, in the checks' order."""
    found = {spec.threshold.name: spec.threshold for spec in declared() if isinstance(spec.threshold, Setting)}
    return tuple(found.values())
