"""`synthgate deploy` against a real Prefect server: a release run by a process worker, its training on the GPU pool.

Everything listens on 127.0.0.1 and is stopped in a `finally`: the server, and every worker this test starts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings

pytestmark = pytest.mark.slow  # a server, two workers and a whole release

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
DATASET = "adult600"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this test started, by its id: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real `prefect server start` on a free local port, with its own PREFECT_HOME; the environment to reach it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false", "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_WORKER_PREFETCH_SECONDS": "2", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    log = (home / "server.log").open("wb")
    process = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, (home / "server.log").read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the Prefect server did not start within 180 s"
            time.sleep(1)
        yield env
    finally:
        _stop(process)
        log.close()


def _run(env: dict[str, str], *command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def test_deployed_release_runs_on_its_pool_and_trains_on_the_gpu_pool(server: dict[str, str], tmp_path: Path) -> None:
    table = pd.read_parquet(ROOT / "data" / "adult.parquet").drop(columns=["education-num", "occupation"])
    table.sample(600, random_state=0).to_parquet(tmp_path / "adult600.parquet", index=False)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({
        "source": "adult600.parquet", "out": "releases", "name": DATASET, "generator": "gmm",
        "train_deployment": "train/gpu", "schedule": {"cron": "0 3 1 * *", "timezone": "Europe/Paris"},
    }))

    # Before the pools exist: one line and exit 2, nothing registered.
    missing = _run(server, str(BIN / "synthgate"), "deploy", str(config))
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "work pool 'synthgate' not found" in missing.stderr and "Traceback" not in missing.stderr

    for pool in ("synthgate", "synthgate-gpu"):
        created = _run(server, str(BIN / "prefect"), "work-pool", "create", pool, "--type", "process")
        assert created.returncode == 0, created.stdout + created.stderr

    deployed = _run(server, str(BIN / "synthgate"), "deploy", str(config))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert f"registered synthesize/{DATASET} on pool synthgate (cron '0 3 1 * *' Europe/Paris" in deployed.stdout
    assert "registered train/gpu on pool synthgate-gpu" in deployed.stdout

    gpu_log = (tmp_path / "gpu-worker.log").open("wb")
    gpu_worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "synthgate-gpu"],
                                  env=server, cwd=ROOT, stdout=gpu_log, stderr=subprocess.STDOUT)
    try:
        # A run now, as the schedule would create one; then a release worker takes it and exits.
        started = _run(server, str(BIN / "prefect"), "deployment", "run", f"synthesize/{DATASET}")
        assert started.returncode == 0, started.stdout + started.stderr
        worker = _run(server, str(BIN / "prefect"), "worker", "start", "--pool", "synthgate", "--run-once",
                      timeout=900)
        assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    finally:
        _stop(gpu_worker)
        gpu_log.close()

    with temporary_settings(updates={PREFECT_API_URL: server["PREFECT_API_URL"]}), \
            get_client(sync_client=True) as client:
        [release] = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[DATASET])))
        assert release.state is not None and release.state.is_completed(), release.state
        assert release.work_pool_name == "synthgate"
        trains = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["train"])))
        assert trains, "no train flow run: the release trained in-process (is train_remotely wired into steps?)"
        [trained] = trains
        assert trained.work_pool_name == "synthgate-gpu"
        assert trained.state is not None and trained.state.is_completed(), trained.state
        assert trained.parameters.keys() == {"request"}  # a URI, never rows

    dataset = tmp_path / "releases" / DATASET
    current = (dataset / "CURRENT").read_text().strip()
    assert (dataset / "releases" / current / "manifest.json").is_file()
    assert not list(dataset.rglob("train.parquet")), "the training rows outlived the training"
