"""The report of a realistic run, opened in headless Chromium.

It loads, requests nothing beyond the file and its data: URIs, every figure decodes, the verdict is on screen, and
a full-page screenshot comes out.

Skipped when chromium is missing, unless SYNTHGATE_BROWSER=required (as `make test` sets), when it fails.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flows.gate import Check, Verdict
from flows.release.manifest import Manifest
from flows.release.report import render_report
from flows.sources import load_table
from tests.integration.browser import PNG_MAGIC, find_chromium, open_page
from validation.c2st import classifier_two_sample
from validation.fidelity import evaluate_fidelity
from validation.plots import column_distributions, correlation_difference

pytestmark = pytest.mark.slow  # whole runs: deselect with -m "not slow"

ADULT = Path(__file__).resolve().parents[2] / "data" / "adult.parquet"
WIDTH = 1200


def _require_chromium() -> None:
    if find_chromium() is not None:
        return
    if os.environ.get("SYNTHGATE_BROWSER") == "required":
        pytest.fail("SYNTHGATE_BROWSER=required but chromium is not installed (apt-get install chromium)")
    pytest.skip("chromium is not installed; SYNTHGATE_BROWSER=required makes this a failure")


def _realistic_report() -> str:
    """A run on Adult refused by one failed expectation, scored by the real fidelity code and drawn by the real plots.

    3,000 real rows are the training table and 3,000 others the "synthetic" one; the privacy and utility numbers
    are plausible constants (this test is about rendering, not measuring).
    """
    table = load_table(ADULT, {}, None)
    order = np.random.default_rng(0).permutation(len(table.frame))
    train, synthetic = (table.frame.iloc[order[a:b]].reset_index(drop=True) for a, b in ((0, 3000), (3000, 6000)))
    fidelity = evaluate_fidelity(train, synthetic, table.schema)
    c2st = classifier_two_sample(train, synthetic, table.schema, seed=0)
    verdict = Verdict((
        Check.plain("fidelity.quality", fidelity.quality, 0.75, ">="),
        Check.plain("expectations.failed", 1, 0, "<="),
        Check.plain("utility.ratio", 0.97, 0.8, ">="),
        Check.plain("privacy.dcr_share", 0.503, 0.6, "<="),
        Check.plain("privacy.exact_match_rate", 0.0, 0.005, "<="),
    ))
    manifest: dict[str, Any] = {
        "run_id": "20261121T120501Z-3f9a1c",
        "dataset": "adult",
        "created_at": "2026-11-21T12:05:01+00:00",
        "generator": {"name": "holdout-rows", "params": {}, "seed": 0},
        "source": {"uri": str(ADULT), "format": "parquet", "sha256": "", "rows": len(table.frame),
                   "columns": len(table.schema)},
        "metrics": {
            "fidelity": {"quality": fidelity.quality, "column_shapes": fidelity.column_shapes,
                         "column_pair_trends": fidelity.column_pair_trends, "c2st_auc": c2st.auc,
                         "c2st_auc_low": c2st.auc_ci[0], "c2st_auc_high": c2st.auc_ci[1]},
            "utility": {"target": "class", "task": "classification", "metric": "macro_f1",
                        "real_score": 0.78, "synthetic_score": 0.757, "ratio": 0.97},
            "privacy": {"pii_leaks": 0, "dcr_share": 0.503, "dcr_p_value": 0.61, "exact_match_rate": 0.0,
                        "holdout_exact_match_rate": 0.0, "singling_out_risk": 0.012, "inference_column": "class"},
        },
        "timings": {"fit_s": 41.2, "sample_s": 0.8, "validate_s": fidelity.elapsed_s, "privacy_s": 3.5},
        "gate": verdict.to_dict(),
        "schema": table.schema.to_dict(),
    }
    details = {
        "figures": {
            "Column distributions, worst shape score first": column_distributions(
                train, synthetic, table.schema, scores=fidelity.per_column),
            "Association differences between column pairs": correlation_difference(train, synthetic, table.schema),
        },
        "expectations": [
            {"name": "expect_column_values_to_be_between(age)", "success": True, "observed": "0 unexpected"},
            {"name": "expect_column_values_to_be_in_set(workclass)", "success": False, "observed": "3 unexpected"},
        ],
        "expectations_docs": "expectations/index.html",
        "column_shapes": fidelity.per_column,
        "pair_trends": fidelity.per_pair,
        "c2st": {"rows": c2st.rows, "importance": c2st.importance, "worst_pairs": [list(p) for p in c2st.worst_pairs]},
    }
    return render_report(Manifest.from_dict(manifest), details=details)


def test_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    _require_chromium()
    report = tmp_path / "report.html"
    report.write_text(_realistic_report(), encoding="utf-8")

    with open_page(report, width=WIDTH) as page:
        images = page.evaluate("[...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
        verdict = page.evaluate(
            "(() => { const e = document.querySelector('.verdict .word'); const r = e.getBoundingClientRect();"
            " return [e.innerText, r.top, r.height, innerHeight, getComputedStyle(e).visibility]; })()"
        )
        text = page.evaluate("document.body.innerText")
        c2st_section = page.evaluate(
            "(() => { const h = [...document.querySelectorAll('h2')]"
            ".find(e => e.innerText.startsWith('Can a classifier')); if (!h) return null;"
            " const s = h.parentElement, r = s.getBoundingClientRect();"
            " return [r.height, getComputedStyle(s).visibility, s.querySelectorAll('tr').length, s.innerText]; })()"
        )
        png = page.screenshot()
        requests = list(page.requests)
        canary = tmp_path / "canary.html"  # proves the request log would catch a page that reaches out
        canary.write_text('<img src="http://127.0.0.1:9/x.png"><p style="background:url(http://127.0.0.1:9/y.png)">x</p>')
        page.navigate(canary)
        reached = sorted(url for url in page.requests if not url.startswith("file:///"))

    assert requests and requests[0] == report.as_uri()
    assert [url for url in requests if not url.startswith(("file:///", "data:"))] == []
    assert reached == ["http://127.0.0.1:9/x.png", "http://127.0.0.1:9/y.png"]
    assert len(images) == 2 and all(complete and width > 0 for _, complete, width in images), images
    word, top, height, viewport, visibility = verdict
    assert word == "REFUSED" and 0 <= top < viewport and height > 0 and visibility == "visible"
    assert "1 gate check failed" in text and "expectations.failed" in text
    assert "Expectations" in text and "Machine-learning utility" in text and "Privacy" in text
    assert c2st_section is not None, "the C2ST section is missing"
    height, visibility, rows, words = c2st_section
    assert height > 100 and visibility == "visible" and rows >= len(table_columns()), c2st_section
    assert "Classifier ROC AUC" in words and "Columns that give them away" in words
    assert png.startswith(PNG_MAGIC)
    width, full_height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert width == WIDTH and full_height > viewport


def table_columns() -> list[str]:
    """The learned columns of the bundled Adult table: the C2ST section ranks each of them."""
    return [spec.name for spec in load_table(ADULT, {}, None).schema.learned]
