"""The typed manifest: one builder for `run` and `evaluate`, the README's contract keys, and a JSON round trip.

The renderers (CLI, Prefect artifacts) read its fields through one way of showing a value.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from flows.cli import show_verdict
from flows.gate import BudgetUse, Check, GateThresholds, Verdict, judge
from flows.release.artifacts import check_rows, summary_markdown
from flows.release.manifest import GeneratorRecord, Manifest, Sampling, Split, build_manifest, shown
from flows.sources import SourceInfo
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from tests.unit.test_gate import GOOD_FIDELITY, GOOD_PRIVACY

SOURCE = SourceInfo("/data/people.csv", "csv", "ab" * 32, 1_000, 2, encoding="utf-8", na_values=("", "NA"))
SCHEMA = Schema((ColumnSpec("age", ColumnKind.NUMERICAL, "int64", bounds=(17.0, 90.0), integer=True),
                 ColumnSpec("job", ColumnKind.CATEGORICAL, "object", categories=("nurse", "pilot"))))
# The README's contract ("What a run writes"): the keys other tools read.
RUN_KEYS = {"dataset", "created_at", "generator", "source", "split", "sampling", "metrics", "timings", "gate", "schema",
            "versions"}
EVALUATION_KEYS = {"dataset", "created_at", "evaluation", "source", "split", "rows", "metrics", "timings", "gate",
                   "schema", "versions"}


def _run(generator: GeneratorRecord | None = None, verdict: Verdict | None = None) -> Manifest:
    return build_manifest(
        dataset="people", source=SOURCE, schema=SCHEMA, split=Split(800, 200, 7, 0.2), fidelity=GOOD_FIDELITY,
        privacy=GOOD_PRIVACY, verdict=verdict or judge(GOOD_FIDELITY, GOOD_PRIVACY, GateThresholds()),
        timings={"fit_s": 1.23456}, generator=generator or GeneratorRecord("rbm", {"steps": 10}, 7, "cpu"),
        sampling=Sampling("job"),
    )


def _evaluation() -> Manifest:
    return build_manifest(
        dataset=SOURCE.uri, source=SOURCE, schema=SCHEMA, split=Split(800, 200, 0), fidelity=GOOD_FIDELITY,
        privacy=GOOD_PRIVACY, verdict=judge(GOOD_FIDELITY, GOOD_PRIVACY, GateThresholds()), timings={"total_s": 2.0},
        evaluation={"train": "t.csv", "holdout": "h.csv", "synthetic": "s.csv"}, rows=900,
    )


def test_one_builder_writes_the_contract_keys_of_a_run_and_of_an_evaluation() -> None:
    run = json.loads(_run().to_json())
    assert set(run) == RUN_KEYS
    assert run["split"] == {"train_rows": 800, "holdout_rows": 200, "holdout_fraction": 0.2, "seed": 7}
    assert run["sampling"] == {"rebalance": "job"}
    assert set(run["generator"]) == {"name", "params", "seed", "device", "differential_privacy", "cache_key",
                                     "reused"}
    fidelity = set(run["metrics"]["fidelity"])
    assert {"quality", "column_shapes", "column_pair_trends", "diagnostic", "c2st_auc"} <= fidelity
    assert {"dcr_share", "dcr_share_low", "exact_match_rate", "singling_out_risk", "inference_column",
            "membership_tpr_low_fpr_density"} <= set(run["metrics"]["privacy"])
    assert run["metrics"]["utility"]["lift_kept"] == pytest.approx((0.76 - 0.5) / (0.8 - 0.5))
    assert run["timings"]["fit_s"] == 1.235 and run["source"]["na_values"] == ["", "NA"]
    assert run["gate"]["passed"] and {"name", "label", "rule", "interval", "p_value"} <= set(run["gate"]["checks"][0])
    evaluation = json.loads(_evaluation().to_json())
    assert set(evaluation) == EVALUATION_KEYS
    assert evaluation["split"] == {"train_rows": 800, "holdout_rows": 200, "seed": 0} and evaluation["rows"] == 900


def test_the_manifest_reads_back_as_it_was_written() -> None:
    released = replace(_run(), release_id="r1", rows=10)
    assert Manifest.from_json(released.to_json()) == released
    evaluation = _evaluation()
    assert Manifest.from_json(evaluation.to_json()) == evaluation


def test_a_differentially_private_release_states_no_fact_of_the_real_rows() -> None:
    private = _run(GeneratorRecord("vae", {}, 0, "cpu", {"epsilon": 1.0, "delta": 1e-5}))
    columns = private.schema["columns"] if private.schema else {}
    assert "bounds" not in columns["age"] and "categories" not in columns["job"]
    assert _run().schema == SCHEMA.to_dict()


def test_every_renderer_shows_a_value_the_same_way(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A value that could not be computed (NaN, null in the JSON) reads n/a in the CLI, artifacts and report alike.

    The artifacts' table is strict JSON.
    """
    broken = Check.plain("fidelity.quality", math.nan, 0.75, ">=")
    manifest = _run(verdict=Verdict((broken, Check.plain("privacy.pii_leaks", 0, 0, "<="))))
    written = Manifest.from_json(manifest.to_json())
    assert shown(math.nan) == shown(written.gate.checks[0].value) == "n/a"
    markdown = summary_markdown(written)
    assert markdown.startswith("# people: REFUSED") and "(`fidelity.quality`): n/a, needs ≥ 0.75" in markdown
    assert check_rows(written)[0]["value"] is None and json.dumps(check_rows(written), allow_nan=False)
    show_verdict(written.gate, written.outcome, tmp_path)
    assert re.search(r"fidelity\.quality\s+n/a\s+>= 0\.75\s+FAIL", capsys.readouterr().out)


def test_an_evaluation_passes_where_a_run_publishes() -> None:
    assert (_run().outcome, _evaluation().outcome) == ("published", "passed")
    budget = judge(GOOD_FIDELITY, GOOD_PRIVACY, GateThresholds(), BudgetUse(9.0, 4.0, 10.0))
    assert _run(verdict=budget).outcome == "refused"
