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
from privacy.audit import PrivacyAudit
from validation.audit import FidelityAudit

_VERSIONED = ("synthgate", "torch", "sdmetrics", "prefect", "pandas", "pyarrow", "great-expectations")
EXPECTATIONS_DOCS = "expectations"  # the release's sub-folder holding GX's Data Docs


def build_manifest(
    *,
    config: RunConfig,
    table: Table,
    generator: dict[str, Any],
    fidelity: FidelityAudit,
    privacy: PrivacyAudit,
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
        **evidence(fidelity, privacy, verdict, timings),
        "schema": _public_schema(table, private=generator.get("differential_privacy") is not None),
        "versions": versions(),
    }


def _public_schema(table: Table, private: bool) -> dict[str, Any]:
    """The schema as the release states it. Under differential privacy the categories and bounds inferred
    from the data are left out: they are facts about the real rows that no privacy budget paid for."""
    schema = table.schema.to_dict()
    if private:
        for spec in schema["columns"].values():
            spec.pop("categories", None)
            spec.pop("bounds", None)
    return schema


def evidence(
    fidelity: FidelityAudit, privacy: PrivacyAudit, verdict: Verdict, timings: dict[str, float]
) -> dict[str, Any]:
    """The manifest's `metrics`, `timings` and `gate`: what was measured, how long it took, what was decided."""
    quality = fidelity.quality
    utility = fidelity.utility
    attacks = privacy.attacks
    risks = {
        f"{label}_{key}": value
        for label, attack in (("singling_out", attacks.singling_out),
                              ("singling_out_univariate", attacks.singling_out_univariate),
                              ("linkability", attacks.linkability), ("inference", attacks.inference))
        for key, value in (("risk", attack.risk), ("risk_low", attack.risk_ci[0]), ("risk_high", attack.risk_ci[1]),
                           ("attack_rate", attack.attack_rate), ("control_rate", attack.control_rate))
    }
    every_timing = {**timings, **fidelity.timings, **privacy.timings}
    return {
        "metrics": {
            "fidelity": {
                "quality": quality.quality,
                "column_shapes": quality.column_shapes,
                "column_pair_trends": quality.column_pair_trends,
                "diagnostic": fidelity.diagnostic,
                "expectations_evaluated": fidelity.expectations.evaluated,
                "expectations_failed": len(fidelity.expectations.failed),
                "c2st_auc": fidelity.c2st.auc,
                "c2st_auc_low": fidelity.c2st.auc_ci[0],
                "c2st_auc_high": fidelity.c2st.auc_ci[1],
                "marginal_tv_3way": fidelity.marginals.distance,
                "marginal_tv_ratio": fidelity.marginals.ratio,
            },
            "utility": None if utility is None else {**asdict(utility), "ratio": utility.ratio,
                                                     "lift_kept": utility.lift_kept},
            "privacy": {
                "pii_leaks": privacy.pii.leaked_cells,
                **_flat(asdict(privacy.distances)),
                **risks,
                "inference_column": attacks.inference_column,
            },
        },
        "timings": {key: round(value, 3) for key, value in every_timing.items()},
        "gate": verdict.to_dict(),
    }


def report_details(fidelity: FidelityAudit) -> dict[str, Any]:
    """What the report shows beyond the manifest: per-column and per-pair scores, figures, GX outcomes, the
    columns and pairs that give the synthetic rows away to a classifier, how the marginal distance was taken."""
    outcomes = sorted(fidelity.expectations.outcomes, key=lambda o: o.success)
    return {
        "column_shapes": {name: shape.value for name, shape in fidelity.columns.shapes.items()},
        "pair_trends": {name: pair.value for name, pair in fidelity.columns.pairs.items()},
        "figures": fidelity.figures,
        "expectations": [{"name": o.name, "success": o.success, "observed": o.observed} for o in outcomes],
        "expectations_docs": f"{EXPECTATIONS_DOCS}/index.html" if fidelity.expectations.docs_index else None,
        "c2st": {"rows": fidelity.c2st.rows, "importance": fidelity.c2st.importance,
                 "worst_pairs": [list(pair) for pair in fidelity.c2st.worst_pairs]},
        "marginals": asdict(fidelity.marginals),
    }


def _flat(values: dict[str, Any]) -> dict[str, Any]:
    """Numbers and names as they are, a (low, high) interval as `_low`/`_high`, column lists joined; the
    elapsed time goes to `timings`, not here."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key == "elapsed_s":
            continue
        if key.endswith("_ci"):
            flat[f"{key[:-3]}_low"], flat[f"{key[:-3]}_high"] = value
        elif isinstance(value, tuple):
            flat[key] = ", ".join(map(str, value))
        else:
            flat[key] = value
    return flat


def versions() -> dict[str, str]:
    """Versions of Python and of the packages whose behaviour shapes the release."""
    found = {"python": platform.python_version()}
    for package in _VERSIONED:
        try:
            found[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package.replace("-", "_")] = "not installed"
    return found
