"""The report: verdict first, the scores, nothing loaded from anywhere, every value escaped."""

from __future__ import annotations

import re
from typing import Any

from flows.report import render_report
from generators.schema import ColumnKind, ColumnSpec, Schema


def _manifest(passed: bool) -> dict[str, Any]:
    checks = [
        {"name": "quality", "value": 0.913, "threshold": 0.8, "passed": True},
        {"name": "exact_match_rate", "value": 0.031, "threshold": 0.01, "passed": passed},
    ]
    schema = Schema(
        (
            ColumnSpec("age", ColumnKind.NUMERICAL, "int64", bounds=(18.0, 89.0), integer=True),
            ColumnSpec("colour", ColumnKind.CATEGORICAL, "object", nullable=True, categories=("blue", "red")),
        )
    )
    return {
        "release_id": "20261121T120501Z-3f9a1c",
        "dataset": "customers",
        "created_at": "2026-11-21T12:05:01+00:00",
        "generator": {"name": "ctgan", "params": {"epochs": 300}, "seed": 7},
        "source": {"uri": "https://warehouse.example/customers.csv", "sha256": "ab" * 32, "rows": 400, "columns": 2},
        "rows": 400,
        "files": [{"path": "data/part-00000.parquet", "sha256": "cd" * 32, "rows": 400}],
        "metrics": {
            "fidelity": {"quality": 0.913, "column_shapes": 0.94, "column_pair_trends": 0.886},
            "privacy": {"dcr_share": 0.512, "exact_match_rate": 0.031},
        },
        "timings": {"fit_s": 12.5, "sample_s": 0.4, "validate_s": 3.1, "total_s": 16.0},
        "gate": {"passed": passed, "checks": checks},
        "versions": {"synthgate": "0.1.0", "python": "3.11.7", "torch": "2.5.0", "sdmetrics": "0.17", "prefect": "3.1"},
        "schema": schema.to_dict(),
    }


def test_published_report_leads_with_the_verdict_and_shows_the_scores() -> None:
    page = render_report(_manifest(passed=True), details={"column_shapes": {"age": 0.97, "colour": 0.91}})

    body = page[page.index("<body>") :]
    assert body.index("PUBLISHED") < body.index("Scores") < body.index("Gate checks")
    assert "REFUSED" not in page
    for shown in ("91.3%", "94.0%", "88.6%", "51.2%", "3.10%", "Exact-copy rate", "DCR share"):
        assert shown in page
    assert "Column shapes" in page and "width:97.0%" in page  # per-column bars
    assert "2 categories: blue, red" in page and "ctgan" in page and "2.5.0" in page


def test_refused_report_names_the_failed_checks() -> None:
    page = render_report(_manifest(passed=False))

    verdict = page[page.index("REFUSED") : page.index("</section>", page.index("REFUSED"))]
    assert "1 gate check failed" in verdict
    assert "Exact match rate" in verdict and "0.031" in verdict and "0.01" in verdict
    assert "Quality" not in verdict  # only the failed ones are named
    assert "PUBLISHED" not in page


def test_report_is_self_contained() -> None:
    page = render_report(_manifest(passed=True), details={"column_shapes": {"age": 0.97}})

    references = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.IGNORECASE)
    assert not [r for r in references if re.match(r"(?:[a-z]+:)?//", r, flags=re.IGNORECASE)]
    assert not re.search(r"url\(|@import|<script|<link|<img|<iframe", page, flags=re.IGNORECASE)


def test_values_are_escaped() -> None:
    manifest = _manifest(passed=False)
    evil = '<img src="https://evil.example/x.png" onerror="alert(1)">'
    manifest["dataset"] = evil
    manifest["gate"]["checks"][1]["name"] = evil
    manifest["generator"]["params"]["note"] = evil
    page = render_report(manifest, details={"column_shapes": {evil: 0.5}})

    assert "<img" not in page and 'src="https' not in page
    assert "&lt;img src=&quot;https://evil.example/x.png&quot;" in page


def test_missing_sections_are_left_out() -> None:
    page = render_report({"gate": {"passed": False, "checks": []}})

    assert "REFUSED" in page and "n/a" in page
    assert "Schema" not in page and "Gate checks" not in page and "Per column" not in page
