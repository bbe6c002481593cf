"""`synthgate releases` and `synthgate rollback`: the listing for people and for machines, the move, the refusals.

Bad input exits 2 with one line on stderr and changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import EXIT_BAD_INPUT, app
from flows.release.publish import read_current
from tests.unit.test_history import history, make

runner = CliRunner()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Three runs of `ds`: published, refused, published (CURRENT)."""
    make(tmp_path, 0)
    make(tmp_path, 1, passed=False)
    make(tmp_path, 2)
    return tmp_path


def ids(out: Path) -> list[str]:
    return sorted(p.name for kind in ("releases", "refused") for p in (out / "ds" / kind).iterdir())


def test_releases_prints_a_table_with_current_marked(out: Path) -> None:
    first, refused, last = ids(out)

    result = runner.invoke(app, ["releases", "ds", "--out", str(out)])

    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [  # one entry a line even in a pipe's 80 columns
        ["id", "created", "(UTC)", "generator", "quality", "status", "rows"],
        [last, "2026-01-05", "12:02", "gaussian_copula", "0.9", "CURRENT", "6"],
        [refused, "2026-01-05", "12:01", "gaussian_copula", "0.4", "refused", "—"],
        [first, "2026-01-05", "12:00", "gaussian_copula", "0.9", "published", "6"],
    ]


def test_releases_json_is_for_machines(out: Path) -> None:
    first, refused, last = ids(out)

    result = runner.invoke(app, ["releases", "ds", "--out", str(out), "--json"])

    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [(e["id"], e["verdict"], e["current"]) for e in listed] == [
        (last, "published", True), (refused, "refused", False), (first, "published", False)]
    assert listed[0]["path"] == str(out / "ds" / "releases" / last)


def test_rollback_prints_the_move_and_logs_it(out: Path) -> None:
    first, _, last = ids(out)

    result = runner.invoke(app, ["rollback", "ds", first, "--out", str(out), "--reason", "bad batch"])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"CURRENT of ds: {last} -> {first}\n"
    assert read_current(out, "ds") == first
    assert history(out)[-1] | {"time": None} == {"time": None, "action": "rollback", "release_id": first,
                                                   "previous": last, "reason": "bad batch"}
    again = runner.invoke(app, ["rollback", "ds", first, "--out", str(out)])
    assert again.exit_code == 0 and again.stdout == f"CURRENT of ds is already {first}; nothing changed\n"


@pytest.mark.parametrize(("command", "expected"), [
    (["releases", "nope"], "error: no dataset 'nope' under {out}; datasets there: ds"),
    (["rollback", "nope", "x"], "error: no dataset 'nope' under {out}; datasets there: ds"),
    (["rollback", "ds", "x"], "error: ds has no release 'x'; published releases: {last}, {first}"),
    (["rollback", "ds", "{refused}"], "error: {refused} was refused by the gate, so it cannot become CURRENT; "
                                      "published releases: {last}, {first}"),
])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(out: Path, command: list[str], expected: str) -> None:
    first, refused, last = ids(out)
    names = {"out": out, "first": first, "refused": refused, "last": last}
    before = (out / "ds" / "history.jsonl").read_bytes()

    result = runner.invoke(app, [*(part.format(**names) for part in command), "--out", str(out)])

    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert result.stderr == expected.format(**names) + "\n"
    assert result.stdout == ""
    assert read_current(out, "ds") == last
    assert (out / "ds" / "history.jsonl").read_bytes() == before


def test_a_dataset_without_releases_lists_none(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()

    result = runner.invoke(app, ["releases", "ds", "--out", str(tmp_path)])

    assert result.exit_code == 0 and result.stdout == f"no releases or refused runs of ds under {tmp_path}\n"
    assert json.loads(runner.invoke(app, ["releases", "ds", "--out", str(tmp_path), "--json"]).stdout) == []
