"""The privacy ledger: sums, refusals, atomic writes and corrupt files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from flows.release import ledger
from generators.tabular.errors import BadInputError


def test_an_empty_ledger_has_spent_nothing(tmp_path: Path) -> None:
    assert ledger.spent(tmp_path, "adult") == 0.0
    assert not ledger.ledger_path(tmp_path, "adult").exists()


def test_releases_add_up_per_dataset(tmp_path: Path) -> None:
    ledger.record_release(tmp_path, "adult", "r1", 1.5, 1e-5)
    ledger.record_release(tmp_path, "adult", "r2", 0.25, 1e-6)
    ledger.record_release(tmp_path, "other", "r1", 3.0, 1e-5)
    assert ledger.spent(tmp_path, "adult") == pytest.approx(1.75)
    assert ledger.spent(tmp_path, "other") == pytest.approx(3.0)
    [first, second] = ledger.entries(tmp_path, "adult")
    assert first["release_id"] == "r1" and second == {**second, "epsilon": 0.25, "delta": 1e-6}
    assert second["recorded_at"].endswith("+00:00")


def test_budget_check_refuses_what_does_not_fit(tmp_path: Path) -> None:
    ledger.record_release(tmp_path, "adult", "r1", 2.0, 1e-5)
    fits = ledger.check_budget(tmp_path, "adult", 1.0, 3.0)
    assert fits == ledger.LedgerCheck(spent=2.0, requested=1.0, budget=3.0, remaining=1.0, allowed=True)
    assert not ledger.check_budget(tmp_path, "adult", 1.01, 3.0).allowed


def test_a_release_without_dp_never_fits_a_budget(tmp_path: Path) -> None:
    check = ledger.check_budget(tmp_path, "adult", math.inf, 1e9)
    assert not check.allowed and check.requested == math.inf


def test_a_release_is_recorded_once(tmp_path: Path) -> None:
    ledger.record_release(tmp_path, "adult", "r1", 1.0, 1e-5)
    with pytest.raises(BadInputError):
        ledger.record_release(tmp_path, "adult", "r1", 1.0, 1e-5)
    with pytest.raises(BadInputError):
        ledger.record_release(tmp_path, "adult", "r2", math.inf, 1e-5)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"format": "synthgate-privacy-ledger/1"}',
        "[]",
        '{"format": "synthgate-privacy-ledger/1", "releases": [{"epsilon": -1}]}',
    ],
)
def test_a_corrupt_ledger_is_an_error_and_is_left_alone(tmp_path: Path, content: str) -> None:
    path = ledger.ledger_path(tmp_path, "adult")
    path.parent.mkdir()
    path.write_text(content)
    for call in (lambda: ledger.spent(tmp_path, "adult"), lambda: ledger.record_release(tmp_path, "adult", "r", 1, 0)):
        with pytest.raises(BadInputError) as error:
            call()
        assert "\n" not in str(error.value)
    assert path.read_text() == content


def test_a_failed_write_leaves_the_old_ledger_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.record_release(tmp_path, "adult", "r1", 1.0, 1e-5)
    path = ledger.ledger_path(tmp_path, "adult")
    before = path.read_text()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        ledger.record_release(tmp_path, "adult", "r2", 1.0, 1e-5)
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [ledger.LEDGER]  # no temp file left behind
    assert json.loads(before)["releases"][0]["release_id"] == "r1"
