"""The gate's calibration benchmark on a tiny configuration, so it cannot rot.

The plants are seeded and chosen by their rules, and a run writes one complete record per case and the markdown
summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchmarks.calibrate as calibrate
from benchmarks.calibrate import CASES, NotApplicable, Task, main, merged, run_case, shuffled, split
from benchmarks.datasets import ADULT

pytestmark = pytest.mark.slow  # whole runs: deselect with -m "not slow"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-row sample of Adult as a CSV calibration folder (the benchmark reads it as published)."""
    folder = tmp_path_factory.mktemp("calibration")
    pd.read_parquet(ADULT).sample(600, random_state=0).to_csv(folder / "tiny.csv", index=False)
    return folder


def test_every_plant_is_seeded_and_keeps_the_synthetic_size(tiny: Path) -> None:
    frame = pd.read_csv(tiny / "tiny.csv")
    parts = split(frame, "thirds", seed=3)
    assert (len(parts.train), len(parts.holdout), len(parts.third)) == (200, 200, 200)
    for name, plant in CASES.items():
        first, again = (plant(parts, np.random.default_rng(7)) for _ in range(2))
        assert first.synthetic.equals(again.synthetic), name
        assert len(first.synthetic) == len(parts.third), name
    pair = shuffled(parts, np.random.default_rng(0))
    assert pair.expected == ("fidelity.pair_trend[education|education-num]",)


def test_a_table_without_a_common_category_has_no_merged_case() -> None:
    rng = np.random.default_rng(0)
    numbers = pd.DataFrame({"x": rng.normal(size=90), "y": rng.normal(size=90)})
    with pytest.raises(NotApplicable):
        merged(split(numbers, "thirds", seed=0), rng)
    with pytest.raises(NotApplicable):  # independent columns: no strong pair to shuffle
        shuffled(split(numbers, "thirds", seed=0), rng)


def test_a_small_run_writes_one_record_per_case_and_the_summary(tiny: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    code = main(["--data-dir", str(tiny), "--tables", "tiny", "--seeds", "2", "--shapes", "thirds",
                 "--cases", "honest,shuffled,copy", "--out", str(tmp_path), "--markdown", str(summary)])
    assert code == 0
    (results,) = tmp_path.glob("*-calibrate.jsonl")
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["seed"], r["case"]) for r in records] == [(s, c) for s in (0, 1) for c in ("honest", "shuffled", "copy")]
    for record in records:
        assert record["status"] == "ok", record
        assert record["train_rows"] + record["holdout_rows"] + record["synthetic_rows"] == record["rows"] == 600
        assert isinstance(record["passed"], bool) and record["elapsed_s"] > 0
        assert all({"name", "value", "threshold"} <= set(check) for check in record["failed"])
    copies = [r for r in records if r["case"] == "copy"]
    assert all(not r["passed"] and r["refused_by_expected"] for r in copies)
    assert "privacy.exact_match_rate" in {check["name"] for check in copies[0]["failed"]}
    text = summary.read_text()
    assert "| tiny | thirds | 200/200/200 |" in text and "Seconds per case" in text


def test_a_crash_of_the_gate_is_recorded_and_the_summary_still_renders(tiny: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_: object) -> None:
        raise RuntimeError("the gate fell over\nsecond line")

    monkeypatch.setattr(calibrate, "judge", crash)
    record = run_case(Task("tiny", pd.read_csv(tiny / "tiny.csv"), "thirds", 0, "copy"))
    assert record["status"] == "crashed"
    assert record["error"].startswith("RuntimeError: the gate fell over (at tests/integration/test_calibrate.py:")
    text = calibrate.calibration_markdown([record], seeds=1)
    assert "0/0 (0) +1 crashed" in text and "RuntimeError: the gate fell over" in text
