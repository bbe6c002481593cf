"""The run's summary in the Prefect UI: a markdown artifact with the verdict and a table artifact with
every gate check, so a scheduled release can be judged from the flow run's page."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact


def summary_markdown(manifest: Mapping[str, Any]) -> str:
    """The verdict first, then the failed checks by name, then the headline numbers."""
    gate = manifest["gate"]
    failed = [c for c in gate["checks"] if not c["passed"]]
    fidelity = manifest["metrics"]["fidelity"]
    privacy = manifest["metrics"]["privacy"]
    lines = [
        f"# {manifest['dataset']}: {'PUBLISHED' if gate['passed'] else 'REFUSED'}",
        "",
        f"{len(gate['checks']) - len(failed)} of {len(gate['checks'])} gate checks passed.",
        "",
    ]
    if failed:
        lines += ["## Failed checks", ""]
        lines += [f"- **{c['label']}** (`{c['name']}`): {_fmt(c['value'])}, needs {c['rule']}" for c in failed]
        lines.append("")
    lines += [
        "## Headline numbers",
        "",
        "| metric | value |",
        "|---|---|",
        f"| quality | {_fmt(fidelity['quality'])} |",
        f"| diagnostic | {_fmt(fidelity['diagnostic'])} |",
        f"| DCR share | {_fmt(privacy.get('dcr_share'))} |",
        f"| exact-copy rate | {_fmt(privacy.get('exact_match_rate'))} |",
    ]
    utility = manifest["metrics"].get("utility")
    if utility:
        lines.append(f"| utility: lift kept ({utility['target']}) | {_fmt(utility['lift_kept'])} |")
    return "\n".join(lines) + "\n"


def check_rows(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per gate check: name, label, value, comparison, threshold, rule, passed."""
    return [{k: check[k] for k in ("name", "label", "value", "comparison", "threshold", "rule", "passed")}
            for check in manifest["gate"]["checks"]]


def publish_artifacts(manifest: Mapping[str, Any]) -> None:
    """Attach the summary and the checks to the current flow run (Prefect keys: lowercase, digits, dashes)."""
    key = re.sub(r"[^a-z0-9-]+", "-", str(manifest["dataset"]).lower()).strip("-") or "dataset"
    create_markdown_artifact(markdown=summary_markdown(manifest), key=f"{key}-verdict",
                             description="synthgate release verdict")
    create_table_artifact(table=check_rows(manifest), key=f"{key}-gate-checks",
                          description="every gate check with its value and threshold")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
