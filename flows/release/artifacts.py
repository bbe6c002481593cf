"""The run's summary in the Prefect UI, so a scheduled release can be judged from the flow run's page.

It is a markdown artifact with the verdict and a table artifact with every gate check.
"""

from __future__ import annotations

import re
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.release.manifest import Manifest, jsonable, shown

_CHECK_COLUMNS = ("name", "label", "value", "comparison", "threshold", "rule", "passed")


def summary_markdown(manifest: Manifest) -> str:
    """The verdict first, then the failed checks by name, then the headline numbers."""
    gate, metrics = manifest.gate, manifest.metrics
    lines = [
        f"# {manifest.dataset}: {manifest.outcome.upper()}",
        "",
        f"{len(gate.checks) - len(gate.failed)} of {len(gate.checks)} gate checks passed.",
        "",
    ]
    if gate.failed:
        lines += ["## Failed checks", ""]
        lines += [f"- **{c.title}** (`{c.name}`): {shown(c.value)}, needs {c.rule}" for c in gate.failed]
        lines.append("")
    lines += [
        "## Headline numbers",
        "",
        "| metric | value |",
        "|---|---|",
        f"| quality | {shown(metrics.fidelity.quality)} |",
        f"| diagnostic | {shown(metrics.fidelity.diagnostic)} |",
        f"| DCR share | {shown(metrics.privacy.dcr_share)} |",
        f"| exact-copy rate | {shown(metrics.privacy.exact_match_rate)} |",
    ]
    if metrics.utility is not None:
        lines.append(f"| utility: lift kept ({metrics.utility.target}) | {shown(metrics.utility.lift_kept)} |")
    return "\n".join(lines) + "\n"


def check_rows(manifest: Manifest) -> list[dict[str, Any]]:
    """One row per gate check: name, label, value, comparison, threshold, rule, passed (NaN as null)."""
    return [jsonable({key: row[key] for key in _CHECK_COLUMNS})
            for row in (check.to_dict() for check in manifest.gate.checks)]


def publish_artifacts(manifest: Manifest) -> None:
    """Attach the summary and the checks to the current flow run (Prefect keys: lowercase, digits, dashes)."""
    key = re.sub(r"[^a-z0-9-]+", "-", manifest.dataset.lower()).strip("-") or "dataset"
    create_markdown_artifact(markdown=summary_markdown(manifest), key=f"{key}-verdict",
                             description="synthgate verdict")
    create_table_artifact(table=check_rows(manifest), key=f"{key}-gate-checks",
                          description="every gate check with its value and threshold")
