"""Reruns: a cached model is reused instead of fitted, an unchanged run writes nothing, and a changed one runs.

The flow tests run the real CLI on 600 rows of Adult with the quick gmm, against a temporary Prefect server; the
fingerprint and cache tests need no server.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from prefect.events import Event
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from typer.testing import CliRunner

from flows.cache import KEEP, MODEL_FILE, ModelCache, rows_digest
from flows.cli import EXIT_PUBLISHED, EXIT_REFUSED, app
from flows.config import RunConfig, Schedule
from flows.release.events import UNCHANGED
from flows.release.publish import sha256_file
from flows.sources import SourceInfo
from flows.steps import run_fingerprint
from generators import registry
from generators.registry import create
from generators.tabular.schema import Schema

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["age", "workclass", "sex", "hours-per-week", "class"]
runner = CliRunner()


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """600 rows and five columns of the demo table: a gmm run on it takes seconds."""
    path = tmp_path / "adult.csv"
    pd.read_parquet(ROOT / "data" / "adult.parquet")[COLUMNS].sample(600, random_state=0).to_csv(path, index=False)
    return path


def run_cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args])
    return result.exit_code, result.output


def new_manifest(dataset_dir: Path, kind: str, before: set[str]) -> dict[str, Any]:
    """The manifest of the one release or refusal that appeared since `before` (the names there then)."""
    (name,) = {p.name for p in (dataset_dir / kind).iterdir()} - before
    return json.loads((dataset_dir / kind / name / "manifest.json").read_text())


def names(dataset_dir: Path, kind: str) -> set[str]:
    folder = dataset_dir / kind
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def tree(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under `folder`: its sha256 (files) and modification time, to prove nothing was written."""
    return {str(p.relative_to(folder)): (sha256_file(p) if p.is_file() else "", p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.slow
def test_a_refused_run_reruns_on_its_cached_model(prefect_api: None, source: Path, tmp_path: Path) -> None:
    refused = tmp_path / "refused.yaml"  # a budget a fit without DP (infinite epsilon) always exceeds
    refused.write_text(yaml.safe_dump({"generator": "gmm", "privacy_budget": 1}))
    args = ("--source", str(source), "--out", str(tmp_path / "out"), "--name", "adult", "--config", str(refused))
    dataset = tmp_path / "out" / "adult"

    code, output = run_cli(*args)
    assert code == EXIT_REFUSED, output
    fitted = new_manifest(dataset, "refused", set())["generator"]
    assert fitted["reused"] is False
    cached = dataset / ".models" / fitted["cache_key"] / MODEL_FILE
    stored, digest = cached.stat(), sha256_file(cached)

    before = names(dataset, "refused")
    code, output = run_cli(*args)
    assert code == EXIT_REFUSED and "unchanged" not in output, output  # a refusal is never "unchanged"
    again = new_manifest(dataset, "refused", before)
    assert again["generator"]["reused"] is True and again["generator"]["cache_key"] == fitted["cache_key"]
    assert (cached.stat().st_ino, cached.stat().st_mtime_ns) == (stored.st_ino, stored.st_mtime_ns)  # not re-stored
    assert sha256_file(cached) == digest
    first = json.loads(next((dataset / "refused").glob("*/manifest.json")).read_text())
    assert again["metrics"]["fidelity"] == first["metrics"]["fidelity"]  # the same model sampled the same rows

    cached.write_bytes(b"torn by a crash")  # a corrupt entry: a miss, fitted and stored again, never a crash
    before = names(dataset, "refused")
    code, output = run_cli(*args)
    assert code == EXIT_REFUSED, output
    assert new_manifest(dataset, "refused", before)["generator"]["reused"] is False
    assert registry.load(cached).name == "gmm"

    replaced = cached.stat()
    before = names(dataset, "refused")
    code, output = run_cli(*args, "--retrain")
    assert code == EXIT_REFUSED, output
    retrained = new_manifest(dataset, "refused", before)["generator"]
    assert retrained["reused"] is False and retrained["cache_key"] == fitted["cache_key"]
    assert cached.stat().st_ino != replaced.st_ino  # fitted again, and the entry replaced by a rename


@pytest.mark.slow
def test_a_rerun_on_the_same_rows_and_config_writes_nothing(prefect_api: None, source: Path, tmp_path: Path) -> None:
    args = ("--source", str(source), "--out", str(tmp_path / "out"), "--name", "adult", "--generator", "gmm")
    dataset = tmp_path / "out" / "adult"
    code, output = run_cli(*args)
    assert code == EXIT_PUBLISHED, output
    release_id = (dataset / "CURRENT").read_text().strip()
    assert new_manifest(dataset, "releases", set())["fingerprint"]
    before = tree(dataset)

    EventsWorker.set_client_override(AssertingEventsClient)
    AssertingEventsClient.reset()
    try:
        code, output = run_cli(*args)
        EventsWorker.drain_all()
        events: list[Event] = [e for client in AssertingEventsClient.all for e in client.events]
    finally:
        EventsWorker.set_client_override(None)
        AssertingEventsClient.reset()
    assert code == EXIT_PUBLISHED, output
    assert output.strip() == f"unchanged: adult release {release_id} already has these rows and this config"
    assert tree(dataset) == before
    (unchanged,) = [e for e in events if e.event.startswith("synthgate.")]
    assert unchanged.event == UNCHANGED and unchanged.payload["release_id"] == release_id

    code, output = run_cli(*args, "--retrain")  # a refit of the same rows and seed is the model already released
    assert code == EXIT_PUBLISHED and output.startswith("unchanged: "), output
    assert tree(dataset) == before

    rows = pd.read_csv(source)
    rows.loc[0, "age"] += 1
    rows.to_csv(source, index=False)  # the same file, one cell changed
    code, output = run_cli(*args)
    assert code in (EXIT_PUBLISHED, EXIT_REFUSED) and "unchanged" not in output, output
    assert len(names(dataset, "releases") | names(dataset, "refused")) == 2


def config(**settings: Any) -> RunConfig:
    return RunConfig.model_validate({"source": "adult.csv", "generator": "gmm", **settings})


SOURCE = SourceInfo(uri="adult.csv", format="csv", sha256="ab" * 32, rows=600, columns=5)


@pytest.mark.parametrize("change", [{"seed": 1}, {"gate": {"min_quality": 0.8}}, {"params": {"components": 3}},
                                   {"rows": 100}, {"generator": "copula"}, {"name": "other"}])
def test_a_changed_config_changes_the_fingerprint(change: dict[str, Any]) -> None:
    assert run_fingerprint(config(**change), SOURCE) != run_fingerprint(config(), SOURCE)


def test_a_changed_source_changes_the_fingerprint() -> None:
    changed = SourceInfo(uri="adult.csv", format="csv", sha256="cd" * 32, rows=600, columns=5)
    assert run_fingerprint(config(), changed) != run_fingerprint(config(), SOURCE)


@pytest.mark.parametrize("change", [{"out": "elsewhere"}, {"retrain": True}, {"keep": 2},
                                   {"schedule": Schedule(cron="0 3 * * *")}, {"train_deployment": "train/gpu"}])
def test_where_and_how_a_run_goes_is_not_fingerprinted(change: dict[str, Any]) -> None:
    assert run_fingerprint(config(**change), SOURCE) == run_fingerprint(config(), SOURCE)


def test_the_rows_digest_follows_the_values_not_the_frame(tmp_path: Path) -> None:
    frame = pd.read_parquet(ROOT / "data" / "adult.parquet")[COLUMNS].head(200)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    assert rows_digest(pd.read_csv(tmp_path / "rows.csv")) == rows_digest(pd.read_csv(tmp_path / "rows.csv"))
    assert rows_digest(frame) == rows_digest(frame.copy().set_axis(range(500, 700)))  # the index is not a row
    changed = frame.copy()
    changed.loc[changed.index[0], "age"] += 1
    assert rows_digest(changed) != rows_digest(frame)
    assert rows_digest(frame.rename(columns={"age": "years"})) != rows_digest(frame)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Schema]:
    from generators.tabular.inference import infer_schema

    frame, schema = infer_schema(pd.read_parquet(ROOT / "data" / "adult.parquet")[COLUMNS].head(300), {}, None)
    return create("gmm", {}, seed=0).fit(frame, schema), schema


def test_the_cache_keeps_its_newest_entries_and_a_hit_counts_as_use(tmp_path: Path, fitted: tuple[Any, Schema]
                                                                    ) -> None:
    model, _ = fitted
    cache = ModelCache(tmp_path, "adult")
    keys = [f"{index:064x}" for index in range(KEEP + 2)]
    for key in keys[:KEEP]:
        cache.store_model(key, model)
    assert cache.load_model(keys[0]) is not None  # used again: now newer than keys[1]
    for key in keys[KEEP:]:
        cache.store_model(key, model)
    assert {entry.name for entry in cache.entries()} == {keys[0], *keys[KEEP:]}
    assert cache.load_model(keys[1]) is None


@pytest.mark.parametrize("tear", [lambda data: b"\x00" * 64, lambda data: b"torn by a crash",
                                  lambda data: data[: len(data) // 2]], ids=["zeros", "text", "truncated"])
def test_an_unreadable_cache_entry_is_a_miss_with_a_warning(tmp_path: Path, fitted: tuple[Any, Schema],
                                                           caplog: pytest.LogCaptureFixture,
                                                           tear: Callable[[bytes], bytes]) -> None:
    model, _ = fitted
    cache = ModelCache(tmp_path, "adult")
    assert cache.load_model("0" * 64) is None and not caplog.records  # nothing cached: a plain miss
    cache.store_model("1" * 64, model)
    assert cache.load_model("1" * 64) is not None
    path = cache.model_path("1" * 64)
    path.write_bytes(tear(path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="flows.cache"):
        assert cache.load_model("1" * 64) is None
    assert "unreadable cached model" in caplog.text
    cache.store_record("2" * 64, {"chosen": {"name": "gmm"}})
    (cache.root / ("2" * 64) / "selection.json").write_text("{torn")
    assert cache.load_record("2" * 64) is None


@pytest.mark.slow
def test_auto_reuses_its_cached_choice_and_retrain_chooses_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    from flows import select
    from flows.cache import SELECTION_FILE
    from flows.select import Candidate
    from flows.steps import select_generator
    from generators.tabular.inference import infer_schema

    monkeypatch.setattr(select, "CANDIDATES", (Candidate("gmm"),))  # one quick trial: the run's length, not its aim
    frame, schema = infer_schema(pd.read_parquet(ROOT / "data" / "adult.parquet")[COLUMNS].head(480), {}, None)
    settings = RunConfig.model_validate({"source": "adult.csv", "out": str(tmp_path), "name": "adult"})
    chosen = select_generator(frame, schema, settings)
    (stored,) = (tmp_path / "adult" / ".models").glob(f"*/{SELECTION_FILE}")
    record = json.loads(stored.read_text())
    assert record["chosen"]["name"] == chosen.name == "gmm"
    stored.write_text(json.dumps({**record, "seconds": 123.0}))  # marks the cached choice as the one read back

    assert select_generator(frame, schema, settings).to_dict() == {**chosen.to_dict(), "seconds": 123.0}
    again = select_generator(frame, schema, settings.model_copy(update={"retrain": True}))
    assert again.seconds != 123.0 and json.loads(stored.read_text())["seconds"] != 123.0


@pytest.mark.slow
def test_a_hand_off_comes_after_the_cache_and_never_leaves_the_rows_behind(prefect_api: None, tmp_path: Path) -> None:
    from flows.steps import RUNS, train_generator
    from generators.tabular.errors import BadInputError
    from generators.tabular.inference import infer_schema

    frame, schema = infer_schema(pd.read_parquet(ROOT / "data" / "adult.parquet")[COLUMNS].head(300), {}, None)
    settings = RunConfig.model_validate({"source": "adult.csv", "generator": "gmm", "out": str(tmp_path),
                                         "name": "adult", "train_deployment": "train/absent"})
    with pytest.raises(BadInputError, match="no deployment 'train/absent'"):
        train_generator(frame, schema, settings, "run-1")
    assert not (tmp_path / "adult" / RUNS / "run-1").exists()  # the rows written for the pool are gone
    assert not (tmp_path / "adult" / ".models").exists()

    local = train_generator(frame, schema, settings.model_copy(update={"train_deployment": None}), "run-2")
    reused = train_generator(frame, schema, settings, "run-3")  # cached: the absent deployment is never asked
    assert (reused.reused, reused.cache_key) == (True, local.cache_key)


@pytest.mark.slow
def test_a_new_release_states_its_drift_from_the_previous_one(prefect_api: None, source: Path, tmp_path: Path) -> None:
    """Release N compares its source and its rows with release N-1's; the first release has no drift."""
    dataset = tmp_path / "out" / "adult"
    code, output = run_cli("--source", str(source), "--out", str(tmp_path / "out"), "--generator", "gmm")
    assert code == EXIT_PUBLISHED, output
    first = new_manifest(dataset, "releases", set())
    assert "drift" not in first
    frame = pd.read_csv(source)
    shifted = pd.concat([frame.iloc[100:], frame.iloc[:50]]).assign(age=lambda f: f["age"] + 10)
    shifted.to_csv(source, index=False)
    code, output = run_cli("--source", str(source), "--out", str(tmp_path / "out"), "--generator", "gmm")
    assert code == EXIT_PUBLISHED, output
    second = new_manifest(dataset, "releases", {first["release_id"]})
    drift = second["drift"]
    assert drift["previous"] == first["release_id"]
    before, after = (Counter(map(tuple, f.astype(str).to_numpy())) for f in (frame, shifted))
    assert drift["source_rows_added"] == (after - before).total()  # rows as multisets: duplicates count
    assert drift["source_rows_removed"] == (before - after).total() > 400  # most ages moved
    assert drift["largest_source"]["column"] == "age" and drift["source"]["age"] > 0.2
    assert max(v for k, v in drift["source"].items() if k != "age") < 0.1
    assert set(drift["synthetic"]) == set(COLUMNS)
    assert sorted(p.stem for p in (dataset / ".profiles").iterdir()) == sorted([first["release_id"],
                                                                                second["release_id"]])
    report = (dataset / "releases" / second["release_id"] / "report.html").read_text()
    assert report.index("Drift since release") < report.index('class="verdict')
