"""Release history: the listing, rollback of CURRENT, retention, and the append-only history.jsonl.

Releases are made with the real `publish_release` and `record_refusal` on tiny frames.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flows.release.history import apply_retention, list_releases, rollback
from flows.release.manifest import Manifest
from flows.release.publish import new_run_id, publish_release, read_current, record_refusal, sha256_file
from generators.tabular.errors import BadInputError

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def manifest(at: datetime, passed: bool = True) -> Manifest:
    """The least a release's manifest holds: a generator, a source, a fidelity figure and a gate."""
    return Manifest.from_dict({
        "dataset": "ds",
        "created_at": at.isoformat(timespec="seconds"),
        "generator": {"name": "gaussian_copula", "params": {}, "seed": 0},
        "source": {"uri": "data/people.csv", "format": "csv", "sha256": "ab" * 32, "rows": 6, "columns": 2},
        "metrics": {"fidelity": {"quality": 0.9 if passed else 0.4}},
        "gate": {"checks": [{"name": "quality", "value": 0.9 if passed else 0.4, "threshold": 0.8,
                             "comparison": ">=", "passed": passed}]},
    })


def make(out: Path, minute: int, *, passed: bool = True, dataset: str = "ds", keep: int | None = None) -> str:
    """A release (or, not `passed`, a refused run) made `minute` minutes after START; returns its id."""
    at = START + timedelta(minutes=minute)
    run_id = new_run_id(at)
    render = lambda m: f"<html>{m.name}</html>"  # noqa: E731
    if passed:
        publish_release(out, dataset, run_id, pd.DataFrame({"x": range(6), "y": list("abcdef")}), manifest(at),
                        render, keep=keep)
    else:
        record_refusal(out, dataset, run_id, manifest(at, passed=False), render, keep=keep)
    return run_id


def history(out: Path, dataset: str = "ds") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / dataset / "history.jsonl").read_text().splitlines()]


def folders(out: Path, kind: str = "releases") -> list[str]:
    return sorted(p.name for p in (out / "ds" / kind).iterdir())


def test_the_listing_is_newest_first_with_refusals_marked_and_current_flagged(tmp_path: Path) -> None:
    first, refused, last = make(tmp_path, 0), make(tmp_path, 1, passed=False), make(tmp_path, 2)

    entries = list_releases(tmp_path, "ds")

    assert [(e.id, e.verdict, e.current) for e in entries] == [
        (last, "published", True), (refused, "refused", False), (first, "published", False)]
    assert (entries[0].generator, entries[0].quality, entries[0].rows) == ("gaussian_copula", 0.9, 6)
    assert entries[0].created_at == "2026-01-05T12:02:00+00:00"
    assert entries[1].rows is None and entries[1].quality == 0.4
    assert entries[0].to_dict()["path"] == str(tmp_path / "ds" / "releases" / last)


def test_a_release_whose_manifest_cannot_be_read_is_listed_as_damaged(tmp_path: Path) -> None:
    first, second = make(tmp_path, 0), make(tmp_path, 1)
    (tmp_path / "ds" / "releases" / second / "manifest.json").write_text("{not json")

    entries = list_releases(tmp_path, "ds")

    assert [(e.id, e.verdict) for e in entries] == [(second, "damaged"), (first, "published")]
    assert entries[0].damaged is not None and entries[0].damaged.startswith("manifest.json unreadable: JSONDecodeError")
    with pytest.raises(BadInputError, match=rf"release {second} is damaged: .*; published releases: {first}$"):
        rollback(tmp_path, "ds", second)


def test_a_missing_dataset_is_one_line_that_names_the_datasets_there(tmp_path: Path) -> None:
    make(tmp_path, 0, dataset="census")
    make(tmp_path, 1, dataset="adult")
    (tmp_path / ".cache").mkdir()

    with pytest.raises(BadInputError) as listed:
        list_releases(tmp_path, "adlt")
    assert str(listed.value) == f"no dataset 'adlt' under {tmp_path}; datasets there: adult, census"
    with pytest.raises(BadInputError, match=r"no dataset 'adult': .* is not a folder of releases"):
        rollback(tmp_path / "absent", "adult", "x")
    with pytest.raises(BadInputError, match="datasets there: adult, census"):
        apply_retention(tmp_path, "adlt", keep=1)
    assert not (tmp_path / "adlt").exists()  # refusing wrote nothing


def test_rollback_moves_current_and_every_move_is_a_line_of_history(tmp_path: Path) -> None:
    a, b, c = make(tmp_path, 0), make(tmp_path, 1), make(tmp_path, 2)

    moved = rollback(tmp_path, "ds", a, reason="drift in c")

    assert (moved.previous, moved.current, moved.changed) == (c, a, True)
    assert read_current(tmp_path, "ds") == a
    assert [e.id for e in list_releases(tmp_path, "ds") if e.current] == [a]
    lines = history(tmp_path)
    assert [(line["action"], line["release_id"], line["previous"], line["reason"]) for line in lines] == [
        ("published", a, None, None), ("published", b, a, None), ("published", c, b, None),
        ("rollback", a, c, "drift in c")]
    assert all(datetime.fromisoformat(line["time"]).tzinfo is not None for line in lines)


def test_rollback_to_the_current_release_writes_nothing(tmp_path: Path) -> None:
    make(tmp_path, 0)
    last = make(tmp_path, 1)
    before = (tmp_path / "ds" / "history.jsonl").read_bytes()

    moved = rollback(tmp_path, "ds", last)

    assert (moved.previous, moved.current, moved.changed) == (last, last, False)
    assert (tmp_path / "ds" / "history.jsonl").read_bytes() == before


def test_rollback_refuses_unknown_and_refused_ids_in_one_line_naming_the_valid_ones(tmp_path: Path) -> None:
    a, refused, c = make(tmp_path, 0), make(tmp_path, 1, passed=False), make(tmp_path, 2)
    before = (tmp_path / "ds" / "history.jsonl").read_bytes()

    for asked, why in (("nope", "ds has no release 'nope'"), ("../CURRENT", "ds has no release '../CURRENT'"),
                       (refused, f"{refused} was refused by the gate, so it cannot become CURRENT")):
        with pytest.raises(BadInputError) as refusal:
            rollback(tmp_path, "ds", asked)
        assert str(refusal.value) == f"{why}; published releases: {c}, {a}"

    assert read_current(tmp_path, "ds") == c
    assert (tmp_path / "ds" / "history.jsonl").read_bytes() == before


def test_retention_keeps_the_newest_releases_and_refusals_and_logs_each_deletion(tmp_path: Path) -> None:
    refusals = [make(tmp_path, minute, passed=False) for minute in range(3)]
    old = [make(tmp_path, minute) for minute in range(3, 7)]
    (tmp_path / "ds" / ".models").mkdir()
    (tmp_path / "ds" / ".models" / "model.pt").write_bytes(b"cached")
    (tmp_path / "ds" / "privacy-ledger.json").write_text("{}")

    newest = make(tmp_path, 7, keep=2)

    assert folders(tmp_path) == [old[-1], newest]
    assert folders(tmp_path, "refused") == refusals[1:]
    retention = [line for line in history(tmp_path) if line["action"] == "retention"]
    assert sorted(line["release_id"] for line in retention) == sorted([*old[:-1], refusals[0]])
    assert {line["previous"] for line in retention} == {newest}
    assert (tmp_path / "ds" / ".models" / "model.pt").read_bytes() == b"cached"
    assert (tmp_path / "ds" / "privacy-ledger.json").read_text() == "{}"
    assert list((tmp_path / "ds" / ".staging").iterdir()) == []

    refused = make(tmp_path, 8, passed=False, keep=1)  # a refusal applies the same retention
    assert (folders(tmp_path), folders(tmp_path, "refused")) == ([newest], [refused])


def test_retention_never_deletes_current_nor_the_newest_after_a_rollback(tmp_path: Path) -> None:
    a, b, c, d = (make(tmp_path, minute) for minute in range(4))
    rollback(tmp_path, "ds", a)

    apply_retention(tmp_path, "ds", keep=2)
    assert folders(tmp_path) == [a, c, d]
    apply_retention(tmp_path, "ds", keep=1)
    assert folders(tmp_path) == [a, d]
    assert read_current(tmp_path, "ds") == a
    assert [e.verdict for e in list_releases(tmp_path, "ds")] == ["published", "published"]
    assert b not in folders(tmp_path)


def test_keep_below_one_is_bad_input_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="keep must be at least 1"):
        make(tmp_path, 0, keep=0)
    assert not (tmp_path / "ds").exists()
    make(tmp_path, 1)
    with pytest.raises(BadInputError, match="keep must be at least 1"):
        apply_retention(tmp_path, "ds", keep=0)


class Killed(BaseException):
    """The process dying at that very instruction: nothing after it runs, no `except Exception` catches it."""


def test_a_crash_between_hiding_and_removing_a_release_leaves_releases_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = make(tmp_path, 0), make(tmp_path, 1), make(tmp_path, 2)
    kept = {name: sha256_file(tmp_path / "ds" / "releases" / name / "manifest.json") for name in (a, c)}

    def killed(path: Any, *args: Any, **kwargs: Any) -> None:
        raise Killed(path)

    with monkeypatch.context() as patched:
        patched.setattr(shutil, "rmtree", killed)
        with pytest.raises(Killed):
            apply_retention(tmp_path, "ds", keep=1)

    assert folders(tmp_path) == [a, c]  # b went out of sight whole; a was not reached
    assert {name: sha256_file(tmp_path / "ds" / "releases" / name / "manifest.json") for name in (a, c)} == kept
    assert [e.verdict for e in list_releases(tmp_path, "ds")] == ["published", "published"]
    assert [p.name for p in (tmp_path / "ds" / ".staging").iterdir()] == [f"deleted-releases-{b}"]

    make(tmp_path, 3)  # the next run cleans the leftover
    assert list((tmp_path / "ds" / ".staging").iterdir()) == []


def test_a_line_torn_by_a_crash_does_not_spoil_the_lines_after_it(tmp_path: Path) -> None:
    a, b = make(tmp_path, 0), make(tmp_path, 1)
    with open(tmp_path / "ds" / "history.jsonl", "a") as log:
        log.write('{"time": "2026-01-05T12:')

    rollback(tmp_path, "ds", a)

    lines = (tmp_path / "ds" / "history.jsonl").read_text().splitlines()
    assert lines[2] == '{"time": "2026-01-05T12:'
    assert json.loads(lines[3])["action"] == "rollback" and json.loads(lines[3])["previous"] == b
