"""The benchmark harness on tiny tables, so it cannot rot.

It runs the datasets, a pair in a forked child, the markdown and ratio tables, and the whole command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.datasets import DATASETS, calibration, calibration_tables, load
from benchmarks.report import ratio_table, truth_error
from benchmarks.run import main, run_pair
from benchmarks.systems import System
from generators.tabular.inference import infer_schema


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_is_seeded_and_its_planted_facts_hold_on_the_real_rows(name: str) -> None:
    first, again = load(name, rows=2_000, seed=0), load(name, rows=2_000, seed=0)
    assert first.frame.equals(again.frame)
    frame, _ = infer_schema(first.frame, target=first.target)
    for truth in first.truths:  # on the real rows the statistic sits near its planted value
        assert abs(truth.statistic(frame) - truth.planted) < 0.08, truth.name


def test_the_stress_tables_have_what_they_promise() -> None:
    _, events = infer_schema(load("events").frame)
    assert events["occurred_at"].timezone == "America/New_York"
    assert all(spec.nullable for spec in events.learned)
    customers = load("customers").frame
    assert customers["town"].nunique() >= 10_000
    _, schema = infer_schema(customers)
    assert schema["customer_id"].kind.value == "id" and schema["email"].kind.value == "pii"
    assert load("wide", rows=100).frame.shape[1] >= 100
    narrow = load("wide", rows=2_000, width=40)  # quick mode's form keeps the planted facts' columns
    frame, _ = infer_schema(narrow.frame, target=narrow.target)
    assert 35 <= narrow.frame.shape[1] <= 40 and all(abs(t.statistic(frame) - t.planted) < 0.08 for t in narrow.truths)


def test_a_pair_runs_in_a_child_and_reports_every_measure() -> None:
    row = run_pair(load("events", rows=400), System("gmm", "synthgate", {"components": [2]}), 0, 300, 16)
    assert row["status"] == "ok", row.get("trace")
    assert row["sample_rows"] == 400 and row["fit_s"] > 0 and row["peak_rss_mb"] > 50
    assert 0 < row["quality"] <= 1 and 0 <= row["dcr_share"] <= 1 and row["diagnostic"] > 0.5
    assert row["utility_metric"] == "macro_f1" and len(row["truths"]) == 3
    assert truth_error(row) == truth_error(row)  # finite


def test_auto_is_benchmarked_as_a_release_runs_it_and_names_its_choice() -> None:
    from generators.registry import GENERATORS

    row = run_pair(load("events", rows=400), System("auto", "synthgate"), 0, 300, 16)
    assert row["status"] == "ok", row.get("trace")
    assert row["chosen"] in GENERATORS and row["sample_rows"] == 400 and 0 < row["c2st_auc"] <= 1


def test_a_calibration_table_is_read_as_a_run_reads_it(tmp_path: Path) -> None:
    (tmp_path / "tiny.csv").write_text('size,"shape, as drawn",class\n1.5,"round, small",a\n?,square,b\n'
                                       + "".join(f"{i}.25,square,{'ab'[i % 2]}\n" for i in range(20)))
    assert list(calibration_tables(tmp_path)) == ["tiny"] and calibration_tables(tmp_path / "absent") == {}
    table = calibration(tmp_path / "tiny.csv")
    assert table.name == "tiny" and table.frame.shape == (22, 3) and table.frame["size"].isna().sum() == 1
    assert table.frame.loc[0, "shape, as drawn"] == "round, small" and table.target == "class" and table.truths == ()


def test_a_pair_that_overruns_is_recorded_not_fatal() -> None:
    row = run_pair(load("adult", rows=400), System("gmm", "synthgate"), 0, timeout_s=0.05, memory_gb=16)
    assert row["status"] == "timeout"


def test_ratios_compare_ours_with_each_peer_on_the_same_dataset() -> None:
    rows = [
        {"dataset": "a", "system": "gmm", "family": "synthgate", "status": "ok", "fit_s": 2.0, "quality": 0.9},
        {"dataset": "a", "system": "sdv-x", "family": "sdv", "status": "ok", "fit_s": 8.0, "quality": 0.85},
        {"dataset": "b", "system": "gmm", "family": "synthgate", "status": "ok", "fit_s": 1.0, "quality": 0.7},
    ]
    table = ratio_table(rows)
    assert "| a | gmm | 0.25 | +0.050 |" in table
    assert "| b | gmm | – | – |" in table


def test_the_command_writes_results_and_appends_the_table(tmp_path: Path) -> None:
    markdown = tmp_path / "BENCH.md"
    code = main(
        [
            "--datasets",
            "events",
            "--systems",
            "gmm",
            "--rows",
            "300",
            "--out",
            str(tmp_path),
            "--markdown",
            str(markdown),
        ]
    )
    assert code == 0
    (results,) = tmp_path.glob("*-quick.jsonl")
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["dataset"], r["system"], r["status"]) for r in rows] == [
        ("events", "real-unseen", "ok"), ("events", "independent-columns", "ok"), ("events", "gmm", "ok")]
    text = markdown.read_text()
    assert "### events (300 rows" in text and "| gmm |" in text and "Command: `python -m benchmarks.run" in text


def test_a_capped_peer_is_extrapolated_and_marked_as_such(tmp_path: Path) -> None:
    from benchmarks.report import append_markdown

    row = {
        "dataset": "adult",
        "rows": 100,
        "system": "sdv-ctgan-30",
        "family": "sdv",
        "params": {"epochs": 30},
        "status": "ok",
        "fit_s": 60.0,
        "sample_s": 1.0,
        "peak_rss_mb": 500,
        "quality": 0.8,
        "column_shapes": 0.8,
        "column_pair_trends": 0.8,
        "diagnostic": 1.0,
        "dcr_share": 0.5,
        "exact_match_rate": 0.0,
        "truths": [],
    }
    env = {"cores": 2, "gpu": "none", "python": "3.11", "machine": "x86_64", "versions": {}}
    append_markdown(tmp_path / "B.md", [row], env, "cmd", "full", tmp_path / "r.jsonl", None)
    text = (tmp_path / "B.md").read_text()
    assert "2.0 s per epoch" in text and "**extrapolated** (not measured) fit at 300 epochs: 600 s" in text


def test_quick_mode_caps_only_registered_generators_with_valid_settings() -> None:
    from benchmarks.run import MODES
    from generators.registry import GENERATORS, create

    for name, params in MODES["quick"].capped.items():
        assert name in GENERATORS
        config = create(name, params).config
        assert all(getattr(config, key) == value for key, value in params.items())
