"""Drift between releases: private source profiles, the distances, the manifest's record and the report's section.

Releases are made with the real `publish_release` (and its retention) on small frames; the drift is measured by
the real `measure_drift` against the release `CURRENT` names.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.gate import GateThresholds, judge
from flows.release.drift import SourceProfile, measure_drift, profile, read_profile, write_profile
from flows.release.manifest import Drift, GeneratorRecord, Manifest, Metrics, PrivacyMetrics, Split, build_manifest
from flows.release.publish import profile_path, publish_release, read_current
from flows.release.report import render_report
from generators.tabular.inference import infer_schema
from generators.tabular.schema import Schema
from tests.unit.test_gate import GOOD_FIDELITY, GOOD_PRIVACY
from tests.unit.test_manifest import SCHEMA, SOURCE

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def source(rows: int = 400, seed: int = 0, shift: float = 0.0, mix: float = 0.5) -> pd.DataFrame:
    """A table with a number (moved by `shift`), a category (`mix`: share of "a") and a boolean, with some nulls."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40 + shift, 10, rows).round(1)
    age[:: 20] = np.nan
    return pd.DataFrame({"age": age, "job": np.where(rng.random(rows) < mix, "a", "b"),
                         "married": rng.random(rows) < 0.3})


def schema_of(frame: pd.DataFrame) -> Schema:
    return infer_schema(frame)[1]


def manifest(minute: int, drift: Drift | None = None, rows: int = 400) -> Manifest:
    """The least a release's manifest holds, with `drift`."""
    return replace(Manifest.from_dict({
        "dataset": "ds",
        "created_at": (START + timedelta(minutes=minute)).isoformat(timespec="seconds"),
        "generator": {"name": "gaussian_copula", "params": {}, "seed": 0},
        "source": {"uri": "data/people.csv", "format": "csv", "sha256": "ab" * 32, "rows": rows, "columns": 3},
        "split": {"train_rows": rows - rows // 4, "holdout_rows": rows // 4, "seed": 0},
        "gate": {"checks": [{"name": "quality", "value": 0.9, "threshold": 0.8, "comparison": ">=", "passed": True}]},
    }), drift=drift)


def release(out: Path, minute: int, real: pd.DataFrame, synthetic: pd.DataFrame, keep: int | None = None
            ) -> tuple[str, Drift | None]:
    """Measure drift against CURRENT, then publish `synthetic` with its manifest and the source's profile."""
    release_id = f"20260105T12{minute:02d}00Z-00000{minute}"
    measured = measure_drift(out, "ds", read_current(out, "ds"), real, synthetic, schema_of(real))
    publish_release(out, "ds", release_id, synthetic, manifest(minute, measured.drift, len(real)), render_report,
                    profile=lambda path: write_profile(path, measured.profile), keep=keep)
    return release_id, measured.drift


def test_a_profile_reads_back_as_written(tmp_path: Path) -> None:
    real = source()
    written = profile(real, schema_of(real))

    write_profile(tmp_path / "p.npz", written)
    read = read_profile(tmp_path / "p.npz")

    assert isinstance(read, SourceProfile)
    assert (read.rows, dict(read.columns)) == (written.rows, dict(written.columns))
    assert read.hashes.dtype == np.uint64 and np.array_equal(read.hashes, written.hashes)
    assert read_profile(tmp_path / "missing.npz") is None


def test_the_first_release_has_no_drift_and_an_identical_source_drifts_by_nothing(tmp_path: Path) -> None:
    real = source()
    first, none = release(tmp_path, 0, real, source(seed=1))
    _, drift = release(tmp_path, 1, real.sample(frac=1.0, random_state=3), source(seed=1))

    assert none is None
    assert drift is not None and drift.previous == first
    assert drift.source == {"age": 0.0, "job": 0.0, "married": 0.0}
    assert (drift.source_rows_added, drift.source_rows_removed) == (0, 0)
    assert drift.synthetic == {"age": 0.0, "job": 0.0, "married": 0.0}


def test_a_shifted_number_and_a_changed_mix_drift_in_the_right_order(tmp_path: Path) -> None:
    release(tmp_path, 0, source(), source(seed=1))
    _, small = release(tmp_path, 1, source(seed=2, shift=2.0, mix=0.55), source(seed=3))
    _, large = release(tmp_path, 2, source(seed=4, shift=15.0, mix=0.9), source(seed=5, shift=15.0))

    assert small is not None and large is not None
    assert 0 < small.source["age"] < large.source["age"]  # type: ignore[index]
    assert 0 < small.source["job"] < large.source["job"]  # type: ignore[index]
    assert large.largest_source is not None and large.largest_source[0] == "age"
    assert large.synthetic["age"] > 0.3 > small.synthetic["age"]


def test_appended_and_dropped_rows_are_counted_exactly_as_multisets(tmp_path: Path) -> None:
    real = source().assign(age=np.arange(400.0))  # every row distinct
    release(tmp_path, 0, real, source(seed=1))
    new = source(rows=40, seed=9).assign(age=np.arange(1000.0, 1040.0))
    grown = pd.concat([real.iloc[25:], new, real.iloc[25:28]], ignore_index=True)

    _, drift = release(tmp_path, 1, grown, source(seed=1))

    assert drift is not None
    assert (drift.source_rows_added, drift.source_rows_removed) == (43, 25)  # 3 kept rows repeated count as added


def test_the_drift_section_comes_first_with_a_warning_only_when_the_source_moved_much() -> None:
    quiet = Drift("r0", {"age": 0.02}, {"age": 0.05, "job": 0.01}, 10, 5)
    loud_column = replace(quiet, source={"age": 0.25, "job": 0.01})
    loud_rows = replace(quiet, source_rows_added=50)  # 55 of the previous 355 rows changed

    def order(drift: Drift) -> tuple[int, int, int, bool]:
        page = render_report(replace(manifest(0, drift), metrics=Metrics(privacy=PrivacyMetrics({"dcr_share": 0.5}))))
        return (page.index("Drift since release r0"), page.index('class="verdict'), page.index("<h2>Privacy</h2>"),
                "Warning:" in page)

    drift_at, verdict_at, privacy_at, warned = order(quiet)
    assert drift_at > privacy_at > verdict_at and not warned
    for loud in (loud_column, loud_rows):
        drift_at, verdict_at, _, warned = order(loud)
        assert drift_at < verdict_at and warned
    assert "Drift since" not in render_report(manifest(0))


def test_the_manifest_holds_distances_never_the_profiles_real_values(tmp_path: Path) -> None:
    real = source()
    release(tmp_path, 0, real, source(seed=1))
    second, _ = release(tmp_path, 1, source(seed=2, shift=3.0), source(seed=3))

    text = (tmp_path / "ds" / "releases" / second / "manifest.json").read_text()
    read = Manifest.from_json(text)
    kept = read_profile(profile_path(tmp_path / "ds", second))

    assert read.drift is not None and read.drift == Drift.from_dict(read.drift.to_dict())
    assert json.loads(text)["drift"]["largest_source"]["column"] == read.drift.largest_source[0]  # type: ignore[index]
    assert kept is not None and kept.columns["age"].cuts
    numbers = set(_numbers(json.loads(text)))
    assert not numbers & set(kept.columns["age"].cuts or ())


@pytest.mark.parametrize("private", [False, True])
def test_under_differential_privacy_only_the_synthetic_side_is_recorded(private: bool) -> None:
    drift = Drift("r0", {"age": 0.1}, {"age": 0.3}, 4, 2)
    epsilon = {"epsilon": 1.0, "delta": 1e-5} if private else None
    built = build_manifest(
        dataset="ds", source=SOURCE, schema=SCHEMA, split=Split(3, 1, 0), fidelity=GOOD_FIDELITY,
        privacy=GOOD_PRIVACY, verdict=judge(GOOD_FIDELITY, GOOD_PRIVACY, GateThresholds()), timings={},
        generator=GeneratorRecord("gmm", differential_privacy=epsilon), drift=drift)

    assert built.drift == (Drift("r0", {"age": 0.1}) if private else drift)
    read = Manifest.from_json(built.to_json()).drift
    assert read is not None and set(read.to_dict()) == ({"previous", "synthetic"} if private else
                                                        {"previous", "synthetic", "source", "largest_source",
                                                         "source_rows_added", "source_rows_removed"})


def test_retention_deletes_a_releases_profile_with_it(tmp_path: Path) -> None:
    first, _ = release(tmp_path, 0, source(), source(seed=1))
    second, _ = release(tmp_path, 1, source(), source(seed=1))
    assert profile_path(tmp_path / "ds", first).is_file()

    third, _ = release(tmp_path, 2, source(), source(seed=1), keep=1)

    assert sorted(p.stem for p in (tmp_path / "ds" / ".profiles").iterdir()) == [third]
    assert not (tmp_path / "ds" / "releases" / second).exists()


def _numbers(value: object) -> list[float]:
    """Every number anywhere in a JSON value."""
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []
