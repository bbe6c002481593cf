"""Publishing: the contract layout, provenance, and that a kill at any moment never shows a half release."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.release import publish
from flows.release.manifest import Manifest
from flows.release.publish import (
    META_GENERATOR,
    META_RELEASE_ID,
    META_SOURCE_SHA256,
    StorageError,
    check_writable,
    new_run_id,
    publish_evaluation,
    publish_release,
    read_current,
    record_refusal,
    sha256_file,
)
from generators.tabular.errors import BadInputError

REPO = Path(__file__).resolve().parents[2]


def _manifest(passed: bool = True) -> Manifest:
    return Manifest.from_dict({
        "dataset": "ds",
        "created_at": "2026-11-21T12:00:00+00:00",
        "generator": {"name": "gaussian_copula", "params": {"epochs": 10}, "seed": 7},
        "source": {"uri": "data/customers.csv", "format": "csv", "sha256": "ab" * 32, "rows": 400, "columns": 8},
        "metrics": {
            "fidelity": {"quality": 0.9, "column_shapes": 0.92, "column_pair_trends": 0.88},
            "privacy": {"dcr_share": 0.51, "exact_match_rate": 0.0},
        },
        "timings": {"fit_s": 1.0, "sample_s": 0.5, "validate_s": 0.7, "total_s": 2.2},
        "gate": {"passed": passed, "checks": [{"name": "quality", "value": 0.9, "threshold": 0.8, "comparison": ">=",
                                               "passed": passed}]},
        "versions": {"synthgate": "0.1.0", "python": "3.11", "torch": None, "sdmetrics": None, "prefect": None},
    })


def _render(manifest: Manifest) -> str:
    return f"<html>{manifest.release_id}</html>"


def _tiny(offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(6) + offset, "y": list("abcdef")})


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` and its sha256, to prove nothing published was touched."""
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_complete(release: Path) -> dict[str, Any]:
    """A release is complete when its manifest lists exactly the data files there, with their hashes."""
    manifest = json.loads((release / "manifest.json").read_text())
    assert (release / "report.html").is_file()
    assert sorted(f["path"] for f in manifest["files"]) == sorted(
        str(p.relative_to(release)) for p in (release / "data").iterdir()
    )
    for f in manifest["files"]:
        assert sha256_file(release / f["path"]) == f["sha256"]
        assert pq.read_metadata(release / f["path"]).num_rows == f["rows"]
    assert sum(f["rows"] for f in manifest["files"]) == manifest["rows"]
    return manifest


def test_publish_writes_the_contract_layout(tmp_path: Path, mixed_frame: pd.DataFrame) -> None:
    given = _manifest()
    release = publish_release(tmp_path, "ds", "r1", mixed_frame, given, _render, rows_per_part=150)

    assert release == tmp_path / "ds" / "releases" / "r1"
    assert sorted(p.name for p in release.iterdir()) == ["data", "manifest.json", "report.html"]
    assert sorted(p.name for p in (release / "data").iterdir()) == [f"part-0000{i}.parquet" for i in range(3)]
    manifest = _assert_complete(release)
    assert (manifest["release_id"], manifest["dataset"], manifest["rows"]) == ("r1", "ds", len(mixed_frame))
    assert [f["rows"] for f in manifest["files"]] == [150, 150, 100]
    assert manifest["gate"] == given.gate.to_dict() and given.files == ()  # the caller's manifest is left as it was
    assert (release / "report.html").read_text() == "<html>r1</html>"
    assert read_current(tmp_path, "ds") == "r1"
    assert (tmp_path / "ds" / "CURRENT").read_text() == "r1"

    for f in manifest["files"]:
        meta = pq.read_metadata(release / f["path"])
        rg = meta.row_group(0)
        assert {rg.column(i).compression for i in range(rg.num_columns)} == {"ZSTD"}
        provenance = pq.read_schema(release / f["path"]).metadata
        assert provenance[META_RELEASE_ID] == b"r1"
        assert provenance[META_SOURCE_SHA256] == b"ab" * 32
        assert given.generator is not None and json.loads(provenance[META_GENERATOR]) == given.generator.to_dict()
    pd.testing.assert_frame_equal(pd.read_parquet(release / "data"), mixed_frame)


def test_second_publish_keeps_the_first_untouched(tmp_path: Path) -> None:
    first = publish_release(tmp_path, "ds", "r1", _tiny(), _manifest(), _render)
    before = _tree(first)
    publish_release(tmp_path, "ds", "r2", _tiny(10), _manifest(), _render)

    assert _tree(first) == before
    assert read_current(tmp_path, "ds") == "r2"
    assert sorted(p.name for p in (tmp_path / "ds" / "releases").iterdir()) == ["r1", "r2"]


def test_existing_release_id_is_an_error_and_nothing_changes(tmp_path: Path) -> None:
    first = publish_release(tmp_path, "ds", "r1", _tiny(), _manifest(), _render)
    before = _tree(first)
    with pytest.raises(BadInputError, match="already exists"):
        publish_release(tmp_path, "ds", "r1", _tiny(10), _manifest(), _render)
    assert _tree(first) == before
    assert list((tmp_path / "ds" / ".staging").iterdir()) == []


def test_a_failed_gate_cannot_be_published(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gate did not pass"):
        publish_release(tmp_path, "ds", "r1", _tiny(), _manifest(passed=False), _render)
    assert not (tmp_path / "ds" / "releases").exists()


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".staging", "-x"])
def test_unsafe_names_are_bad_input(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadInputError):
        publish_release(tmp_path, "ds", name, _tiny(), _manifest(), _render)
    with pytest.raises(BadInputError):
        publish_release(tmp_path, name, "r1", _tiny(), _manifest(), _render)


def test_manifest_is_strict_json(tmp_path: Path) -> None:
    manifest = _manifest()
    assert manifest.source is not None
    manifest = replace(manifest, source=replace(manifest.source, rows=np.int64(400)),
                       metrics=replace(manifest.metrics, fidelity=replace(manifest.metrics.fidelity,
                                                                          column_pair_trends=float("nan"))))
    release = publish_release(tmp_path, "ds", "r1", _tiny(), manifest, _render)

    def reject(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    written = json.loads((release / "manifest.json").read_text(), parse_constant=reject)
    assert written["metrics"]["fidelity"]["column_pair_trends"] is None
    assert written["source"]["rows"] == 400


def test_record_refusal_keeps_manifest_and_report_only(tmp_path: Path) -> None:
    publish_release(tmp_path, "ds", "r1", _tiny(), _manifest(), _render)
    refused = record_refusal(tmp_path, "ds", "run-2", _manifest(passed=False), lambda m: "<html>no</html>")

    assert refused == tmp_path / "ds" / "refused" / "run-2"
    assert sorted(p.name for p in refused.iterdir()) == ["manifest.json", "report.html"]
    assert json.loads((refused / "manifest.json").read_text())["run_id"] == "run-2"
    assert read_current(tmp_path, "ds") == "r1"
    assert sorted(p.name for p in (tmp_path / "ds" / "releases").iterdir()) == ["r1"]
    with pytest.raises(BadInputError, match="already exists"):
        record_refusal(tmp_path, "ds", "run-2", _manifest(passed=False), lambda m: "")


def test_new_run_id_is_sortable_unique_and_safe() -> None:
    now = datetime(2026, 11, 21, 12, 5, 1, tzinfo=UTC)
    run_id = new_run_id(now)
    assert re.fullmatch(r"20261121T120501Z-[0-9a-f]{6}", run_id)
    assert new_run_id(now.replace(tzinfo=None)).startswith("20261121T120501Z-")  # naive means UTC
    later = [new_run_id(now + timedelta(seconds=s)) for s in (1, 60, 3600, 86400)]
    assert sorted([run_id, *later]) == [run_id, *later]
    assert len({new_run_id() for _ in range(200)}) == 200


def test_read_current_before_any_release(tmp_path: Path) -> None:
    assert read_current(tmp_path, "ds") is None


def test_a_second_run_waits_for_the_dataset_lock(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            publish_release(tmp_path, "ds", "r1", _tiny(), _manifest(), _render)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    with open(tmp_path / "ds" / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and not (tmp_path / "ds" / ".staging").exists()
    worker.join(timeout=30)
    assert not errors and read_current(tmp_path, "ds") == "r1"


# The child publishes release r2 over r1 and SIGKILLs itself at the chosen call (patched in the child only).
_CHILD = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import pandas as pd
import pyarrow.parquet as pq
from flows.release import publish

out_dir, moment, inputs = Path(sys.argv[2]), sys.argv[3], sys.argv[4]
frame, manifest = pd.read_pickle(inputs)

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def before(real):
    return die

def after(real):
    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        die()
        return result
    return wrapper

def on_current_tmp(real):
    def wrapper(fd):
        if ".CURRENT." in os.readlink(f"/proc/self/fd/{fd}"):
            die()
        return real(fd)
    return wrapper

patches = {
    "after_first_part": (pq, "write_table", after),
    "before_rename": (os, "rename", before),
    "after_rename": (os, "rename", after),
    "during_current_write": (os, "fsync", on_current_tmp),
    "before_current_replace": (os, "replace", before),
    "after_current_replace": (os, "replace", after),
}
render = lambda m: "<html></html>"
if moment == "in_report":
    render = die
else:
    module, name, wrap = patches[moment]
    setattr(module, name, wrap(getattr(module, name)))
publish.publish_release(out_dir, "ds", "r2", frame, manifest, render, rows_per_part=2)
"""


@pytest.mark.parametrize(
    ("moment", "r2_visible", "current", "leftover"),
    [
        ("after_first_part", False, "r1", ".staging/*"),
        ("in_report", False, "r1", ".staging/*"),
        ("before_rename", False, "r1", ".staging/*"),
        ("after_rename", True, "r1", None),
        ("during_current_write", True, "r1", ".CURRENT.*.tmp"),
        ("before_current_replace", True, "r1", ".CURRENT.*.tmp"),
        ("after_current_replace", True, "r2", None),
    ],
)
def test_sigkill_at_any_moment_leaves_a_consistent_release(
    tmp_path: Path, moment: str, r2_visible: bool, current: str, leftover: str | None
) -> None:
    out = tmp_path / "out"
    first = publish_release(out, "ds", "r1", _tiny(), _manifest(), _render)
    before = _tree(first)
    inputs = tmp_path / "inputs.pkl"
    pd.to_pickle((_tiny(10), _manifest()), inputs)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)

    child = subprocess.run(
        [sys.executable, str(script), str(REPO), str(out), moment, str(inputs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr

    dataset = out / "ds"
    assert _tree(first) == before
    assert read_current(out, "ds") == current
    assert sorted(p.name for p in (dataset / "releases").iterdir()) == (["r1", "r2"] if r2_visible else ["r1"])
    for release in (dataset / "releases").iterdir():
        _assert_complete(release)
    if leftover:
        assert list(dataset.glob(leftover)), f"the kill at {moment} should have left {leftover} behind"

    publish_release(out, "ds", "r3", _tiny(20), _manifest(), _render)
    assert _tree(first) == before
    assert read_current(out, "ds") == "r3"
    _assert_complete(dataset / "releases" / "r3")
    assert list((dataset / ".staging").iterdir()) == []
    assert list(dataset.glob(".CURRENT.*")) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("failing", ["part", "manifest", "current"])
def test_a_disk_that_refuses_a_write_is_one_line_and_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, failing: str
) -> None:
    first = publish_release(tmp_path, "ds", "r1", _tiny(), _manifest(), _render)
    before = _tree(first)
    real = publish._write_durably

    def full(path: Path, write: Any) -> None:
        if {"part": "part-", "manifest": "manifest", "current": ".CURRENT."}[failing] in path.name:
            raise OSError(code, os.strerror(code), str(path))
        real(path, write)

    monkeypatch.setattr(publish, "_write_durably", full)
    with pytest.raises(StorageError) as caught:
        publish_release(tmp_path, "ds", "r2", _tiny(10), _manifest(), _render)
    assert str(caught.value) == f"cannot publish in {tmp_path / 'ds'}: {os.strerror(code)}"
    assert isinstance(caught.value, BadInputError)  # the CLI's exit 2
    assert _tree(first) == before and read_current(tmp_path, "ds") == "r1"
    assert list((tmp_path / "ds" / ".staging").iterdir()) == []
    assert list((tmp_path / "ds").glob(".CURRENT.*")) == []
    releases = sorted(p.name for p in (tmp_path / "ds" / "releases").iterdir())
    assert releases == (["r1", "r2"] if failing == "current" else ["r1"])  # r2, if there, is whole
    for release in releases:
        _assert_complete(tmp_path / "ds" / "releases" / release)


def test_a_refusal_that_cannot_be_written_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, write: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(publish, "_write_durably", full)
    with pytest.raises(StorageError, match=r"^cannot record the refusal in .*: No space left on device$"):
        record_refusal(tmp_path, "ds", "run-1", _manifest(passed=False), _render)
    assert list((tmp_path / "ds" / ".staging").iterdir()) == []
    assert not (tmp_path / "ds" / "refused").exists() or list((tmp_path / "ds" / "refused").iterdir()) == []


def test_other_os_errors_are_not_taken_for_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path, write: Any) -> None:
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(publish, "_write_durably", broken)
    with pytest.raises(OSError) as caught:
        publish_release(tmp_path, "ds", "r1", _tiny(), _manifest(), _render)
    assert not isinstance(caught.value, BadInputError)


def test_check_writable_refuses_an_output_that_cannot_hold_releases(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "deeper", "ds")  # missing folders are made at publish
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(StorageError, match=f"^cannot write releases under {blocker}: {blocker} is a file"):
        check_writable(blocker, "ds")
    with pytest.raises(StorageError, match=f"{blocker} is a file, not a folder$"):
        check_writable(blocker / "sub", "ds")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ds").write_text("a file where the dataset's folder goes")
    with pytest.raises(StorageError, match="is a file, not a folder"):
        check_writable(tmp_path / "out", "ds")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: permissions are not enforced")
def test_check_writable_refuses_a_folder_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="is not writable"):
            check_writable(locked / "out", "ds")
    finally:
        locked.chmod(0o700)


def _evaluation(marker: str, passed: bool = True) -> Manifest:
    """An evaluation's manifest, told apart from another by `marker` (its dataset)."""
    return replace(_manifest(passed), dataset=marker)


def _render_marker(manifest: Manifest) -> str:
    return f"<html>{manifest.dataset}</html>"


def _docs(folder: Path, marker: str) -> Path:
    folder.mkdir()
    (folder / "index.html").write_text(marker)
    return folder


def _assert_evaluation(out: Path, marker: str) -> None:
    """`out` holds one whole evaluation: its manifest, the report rendered from it, nothing of another."""
    assert json.loads((out / "manifest.json").read_text())["dataset"] == marker
    assert (out / "report.html").read_text() == f"<html>{marker}</html>"
    docs = out / "expectations" / "index.html"
    assert not docs.exists() or docs.read_text() == marker


def test_an_evaluation_replaces_the_previous_one_whole(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    first = publish_evaluation(out, _evaluation("first"), _render_marker,
                               folders={"expectations": _docs(tmp_path / "docs", "first")})
    assert first == out and sorted(p.name for p in out.iterdir()) == ["expectations", "manifest.json", "report.html"]
    _assert_evaluation(out, "first")

    publish_evaluation(out, _evaluation("second", passed=False), _render_marker)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "report.html"]  # the first's docs went with it
    _assert_evaluation(out, "second")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".eval.synthgate", "docs", "eval"]
    assert list((tmp_path / ".eval.synthgate" / ".staging").iterdir()) == []


def test_an_evaluation_never_replaces_a_folder_that_holds_other_files(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(StorageError, match="holds other files than an evaluation's"):
        publish_evaluation(mine, _evaluation("x"), _render_marker)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(StorageError):
        publish_evaluation(blocker, _evaluation("x"), _render_marker)
    assert blocker.read_text() == "x"


def test_without_an_atomic_exchange_the_previous_evaluation_stays(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the system cannot exchange two folders in one step, the evaluation is refused.

    It is never written in two visible steps.
    """
    out = tmp_path / "eval"
    publish_evaluation(out, _evaluation("first"), _render_marker)
    monkeypatch.setattr(publish.ctypes, "CDLL", lambda *args, **kwargs: object())  # a libc without renameat2
    with pytest.raises(StorageError, match=r"cannot replace .* atomically"):
        publish_evaluation(out, _evaluation("second"), _render_marker)
    _assert_evaluation(out, "first")
    assert list((tmp_path / ".eval.synthgate" / ".staging").iterdir()) == []


# The child writes evaluation "second" over "first" and SIGKILLs itself at the chosen moment.
_EVALUATION_CHILD = """
import os, signal, sys
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import pandas as pd
from flows.release import publish

out, moment, inputs = Path(sys.argv[2]), sys.argv[3], sys.argv[4]
manifest = pd.read_pickle(inputs)

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

exchange = publish._exchange

def after(*args):
    exchange(*args)
    die()

render = lambda m: f"<html>{m.dataset}</html>"
if moment == "in_report":
    render = die
else:
    publish._exchange = die if moment == "before_exchange" else after
publish.publish_evaluation(out, manifest, render)
"""


@pytest.mark.parametrize(("moment", "shown"), [("in_report", "first"), ("before_exchange", "first"),
                                                ("after_exchange", "second")])
def test_sigkill_while_an_evaluation_is_written_leaves_one_whole(tmp_path: Path, moment: str, shown: str) -> None:
    out = tmp_path / "eval"
    publish_evaluation(out, _evaluation("first"), _render_marker)
    inputs = tmp_path / "inputs.pkl"
    pd.to_pickle(_evaluation("second"), inputs)
    script = tmp_path / "child.py"
    script.write_text(_EVALUATION_CHILD)

    child = subprocess.run([sys.executable, str(script), str(REPO), str(out), moment, str(inputs)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr

    _assert_evaluation(out, shown)
    staging = tmp_path / ".eval.synthgate" / ".staging"
    assert list(staging.iterdir()), f"the kill at {moment} should have left a staging folder behind"
    publish_evaluation(out, _evaluation("third"), _render_marker)
    _assert_evaluation(out, "third")
    assert list(staging.iterdir()) == []
