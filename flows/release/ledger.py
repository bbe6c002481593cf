"""The per-dataset privacy budget ledger: how much epsilon the releases of one source have spent.

Each differentially private release of a dataset leaks a little more about the same rows; by basic
sequential composition the epsilons add up, and a dataset's budget caps the sum. The ledger is a JSON
file, `OUT/<dataset>/privacy-ledger.json`, with one entry per recorded release. It is only ever
appended to: a corrupt ledger is an error, never reset, since resetting would forget budget already
spent. A dataset with a budget refuses releases without DP (their epsilon is infinite); a dataset
without one does not use the ledger. These functions take no lock: the publish step calls them while
it holds the dataset's lock.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.release.publish import replace_file
from generators.tabular.errors import BadInputError

LEDGER = "privacy-ledger.json"
_FORMAT = "synthgate-privacy-ledger/1"


@dataclass(frozen=True)
class LedgerCheck:
    """A requested release against a dataset's budget: allowed when spent + requested ≤ budget."""

    spent: float
    requested: float
    budget: float
    remaining: float
    allowed: bool


def ledger_path(out: str | os.PathLike[str], dataset: str) -> Path:
    """The dataset's ledger file, `OUT/<dataset>/privacy-ledger.json`, in the folder that holds its releases."""
    return Path(out) / dataset / LEDGER


def entries(out: str | os.PathLike[str], dataset: str) -> list[dict[str, Any]]:
    """The recorded releases (release_id, epsilon, delta, recorded_at), oldest first; none without a file."""
    path = ledger_path(out, dataset)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"privacy ledger {path} is unreadable ({error}); repair it, do not delete it") from None
    releases = data.get("releases") if isinstance(data, dict) and data.get("format") == _FORMAT else None
    if not isinstance(releases, list) or not all(_valid(entry) for entry in releases):
        raise BadInputError(f"privacy ledger {path} is corrupt; repair it, do not delete it")
    return releases


def spent(out: str | os.PathLike[str], dataset: str) -> float:
    """The epsilon the dataset's releases have spent so far (basic composition: the sum)."""
    return math.fsum(entry["epsilon"] for entry in entries(out, dataset))


def check_budget(out: str | os.PathLike[str], dataset: str, epsilon: float, budget: float) -> LedgerCheck:
    """Whether a release spending `epsilon` fits in the dataset's `budget`.

    A release without DP has an infinite epsilon and never fits.
    """
    if not budget >= 0 or math.isinf(budget):
        raise BadInputError(f"a privacy budget must be a finite number ≥ 0, got {budget!r}")
    if math.isnan(epsilon) or epsilon < 0:
        raise BadInputError(f"a release's epsilon must be ≥ 0 (infinite without DP), got {epsilon!r}")
    used = spent(out, dataset)
    return LedgerCheck(used, epsilon, budget, max(budget - used, 0.0), used + epsilon <= budget)


def record_release(out: str | os.PathLike[str], dataset: str, release_id: str, epsilon: float, delta: float) -> None:
    """Append a release to the ledger, atomically, so a crash leaves the old ledger or the new one, never half of one.

    The new ledger is written to a temp file in the same folder, fsynced, then moved in place with `os.replace`.
    """
    if not math.isfinite(epsilon) or epsilon < 0 or not 0 <= delta < 1:
        raise BadInputError(f"cannot record epsilon {epsilon!r}, delta {delta!r}: need a finite epsilon ≥ 0")
    path = ledger_path(out, dataset)
    releases = entries(out, dataset)
    if any(entry["release_id"] == release_id for entry in releases):
        raise BadInputError(f"release {release_id} is already in the privacy ledger of {dataset}")
    recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    releases.append({"release_id": release_id, "epsilon": epsilon, "delta": delta, "recorded_at": recorded_at})
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": _FORMAT, "releases": releases}, indent=2)
    replace_file(path, text)


def _valid(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("release_id"), str):
        return False
    epsilon, delta = entry.get("epsilon"), entry.get("delta")
    if not isinstance(epsilon, int | float) or not isinstance(delta, int | float) or isinstance(epsilon, bool):
        return False
    return math.isfinite(epsilon) and epsilon >= 0 and isinstance(entry.get("recorded_at"), str)
