"""The report: verdict first, the scores and figures, nothing loaded from anywhere, every value escaped.

And the figures themselves, drawn from awkward tables.
"""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flows.release.manifest import Manifest
from flows.release.report import render_report
from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from validation.plots import association_difference, column_distributions, correlation_difference

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def render(manifest: dict[str, Any], details: dict[str, Any] | None = None) -> str:
    """The report of a manifest as `manifest.json` would hold it."""
    return render_report(Manifest.from_dict(manifest), details=details)


def _manifest(passed: bool) -> dict[str, Any]:
    checks = [
        {"name": "quality", "value": 0.913, "threshold": 0.8, "comparison": ">=", "passed": True},
        {"name": "exact_match_rate", "value": 0.031, "threshold": 0.01, "comparison": "<=", "passed": passed},
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
        "source": {"uri": "https://warehouse.example/customers.csv", "format": "csv", "sha256": "ab" * 32, "rows": 400,
                   "columns": 2},
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
    page = render(_manifest(passed=True), {"column_shapes": {"age": 0.97, "colour": 0.91}})

    body = page[page.index("<body>") :]
    assert body.index("PUBLISHED") < body.index("Scores") < body.index("Gate checks")
    assert "REFUSED" not in page
    for shown in ("91.3%", "94.0%", "88.6%", "51.2%", "3.10%", "Exact-copy rate", "DCR share"):
        assert shown in page
    assert "Column shapes" in page and "width:97.0%" in page  # per-column bars
    assert "2 categories: blue, red" in page and "ctgan" in page and "2.5.0" in page


def test_refused_report_names_the_failed_checks() -> None:
    page = render(_manifest(passed=False))

    verdict = page[page.index("REFUSED") : page.index("</section>", page.index("REFUSED"))]
    assert "1 gate check failed" in verdict
    assert "Exact match rate" in verdict and "0.031" in verdict and "0.01" in verdict
    assert "Quality" not in verdict  # only the failed ones are named
    assert "PUBLISHED" not in page


def _png(width: int = 3, height: int = 2) -> bytes:
    """Just enough of a PNG (signature and IHDR) for the report, which embeds the bytes as they are."""
    return PNG_MAGIC + struct.pack(">I4sII", 13, b"IHDR", width, height) + b"\x08\x02\x00\x00\x00"


def _full_details() -> dict[str, Any]:
    return {
        "figures": {"Column distributions": _png(), "Association differences": _png(5, 5)},
        "expectations": [
            {"name": "expect_column_values_to_be_between", "success": True, "observed": "0 unexpected"},
            {"name": "expect_column_values_to_be_in_set", "success": False, "observed": "7 unexpected"},
        ],
        "expectations_docs": "expectations/index.html",
        "column_shapes": {"age": 0.97, "colour": 0.91},
        "pair_trends": {"age|colour": 0.88},
    }


def _references(page: str) -> list[str]:
    return re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.IGNORECASE)


def test_report_is_self_contained() -> None:
    page = render(_manifest(passed=True), _full_details())

    references = _references(page)
    assert not [r for r in references if re.match(r"(?:[a-z]+:)?//", r, flags=re.IGNORECASE)]
    assert not [r for r in references if r.startswith("data:") and not r.startswith("data:image/png;base64,")]
    assert "expectations/index.html" in references
    assert not re.search(r"url\(|@import|<script|<link|<iframe|<object|<embed", page, flags=re.IGNORECASE)
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == 2 and all('src="data:image/png;base64,' in img for img in images)


def test_figures_are_embedded_as_data_uris_with_alt_text() -> None:
    figure = _png(7, 4)
    details = {"figures": {"Column distributions": figure, "not a png": b"GIF89a", "not bytes": "x"}}
    page = render(_manifest(passed=True), details)

    encoded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">', page)
    assert [(base64.b64decode(data), alt) for data, alt in encoded] == [(figure, "Column distributions")]
    assert "not a png" not in page and "not bytes" not in page
    body = page[page.index("<body>") :]
    assert body.index("Scores") < body.index("Figures") < body.index("Gate checks")


def test_sections_come_in_reading_order() -> None:
    manifest = _manifest(passed=False)
    manifest["metrics"]["utility"] = {"target": "colour", "task": "classification", "metric": "macro_f1",
                                      "real_score": 0.8, "synthetic_score": 0.72, "baseline_score": 0.4,
                                      "ratio": 0.9, "lift_kept": 0.8, "real_lift_p": 1e-9, "gap_p": 0.01}
    page = render(manifest, _full_details())

    body = page[page.index("<body>") :]
    headings = ["REFUSED", "Scores", "Figures", "Gate checks", "Expectations", "Machine-learning utility",
                "<h2>Privacy", "Per column", "Timings", "<h2>Schema", "Provenance"]
    positions = [body.index(h) for h in headings]
    assert positions == sorted(positions)
    assert "80.0%" in body and "macro_f1" in body and "0.72" in body


def test_gate_checks_are_grouped_by_family_with_their_rule() -> None:
    manifest = _manifest(passed=False)
    manifest["gate"]["checks"] = [
        {"name": "privacy.dcr_share", "label": "DCR", "value": 0.7, "threshold": 0.6, "comparison": "<=",
         "passed": False},
        {"name": "fidelity.quality", "label": "Quality", "value": 0.9, "threshold": 0.75, "comparison": ">=",
         "passed": True},
        {"name": "utility.ratio", "value": 0.95, "threshold": 0.8, "comparison": ">=", "passed": True},
        {"name": "expectations.failed", "value": 0, "threshold": 0, "comparison": "<=", "passed": True},
    ]
    page = render(manifest)

    checks = page[page.index("Gate checks") :]
    order = [checks.index(f"<h3>{group}</h3>") for group in ("Fidelity", "Expectations", "Utility", "Privacy")]
    assert order == sorted(order)
    assert "≥ 0.75" in checks and "≤ 0.6" in checks
    verdict = page[page.index("REFUSED") : page.index("</section>", page.index("REFUSED"))]
    assert "<strong>DCR</strong> was 0.7 (must be ≤ 0.6)" in verdict


def test_expectations_list_failures_first_and_link_to_the_docs() -> None:
    page = render(_manifest(passed=True), _full_details())

    section = page[page.index("<h2>Expectations") :]
    assert "1 of 2 expectations met." in section
    assert section.index("expect_column_values_to_be_in_set") < section.index("expect_column_values_to_be_between")
    assert '<a href="expectations/index.html">' in section


@pytest.mark.parametrize("docs", ["https://evil.example/x", "//evil.example/x", "/etc/passwd", "../../x.html",
                                  "javascript:alert(1)", "C:\\x.html"])
def test_only_relative_docs_links_are_kept(docs: str) -> None:
    page = render(_manifest(passed=True), {**_full_details(), "expectations_docs": docs})

    assert "Full Data Docs" not in page and "expectations met" in page


def test_privacy_and_utility_read_in_words() -> None:
    manifest = _manifest(passed=True)
    manifest["metrics"]["privacy"].update({"singling_out_risk": 0.02, "inference_column": "colour", "new_thing": 3})
    page = render(manifest)

    privacy = page[page.index("<h2>Privacy") :]
    for shown in ("Singling-out attack: risk", "Column the attribute-inference attack guesses", "colour",
                  "New thing", "Synthetic rows that copy a training row exactly"):
        assert shown in privacy
    assert "No target column" in page  # no utility in the metrics


def test_values_are_escaped() -> None:
    manifest = _manifest(passed=False)
    evil = '<img src="https://evil.example/x.png" onerror="alert(1)">'
    manifest["dataset"] = evil
    manifest["gate"]["checks"][1]["name"] = evil
    manifest["generator"]["params"]["note"] = evil
    manifest["metrics"]["privacy"][evil] = evil
    manifest["metrics"]["utility"] = {"target": evil, "ratio": 0.9}
    manifest["timings"][evil] = 1.0
    details = {
        "column_shapes": {evil: 0.5},
        "pair_trends": {evil: 0.5},
        "figures": {evil: _png()},
        "expectations": [{"name": evil, "success": False, "observed": evil}],
        "expectations_docs": 'docs/"><script>alert(1)</script>',
    }
    page = render(manifest, details)

    assert "<script" not in page and 'src="https' not in page and "<img src=\"https" not in page
    assert [img for img in re.findall(r"<img [^>]*>", page) if 'src="data:image/png;base64,' not in img] == []
    assert page.count("&lt;img src=&quot;https://evil.example/x.png&quot;") >= 9


def test_classifier_section_follows_the_scores_with_the_columns_and_pairs_that_give_rows_away() -> None:
    manifest = _manifest(passed=True)
    manifest["metrics"]["fidelity"].update({"c2st_auc": 0.8312, "c2st_auc_low": 0.8201, "c2st_auc_high": 0.8423,
                                            "marginal_tv_3way": 0.0871, "marginal_tv_ratio": 1.43})
    details = {**_full_details(),
               "c2st": {"rows": 10_000, "importance": {"colour": 0.02, "age": 0.21},
                        "worst_pairs": [["age", "colour", 0.79], "not a pair"]},
               "marginals": {"order": 3, "distance": 0.0871, "holdout_distance": 0.0609, "ratio": 1.43, "sets": 455,
                             "of": 455, "rows": 6_513}}
    page = render(manifest, details)

    body = page[page.index("<body>") :]
    section = body[body.index("Can a classifier tell synthetic from real rows?") : body.index("<h2>Figures")]
    assert body.index("<h2>Scores") < body.index("Can a classifier tell")
    for shown in ("0.831", "0.820 to 0.842", "0.5: indistinguishable", "1.0: trivially told apart", "10,000",
                  "0.087", "1.43 × real unseen rows", "455 of 455 column triples", "0.061", "age × colour", "0.79"):
        assert shown in section, shown
    assert section.index("<td>age</td>") < section.index("<td>colour</td>")  # the most telling column first
    assert "width:42.0%" in section  # an AUC drop of 0.21 out of the 0.5 a column can take away
    assert "not a pair" not in section
    assert "Can a classifier tell" not in render(_manifest(passed=True))  # older manifests: no section


def test_missing_sections_are_left_out() -> None:
    page = render({"gate": {"passed": False, "checks": []}})

    assert "REFUSED" in page and "n/a" in page and "No target column" in page
    for absent in ("Schema", "Gate checks", "Per column", "Figures", "Expectations", "<h2>Privacy", "Timings"):
        assert absent not in page


@pytest.mark.parametrize("broken", [None, "text", 3, [], {}])
def test_malformed_sections_are_tolerated(broken: Any) -> None:
    manifest = _manifest(passed=True)
    manifest["metrics"]["utility"] = broken
    manifest["metrics"]["privacy"] = broken
    manifest["timings"] = broken
    details = dict.fromkeys(("figures", "expectations", "expectations_docs", "column_shapes", "pair_trends"), broken)
    page = render(manifest, details)

    assert "PUBLISHED" in page and "No target column" in page and "<img" not in page
    assert render({}).startswith("<!DOCTYPE html>")


def _awkward(seed: int) -> tuple[pd.DataFrame, Schema]:
    """The mixed table plus a constant column.

    The mixed table has NaNs, a tz-aware datetime, a nullable boolean and a high-cardinality category.
    """
    from tests.conftest import make_mixed_frame, mixed_schema_for

    frame = make_mixed_frame(300, seed).assign(constant=5)
    schema = mixed_schema_for(make_mixed_frame(300, 0))
    constant = ColumnSpec("constant", ColumnKind.NUMERICAL, "int64", bounds=(5.0, 5.0), integer=True)
    return frame, Schema((*schema.columns, constant))


def test_plots_cope_with_awkward_columns_and_are_deterministic() -> None:
    real, schema = _awkward(0)
    synthetic, _ = _awkward(1)
    scores = {"age": 0.5, "income": float("nan")}

    distributions = column_distributions(real, synthetic, schema, scores=scores)
    pairs = correlation_difference(real, synthetic, schema)
    single = Schema((schema["joined"],))

    for png in (distributions, pairs, column_distributions(real, synthetic, single),
                correlation_difference(real, synthetic, single)):
        assert png.startswith(PNG_MAGIC)
    assert column_distributions(real, synthetic, schema, scores=scores) == distributions
    assert struct.unpack(">II", distributions[16:24]) == (1200, 835)  # 3 x 3 panels at 100 dpi
    assert len(column_distributions(real, synthetic, schema, max_columns=2)) < len(distributions)


def test_association_difference_finds_a_broken_relationship() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(size=n)
    band = np.digitize(x, [-0.5, 0.5]).astype(str).astype(object)
    real = pd.DataFrame({"x": x, "y": x + 0.3 * rng.normal(size=n), "band": band, "noise": rng.normal(size=n),
                         "tier": np.where(rng.random(n) < 0.9, band, "z").astype(object)})
    synthetic = real.assign(y=rng.permutation(real["y"].to_numpy()), tier=rng.permutation(real["tier"].to_numpy()))
    schema = Schema(tuple(
        ColumnSpec(name, ColumnKind.CATEGORICAL if name in ("band", "tier") else ColumnKind.NUMERICAL, "float64")
        for name in real.columns
    ))

    difference = association_difference(real, synthetic, schema)

    assert difference.loc["x", "y"] > 0.85 and difference.loc["y", "x"] == difference.loc["x", "y"]  # Pearson
    assert difference.loc["band", "tier"] > 0.7  # Cramér's V
    assert difference.loc["y", "band"] > 0.6  # correlation ratio
    assert difference.loc["x", "band"] < 0.01 and difference.loc["x", "noise"] < 0.01  # untouched pairs
    assert np.isnan(np.diag(difference.to_numpy())).all()
    assert np.nanmax(difference.to_numpy()) <= 1.0


def test_plots_refuse_tables_without_the_columns() -> None:
    real, schema = _awkward(0)
    with pytest.raises(BadInputError, match="synthetic table lacks column"):
        column_distributions(real, real.drop(columns="age"), schema)
    with pytest.raises(BadInputError, match="no learned columns"):
        correlation_difference(real, real, Schema((schema["email"],)))
