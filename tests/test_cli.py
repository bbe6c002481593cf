"""The CLI's contract for bad input: exit 2, one clear line on stderr, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import EXIT_BAD_INPUT, app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


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
