"""The synthesize flow end to end through the CLI: publish, refuse, reproduce, survive SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import EXIT_PUBLISHED, EXIT_REFUSED, app
from flows.release.publish import sha256_file

pytestmark = pytest.mark.slow  # whole runs: deselect with -m "not slow"

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[str]:
    """One temporary Prefect server for the module; child processes are pointed at it too."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


def _adult_sample(path: Path, without: list[str]) -> Path:
    """2,000 rows of the demo table as CSV, without the named columns: small enough for seconds."""
    table = pd.read_parquet(ROOT / "data" / "adult.parquet").drop(columns=without)
    table.sample(2_000, random_state=0).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def contract_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the default generator publishes from: the Adult sample without education-num.

    Education-num is education in numbers: a one-to-one pair that 1,600 training rows cannot teach a small model.
    """
    return _adult_sample(tmp_path_factory.mktemp("contract") / "adult.csv", ["education-num"])


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the pipeline's tests publish from: the Adult sample without education-num and occupation.

    1,600 training rows do not teach a quick model occupation's strong categorical pairs (workclass, sex) well
    enough for the gate's 0.70 pair floor; these tests are about the pipeline, not a model's fidelity (the
    all-generator run on full Adult is in BENCHMARKS.md).
    """
    return _adult_sample(tmp_path_factory.mktemp("src") / "adult.csv", ["education-num", "occupation"])


# The pipeline's tests run the quick gmm: on 1,600 training rows of this table the copula and the default rbm
# keep under 75 % of the real model's lift over guessing (utility.lift_kept 0.66 and 0.70), and these tests
# are about the pipeline; the publishing-contract test runs the default generator on its own table.
PIPELINE_GENERATOR = ("--generator", "gmm")


def run_cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args])
    return result.exit_code, result.output


def release_frame(release: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((release / "data").glob("part-*.parquet"))])


def snapshot(dataset_dir: Path) -> dict[str, str]:
    """Every published file's sha256, and CURRENT."""
    published = (p for p in (dataset_dir / "releases").rglob("*") if p.is_file())
    files = {str(p.relative_to(dataset_dir)): sha256_file(p) for p in published}
    files["CURRENT"] = (dataset_dir / "CURRENT").read_text()
    return files


def assert_releases_complete(dataset_dir: Path) -> None:
    """No partial release is visible: every folder under releases/ has its manifest and all its files."""
    for release in (dataset_dir / "releases").iterdir():
        manifest = json.loads((release / "manifest.json").read_text())
        assert (release / "report.html").is_file()
        for entry in manifest["files"]:
            assert sha256_file(release / entry["path"]) == entry["sha256"]
    assert (dataset_dir / "releases" / (dataset_dir / "CURRENT").read_text().strip()).is_dir()


def test_a_run_publishes_the_contract(prefect_api: str, contract_source: Path, tmp_path: Path) -> None:
    code, output = run_cli("--source", str(contract_source), "--out", str(tmp_path), "--name", "adult")
    assert code == EXIT_PUBLISHED, output
    dataset_dir = tmp_path / "adult"
    release_id = (dataset_dir / "CURRENT").read_text().strip()
    release = dataset_dir / "releases" / release_id
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["release_id"] == release_id and manifest["dataset"] == "adult"
    assert manifest["created_at"].endswith("+00:00")
    generator = manifest["generator"]  # the default is auto: its choice, and the candidates it tried
    assert set(generator) >= {"name", "params", "seed", "selection"}
    chosen, tried = generator["selection"]["chosen"], generator["selection"]["candidates"]
    assert generator["name"] == chosen["name"] == tried[-1]["name"]
    assert manifest["source"]["rows"] == 2_000 and manifest["source"]["columns"] == 14
    assert manifest["source"]["sha256"] == sha256_file(contract_source)
    assert set(manifest["metrics"]["fidelity"]) >= {"quality", "column_shapes", "column_pair_trends"}
    assert set(manifest["metrics"]["privacy"]) >= {"dcr_share", "exact_match_rate"}
    assert set(manifest["timings"]) >= {"fit_s", "sample_s", "validate_s", "total_s"}
    assert set(manifest["versions"]) >= {"synthgate", "python", "torch", "sdmetrics", "prefect"}
    assert manifest["gate"]["passed"] and all(c["passed"] for c in manifest["gate"]["checks"])
    assert manifest["rows"] == 2_000 == sum(f["rows"] for f in manifest["files"])
    for entry in manifest["files"]:
        part = release / entry["path"]
        assert sha256_file(part) == entry["sha256"]
        metadata = pq.read_schema(part).metadata
        assert metadata[b"synthgate.release_id"].decode() == release_id
        assert metadata[b"synthgate.source_sha256"].decode() == manifest["source"]["sha256"]
        assert pq.ParquetFile(part).metadata.row_group(0).column(0).compression == "ZSTD"
    synthetic = release_frame(release)
    real = pd.read_csv(contract_source)
    assert list(synthetic.columns) == list(real.columns)
    assert synthetic.dtypes.to_dict() == real.dtypes.to_dict()
    report = (release / "report.html").read_text()
    assert "PUBLISHED" in report and f"{manifest['metrics']['fidelity']['quality']:.3f}"[:4] in report
    assert "data:image/png;base64," in report and (release / "expectations" / "index.html").is_file()
    names = {check["name"] for check in manifest["gate"]["checks"]}
    assert {"fidelity.column_shape[age]", "utility.lift_kept", "privacy.membership_tpr[distance]"} <= names
    assert manifest["metrics"]["utility"]["target"] == "class"
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifacts = {artifact.key: artifact for artifact in client.read_artifacts()}
    assert artifacts["adult-verdict"].type == "markdown" and "PUBLISHED" in str(artifacts["adult-verdict"].data)
    assert artifacts["adult-gate-checks"].type == "table"
    assert "privacy.membership_tpr[distance]" in str(artifacts["adult-gate-checks"].data)
    _the_report_opens_offline_in_chromium(release / "report.html")


def _the_report_opens_offline_in_chromium(report: Path) -> None:
    """The published report in headless Chromium: verdict shown, both figures loaded, no request beyond the file.

    The browser test proves the request log catches one that reaches out.
    """
    from test_report_browser import _require_chromium

    from tests.integration.browser import open_page

    _require_chromium()
    with open_page(report) as page:
        images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth])")
        verdict = page.evaluate("document.querySelector('.verdict .word').innerText")
        requests = list(page.requests)
    assert [url for url in requests if not url.startswith(("file:///", "data:"))] == []
    assert verdict == "PUBLISHED"
    assert len(images) == 2 and all(complete and width > 0 for complete, width in images), images


def test_same_seed_same_rows_other_seed_other_rows(prefect_api: str, source: Path, tmp_path: Path) -> None:
    # The same seed twice in one folder would be "unchanged" (nothing published): the twin run gets its own folder.
    for out, seed in ((tmp_path / "a", "5"), (tmp_path / "b", "5"), (tmp_path / "a", "6")):
        code, output = run_cli(
            *PIPELINE_GENERATOR, "--source", str(source), "--out", str(out), "--seed", seed, "--rows", "2000"
        )
        assert code == EXIT_PUBLISHED, output
    first, third = (release_frame(p) for p in sorted((tmp_path / "a" / "adult" / "releases").iterdir()))
    (second,) = (release_frame(p) for p in (tmp_path / "b" / "adult" / "releases").iterdir())
    pd.testing.assert_frame_equal(first, second)
    assert not first.equals(third)


def test_a_refused_run_publishes_nothing(prefect_api: str, source: Path, tmp_path: Path) -> None:
    code, output = run_cli(*PIPELINE_GENERATOR, "--source", str(source), "--out", str(tmp_path), "--rows", "300")
    assert code == EXIT_PUBLISHED, output
    before = snapshot(tmp_path / "adult")
    strict = tmp_path / "strict.yaml"
    # Fidelity floors refuse only a shortfall that is no chance (p under alpha); a loose alpha makes
    # this quality floor, which no sample of real rows reaches either, refuse.
    strict.write_text("gate: {min_quality: 0.999, alpha: 0.4}\nrows: 300\n")
    code, output = run_cli(
        *PIPELINE_GENERATOR, "--source", str(source), "--out", str(tmp_path), "--config", str(strict)
    )
    assert code == EXIT_REFUSED, output
    assert "fidelity.quality" in output
    assert snapshot(tmp_path / "adult") == before
    (refusal,) = (tmp_path / "adult" / "refused").iterdir()
    assert sorted(p.name for p in refusal.iterdir()) == ["expectations", "manifest.json", "report.html"]
    manifest = json.loads((refusal / "manifest.json").read_text())
    failed = [c["name"] for c in manifest["gate"]["checks"] if not c["passed"]]
    assert "fidelity.quality" in failed and not manifest["gate"]["passed"]
    assert "REFUSED" in (refusal / "report.html").read_text()


def _spawn_run(source: Path, out: Path, api: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PREFECT_API_URL": api}
    command = [
        sys.executable,
        "-c",
        "from flows.cli import main; main()",
        "run",
        *PIPELINE_GENERATOR,
        "--source",
        str(source),
        "--out",
        str(out),
        "--rows",
        "2000",
        "--seed",
        "1",  # not the first run's config, which would be "unchanged" and publish nothing
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when(process: subprocess.Popen[bytes], ready: object, timeout: float = 240) -> bool:
    """SIGKILL the run once `ready()` holds; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ready():  # type: ignore[operator]
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001)
    process.kill()
    raise AssertionError("the run neither finished nor reached the kill point")


def test_sigkill_at_any_moment_keeps_the_previous_release(prefect_api: str, source: Path, tmp_path: Path) -> None:
    code, output = run_cli(*PIPELINE_GENERATOR, "--source", str(source), "--out", str(tmp_path), "--rows", "2000")
    assert code == EXIT_PUBLISHED, output
    dataset_dir = tmp_path / "adult"
    before = snapshot(dataset_dir)
    staging = dataset_dir / ".staging"
    started = time.monotonic()
    moments = {
        "during start-up": lambda: time.monotonic() - started > 2.0,
        "during the run": lambda: time.monotonic() - started > 8.0,
        "during publish": lambda: staging.is_dir() and any(staging.iterdir()),
    }
    killed = []
    for name, ready in moments.items():
        started = time.monotonic()
        process = _spawn_run(source, tmp_path, prefect_api)
        if _kill_when(process, ready):
            killed.append(name)
        assert_releases_complete(dataset_dir)
        after = snapshot(dataset_dir)
        if after["CURRENT"] == before["CURRENT"]:
            assert {k: v for k, v in after.items() if k in before} == before
        else:  # the kill came after CURRENT moved: the new release must be whole
            assert {k: v for k, v in after.items() if k in before and k != "CURRENT"} == {
                k: v for k, v in before.items() if k != "CURRENT"
            }
    assert "during publish" in killed or "during the run" in killed
    code, output = run_cli(*PIPELINE_GENERATOR, "--source", str(source), "--out", str(tmp_path), "--rows", "2000",
                           "--seed", "2")
    assert code == EXIT_PUBLISHED, output
    assert not staging.exists() or not any(staging.iterdir())
    assert_releases_complete(dataset_dir)


def test_the_release_carries_its_model_which_scores_rows(prefect_api: str, source: Path, tmp_path: Path) -> None:
    code, output = run_cli(
        *PIPELINE_GENERATOR, "--source", str(source), "--out", str(tmp_path / "out"), "--rows", "500"
    )
    assert code == EXIT_PUBLISHED, output
    (release,) = (tmp_path / "out" / "adult" / "releases").iterdir()
    manifest = json.loads((release / "manifest.json").read_text())
    model = release / manifest["model"]["path"]
    assert model.parent.name == "model" and sha256_file(model) == manifest["model"]["sha256"]
    real = pd.read_csv(source)
    rng = np.random.default_rng(0)
    scrambled = real.apply(lambda column: column.to_numpy()[rng.permutation(len(column))])  # relations broken
    scrambled.to_csv(tmp_path / "odd.csv", index=False)
    scores = {}
    for name, path in (("real", source), ("odd", tmp_path / "odd.csv")):
        result = runner.invoke(
            app, ["score", "--model", str(release), "--source", str(path), "--out", str(tmp_path / f"{name}.parquet")]
        )
        assert result.exit_code == 0, result.output
        scores[name] = pd.read_parquet(tmp_path / f"{name}.parquet")["score"]
    assert len(scores["real"]) == len(real) and np.isfinite(scores["real"]).all()
    assert scores["real"].mean() > scores["odd"].mean()  # rows unlike the training data score lower


def test_rebalance_gives_each_class_an_equal_share(prefect_api: str, source: Path, tmp_path: Path) -> None:
    code, output = run_cli(
        *PIPELINE_GENERATOR, "--source", str(source), "--out", str(tmp_path), "--rows", "400", "--rebalance", "class"
    )
    assert code == EXIT_PUBLISHED, output
    (release,) = (tmp_path / "adult" / "releases").iterdir()
    assert release_frame(release)["class"].value_counts().to_dict() == {"<=50K": 200, ">50K": 200}
    assert json.loads((release / "manifest.json").read_text())["sampling"]["rebalance"] == "class"
