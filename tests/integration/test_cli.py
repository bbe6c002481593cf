"""The CLI's contract for bad input, for a quiet terminal and for a run stopped by a signal.

Bad input gets exit 2, one clear line on stderr, no traceback, nothing written; the terminal stays quiet; and a
run stopped by a signal unwinds, leaving nothing half-written and no process behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import EXIT_BAD_INPUT, EXIT_SIGNAL_BASE, QUIET_ENVIRONMENT, app, quiet_libraries
from flows.gate import Check, Verdict
from flows.release import publish
from flows.release.manifest import GeneratorRecord, Manifest
from flows.sources import SourceInfo

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


INFINITE = b"x,y\n" + b"1.5,a\ninf,b\n-inf,a\n2.5,b\n" * 10


BAD_INPUTS = {
    "missing file": lambda tmp: ["--source", str(tmp / "absent.csv")],
    "empty file": lambda tmp: ["--source", str(write(tmp / "empty.csv", b""))],
    "header-only CSV": lambda tmp: ["--source", str(write(tmp / "header.csv", b"a,b,c\n"))],
    "binary file": lambda tmp: ["--source", str(write(tmp / "blob.csv", bytes(range(256)) * 64))],
    "ragged CSV": lambda tmp: ["--source", str(write(tmp / "ragged.csv", b"a,b\n1,2\n3,4,5\n6,7\n"))],
    "unknown generator": lambda tmp: ["--generator", "no-such-model"],
    "negative rows": lambda tmp: ["--rows", "-5"],
    "malformed YAML": lambda tmp: ["--config", str(write(tmp / "bad.yaml", b"rows: [1, 2\nseed: 3\n"))],
    "unknown YAML key": lambda tmp: ["--config", str(write(tmp / "typo.yaml", b"generater: gmm\n"))],
    "bad schema override": lambda tmp: ["--config", str(write(tmp / "kinds.yaml", b"columns: {nope: pii}\n"))],
    "rebalance a number": lambda tmp: ["--rebalance", "age"],
    "infinite numbers": lambda tmp: ["--source", str(write(tmp / "inf.csv", INFINITE))],
    "UTF-16 without BOM": lambda tmp: ["--source", str(write(tmp / "u16.csv", "a,b\n1,2\n".encode("utf-16-le")))],
    "Excel workbook": lambda tmp: ["--source", str(write(tmp / "book.xlsx", b"PK\x03\x04" + bytes(64)))],
    "two decimal marks": lambda tmp: ["--source", str(write(tmp / "dec.csv", b"a;b\n1,5;2.5\n2,5;3.5\n"))],
    "nothing learnable": lambda tmp: [
        "--source", str(parquet(tmp / "nested.parquet", pa.table({"tags": pa.array([[1, 2]] * 30)})))
    ],
    "absent SQLite database": lambda tmp: [
        "--config", str(write(tmp / "sql.yaml", b"source: {sql: 'sqlite:///absent.db', table: t}\n"))
    ],
}
EXPECTED = {
    "missing file": "source not found",
    "empty file": "source is empty",
    "header-only CSV": "no rows",
    "binary file": "binary content",
    "ragged CSV": "line 3 has 3 fields, expected 2",
    "unknown generator": "unknown generator 'no-such-model'",
    "negative rows": "rows: Input should be greater than 0",
    "malformed YAML": "malformed YAML",
    "unknown YAML key": "generater: Extra inputs are not permitted",
    "bad schema override": "unknown column(s): nope",
    "rebalance a number": "cannot rebalance 'age': only categorical or boolean columns",
    "infinite numbers": "column 'x' holds infinite values (inf or -inf); make them missing",
    "UTF-16 without BOM": "looks like UTF-16 text without a byte-order mark",
    "Excel workbook": "is a ZIP archive (an Excel workbook?)",
    "two decimal marks": "cannot tell the decimal mark",
    "nothing learnable": "has no column a model can learn: 'tags' (nested values (list<",
    "absent SQLite database": "SQLite database not found",
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, case: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", *BAD_INPUTS[case](tmp_path), "--out", str(out)])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert EXPECTED[case] in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_the_installed_command_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from flows.cli import main; main()", "run", "--source", str(tmp_path / "x.csv")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr.strip() == f"error: source not found: {tmp_path / 'x.csv'}"


def test_inspect_prints_kinds_as_yaml_ready_to_override() -> None:
    result = runner.invoke(app, ["inspect", str(ROOT / "data" / "adult.parquet"), "--yaml"])
    assert result.exit_code == 0, result.output
    assert "columns:\n  age: numerical\n  workclass: categorical\n" in result.stdout


def test_inspect_applies_overrides_from_the_config(tmp_path: Path) -> None:
    config = write(tmp_path / "run.yaml", b"columns: {education-num: categorical}\n")
    result = runner.invoke(app, ["inspect", str(ROOT / "data" / "adult.parquet"), "--yaml", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "education-num: categorical" in result.stdout


def test_inspect_of_a_bad_source_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path / "absent.parquet")])
    assert result.exit_code == EXIT_BAD_INPUT and "source not found" in result.stderr


def test_generators_lists_the_registry() -> None:
    from generators.registry import GENERATORS

    result = runner.invoke(app, ["generators"])
    assert result.exit_code == 0
    for name in GENERATORS:
        assert name in result.stdout


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_output_that_cannot_take_a_release_exits_2_before_any_work(tmp_path: Path, where: str) -> None:
    blocker = write(tmp_path / "file.txt", b"keep me")
    out = blocker if where == "a file" else blocker / "sub"
    result = runner.invoke(app, ["run", "--generator", "copula", "--out", str(out)])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert result.stderr.strip() == f"error: cannot write releases under {out}: {blocker} is a file, not a folder"
    assert blocker.read_bytes() == b"keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: permissions are not enforced")
def test_an_unwritable_output_folder_exits_2(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        result = runner.invoke(app, ["run", "--generator", "copula", "--out", str(locked / "out")])
    finally:
        locked.chmod(0o700)
    assert result.exit_code == EXIT_BAD_INPUT and "is not writable" in result.stderr


def test_library_warnings_are_silenced_unless_verbose() -> None:
    before = {key: os.environ.get(key) for key in QUIET_ENVIRONMENT}
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with quiet_libraries(verbose=False):
            warnings.warn("numpy: invalid value encountered", RuntimeWarning, stacklevel=1)
            assert os.environ["PYTHONWARNINGS"] == "ignore" or before["PYTHONWARNINGS"] is not None
        assert shown == []
        with quiet_libraries(verbose=True):
            warnings.warn("numpy: invalid value encountered", RuntimeWarning, stacklevel=1)
        assert len(shown) == 1
    assert {key: os.environ.get(key) for key in QUIET_ENVIRONMENT} == before


def _clean_run(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`synthgate` as a user runs it from a fresh shell: no settings in the environment, not via make."""
    command = [sys.executable, "-c", "from flows.cli import main; main()", *args]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def test_a_run_from_a_clean_shell_keeps_stderr_empty(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 300
    source = parquet(tmp_path / "shop.parquet", pa.table({
        "basket": rng.gamma(2.0, 20.0, n).round(2),
        "items": rng.integers(1, 9, n),
        "channel": rng.choice(["web", "store", "phone"], n, p=[0.5, 0.3, 0.2]),
        "tags": pa.array([["a", "b"][: int(k)] for k in rng.integers(0, 3, n)]),  # lists: dropped, not a crash
    }))
    out = tmp_path / "out"
    done = _clean_run(tmp_path / "home", "run", "--source", str(source), "--generator", "copula", "--out", str(out))
    assert done.returncode in (0, 3), done.stdout + done.stderr
    assert done.stderr == ""
    assert "dropped 1 column(s) no model can learn: tags (nested values (list<" in done.stdout
    manifest = json.loads(next(out.glob("shop/*/*/manifest.json")).read_text())
    assert list(manifest["source"]["dropped"]) == ["tags"]
    assert "tags" not in manifest["schema"]["columns"]


def test_bad_input_from_a_clean_shell_is_exactly_one_line(tmp_path: Path) -> None:
    source = write(tmp_path / "inf.csv", INFINITE)
    done = _clean_run(tmp_path / "home", "run", "--source", str(source), "--out", str(tmp_path / "out"))
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr == "error: column 'x' holds infinite values (inf or -inf); make them missing\n"


def test_a_full_disk_at_publish_exits_2_and_keeps_the_previous_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    table = pd.read_parquet(ROOT / "data" / "adult.parquet").sample(400, random_state=0)
    source = tmp_path / "adult.csv"
    table.to_csv(source, index=False)
    first = publish.publish_release(out, "adult", "r1", table.head(5), _passed_manifest(), lambda m: "<html></html>")
    before = sorted(p.name for p in first.rglob("*"))

    def full(path: Path, write: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(publish, "_write_durably", full)
    result = runner.invoke(app, ["run", "--source", str(source), "--generator", "copula", "--out", str(out)])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"in {out / 'adult'}: No space left on device"), lines
    assert sorted(p.name for p in (out / "adult" / "releases").iterdir()) == ["r1"]
    assert sorted(p.name for p in first.rglob("*")) == before
    assert publish.read_current(out, "adult") == "r1"
    assert list((out / "adult" / ".staging").iterdir()) == []
    assert not list((out / "adult").glob("refused/*"))


def _passed_manifest() -> Manifest:
    return Manifest(dataset="adult", created_at="2026-11-21T12:00:00+00:00",
                    gate=Verdict((Check.plain("fidelity.quality", 0.9, 0.75, ">="),)),
                    generator=GeneratorRecord("copula"), source=SourceInfo("adult.csv", "csv", "ab" * 32, 400, 15))


def _prefect_server(pid: int) -> list[int]:
    """The processes below `pid` that run Prefect's server.

    Other children come and go first: matplotlib's `fc-list` builds a fresh home's font cache before the server starts.
    """
    found = []
    for child in _descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"prefect" in command:
            found.append(child)
    return found


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (children of children included)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_exits_cleanly_and_leaves_no_process_behind(tmp_path: Path, stop: signal.Signals) -> None:
    """A run stopped while training must end within seconds with 128 + the signal and one line, its child too.

    Adult with the default generator trains for a minute; Prefect's ephemeral server (the run's child) must go too.
    """
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from flows.cli import main; main()", "run", "--out", str(out)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    # As from a terminal: a suite started in the background of a script inherits an ignored SIGINT, which the CLI
    # rightly keeps ignored.
    run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    spawned: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not _prefect_server(run.pid) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(10)  # the server is up and the flow is training
        spawned = _descendants(run.pid)
        assert spawned and run.poll() is None, "the run should have started Prefect's server and still be training"
        stopped_at = time.monotonic()
        run.send_signal(stop)
        _, err = run.communicate(timeout=60)
        assert time.monotonic() - stopped_at < 20
        assert run.returncode == EXIT_SIGNAL_BASE + stop
        assert err == f"error: interrupted ({stop.name})\n"
        time.sleep(0.5)
        assert [pid for pid in spawned if _running(pid)] == []
    finally:  # whatever failed above, leave no process of this test behind
        for pid in [run.pid, *spawned]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    releases, staging = out / "adult" / "releases", out / "adult" / ".staging"
    assert not releases.exists() or not any(releases.iterdir())
    assert not staging.exists() or not any(staging.iterdir())


# A command that imports Prefect, as `run` and `evaluate` do, run through the CLI's real entry point.
_IMPORTS_PREFECT = "from flows.cli import app, main; app.command('probe')(lambda: __import__('prefect')); main()"


def test_prefect_prints_no_telemetry_notice_on_a_terminal(tmp_path: Path) -> None:
    """A command of the CLI that imports Prefect must not show Prefect's first-run telemetry notice.

    Prefect shows that notice on an interactive terminal when it is imported.
    """
    (tmp_path / "home").mkdir()
    leader, follower = os.openpty()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "TERM": "xterm"}
    with os.fdopen(leader, "rb", buffering=0) as terminal:
        done = subprocess.run([sys.executable, "-c", _IMPORTS_PREFECT, "probe"], cwd=ROOT, env=env, timeout=120,
                              stdin=follower, stdout=follower, stderr=follower)
        os.close(follower)
        shown = b""
        with contextlib.suppress(OSError):  # reading a pty whose other end is closed ends in EIO
            while chunk := terminal.read(4096):
                shown += chunk
    assert done.returncode == 0
    assert b"anonymous usage" not in shown and shown.strip() == b""


def test_importing_the_package_leaves_the_environment_alone_and_the_cli_sets_the_offline_defaults() -> None:
    """The CLI's entry, not an import, sets the offline defaults, and before Prefect is imported.

    A user's own setting wins.
    """
    from flows import OFFLINE_DEFAULTS

    probe = "\n".join([
        "import json, os, sys, flows, flows.cli",
        "before = {key: os.environ.get(key) for key in flows.OFFLINE_DEFAULTS}",
        "def show():",
        "    after = {key: os.environ.get(key) for key in flows.OFFLINE_DEFAULTS}",
        "    print(json.dumps({'before': before, 'after': after, 'prefect': 'prefect' in sys.modules}))",
        "flows.cli.app.command('probe')(show)",
        "flows.cli.main()",
    ])
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "DO_NOT_TRACK": "true"}
    done = subprocess.run([sys.executable, "-c", probe, "probe"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["before"] == {key: ("true" if key == "DO_NOT_TRACK" else None) for key in OFFLINE_DEFAULTS}
    assert seen["after"] == {**OFFLINE_DEFAULTS, "DO_NOT_TRACK": "true"}
    assert not seen["prefect"]
