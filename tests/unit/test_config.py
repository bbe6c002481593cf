"""The run config: YAML and flags into one validated model, every mistake a one-line error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from flows.config import DEMO_SOURCE, GateConfig, load_config
from flows.gate import ALPHA, GateThresholds, spec_of
from generators.tabular.checks import Setting, settings
from generators.tabular.errors import BadInputError


def test_defaults_are_the_demo() -> None:
    config = load_config()
    assert config.source == DEMO_SOURCE and config.dataset == "adult"
    assert config.out == Path("releases") and config.seed == 0 and config.holdout == 0.2


def test_flags_override_yaml_and_yaml_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("source: t.csv\nout: rel\nseed: 4\nrows: 10\ncolumns:\n  email: pii\ngate:\n  min_quality: 0.8\n")
    config = load_config(path, seed=9, rows=None)
    assert config.source == tmp_path / "t.csv" and config.out == tmp_path / "rel"
    assert config.seed == 9 and config.rows == 10
    assert config.columns == {"email": "pii"} and config.gate.min_quality == 0.8
    assert config.dataset == "t"


@pytest.mark.parametrize(
    ("text", "flags", "message"),
    [
        ("rows: [1\n", {}, "malformed YAML at line 2"),
        ("- a\n- b\n", {}, "must hold a mapping"),
        ("rowz: 5\n", {}, "rowz: Extra inputs are not permitted"),
        ("", {"rows": -5}, "rows: Input should be greater than 0"),
        ("", {"generator": "nope"}, "unknown generator 'nope'"),
        ("", {"name": "../escape"}, "name: must be letters"),
        ("gate: {max_dcr_share: 0.3}\n", {}, "gate.max_dcr_share"),
        ("holdout: 1.5\n", {}, "holdout: Input should be less than 1"),
    ],
)
def test_config_mistakes_are_one_line_errors(tmp_path: Path, text: str, flags: dict, message: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message) as caught:
        load_config(path, **flags)
    assert "\n" not in str(caught.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_the_gate_config_is_derived_from_the_declared_checks() -> None:
    """One field per declared setting (and alpha), with its default, description and bounds.

    Nothing to keep in step by hand.
    """
    fields = GateConfig.model_fields
    assert list(fields) == ["alpha", *(setting.name for setting in settings())]
    for setting in (ALPHA, *settings()):
        field = fields[setting.name]
        assert (field.default, field.description) == (setting.default, setting.description)
        assert field.annotation is (int if setting.integer else float)
        bounds = {key: value for bound in field.metadata for key, value in dataclasses.asdict(bound).items()}
        assert bounds == {key: getattr(setting, key) for key in ("ge", "gt", "le", "lt")
                          if getattr(setting, key) is not None}
    thresholds = load_config(gate={"max_dcr_share": 0.55, "alpha": 0.01}).gate.thresholds()
    assert thresholds.alpha == 0.01 and thresholds.lines["max_dcr_share"] == 0.55
    assert thresholds.lines["min_quality"] == GateThresholds().line(spec_setting("fidelity.quality"))
    with pytest.raises(BadInputError, match=r"gate\.min_qualty: Extra inputs are not permitted"):
        load_config(gate={"min_qualty": 0.8})


def spec_setting(name: str) -> Setting:
    spec = spec_of(name)
    assert spec is not None and isinstance(spec.threshold, Setting)
    return spec.threshold
