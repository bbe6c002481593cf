"""A table beyond the run's limits: read in chunks, fitted on a bounded sample, sampled in shards, checked on samples.

And the same release on a 2-worker Dask `LocalCluster` as in this process: the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.config import load_config
from flows.steps import RUNS

pytestmark = pytest.mark.slow  # whole runs: deselect with -m "not slow"

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"chunk_rows": 2_500, "train_rows": 2_000, "check_rows": 1_500, "shard_rows": 2_000}


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[str]:
    """One temporary Prefect server for the module."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8,000 rows of the demo table in two Parquet parts: longer than three chunks of the limits above."""
    folder = tmp_path_factory.mktemp("scale") / "adult"
    folder.mkdir()
    table = pd.read_parquet(ROOT / "data" / "adult.parquet").sample(8_000, random_state=0).reset_index(drop=True)
    table.iloc[:4_000].to_parquet(folder / "part-0.parquet")
    table.iloc[4_000:].to_parquet(folder / "part-1.parquet")
    return folder


def _run(source: Path, out: Path, **settings: object) -> object:
    from flows.synthesize import synthesize

    return synthesize(load_config(None, source=source, out=out, generator="cart", rows=7_000, **LIMITS, **settings))


def test_a_table_beyond_the_limits_runs_on_bounded_samples_and_shards(prefect_api: str, source: Path,
                                                                        tmp_path: Path) -> None:
    outcome = _run(source, tmp_path)
    manifest = outcome.manifest
    assert manifest.split.to_dict() == {"train_rows": 6_400, "holdout_rows": 1_600, "holdout_fraction": 0.2,
                                        "fitted_rows": 2_000, "checked_rows": 1_500, "seed": 0}
    assert (manifest.sampling.shards, manifest.sampling.shard_rows) == (4, 2_000)
    assert manifest.source.rows == 8_000
    folder = outcome.path / "data" if manifest.passed else None
    if folder is not None:  # published: the shards are the release's parts, as written
        sizes = [pq.ParquetFile(part).metadata.num_rows for part in sorted(folder.iterdir())]
        assert sizes == [2_000, 2_000, 2_000, 1_000]
        assert json.loads((outcome.path / "manifest.json").read_text())["rows"] == 7_000
    assert not any((tmp_path / "adult" / RUNS).iterdir())  # no staged rows nor shards outlive the run
    # The exact-copy check counted every synthetic row against every training row, not the samples.
    privacy = manifest.metrics.privacy
    assert privacy.exact_match_rate is not None


def test_a_release_on_a_local_dask_cluster_has_the_same_rows(prefect_api: str, source: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    here = _run(source, tmp_path / "here")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        there = _run(source, tmp_path / "dask", dask=cluster.scheduler_address)
    assert here.manifest.passed and there.manifest.passed  # so the rows below are compared
    assert here.manifest.gate == there.manifest.gate
    if here.manifest.passed:
        rows = [pd.read_parquet(outcome.path / "data") for outcome in (here, there)]
        pd.testing.assert_frame_equal(*rows)
        assert len(rows[0]) == 7_000
