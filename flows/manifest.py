"""The manifest: the one record of a run that other tools read (contract keys listed in the README)."""

from __future__ import annotations

import platform
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from flows.config import RunConfig
from flows.gate import Verdict
from flows.ingest import Table
from privacy.distance import PrivacyResult
from validation.fidelity import FidelityResult

_VERSIONED = ("synthgate", "torch", "sdmetrics", "prefect", "pandas", "pyarrow", "great-expectations")


def build_manifest(
    *,
    config: RunConfig,
    table: Table,
    generator: dict[str, Any],
    fidelity: FidelityResult,
    privacy: PrivacyResult,
    verdict: Verdict,
    timings: dict[str, float],
    split: dict[str, int],
) -> dict[str, Any]:
    """Everything known about the run before publishing; `publish` adds release_id, rows and files."""
    return {
        "dataset": config.dataset,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "generator": generator,
        "source": table.source.to_dict(),
        "split": {**split, "holdout_fraction": config.holdout, "seed": config.seed},
        "sampling": {"rebalance": config.rebalance},
        "metrics": {
            "fidelity": {
                "quality": fidelity.quality,
                "column_shapes": fidelity.column_shapes,
                "column_pair_trends": fidelity.column_pair_trends,
            },
            "privacy": {k: v for k, v in asdict(privacy).items() if not isinstance(v, dict | list | tuple)},
        },
        "timings": {key: round(value, 3) for key, value in timings.items()},
        "gate": verdict.to_dict(),
        "schema": table.schema.to_dict(),
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    """Versions of Python and of the packages whose behaviour shapes the release."""
    found = {"python": platform.python_version()}
    for package in _VERSIONED:
        try:
            found[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package.replace("-", "_")] = "not installed"
    return found
