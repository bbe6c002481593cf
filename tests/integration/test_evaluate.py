"""`synthgate evaluate` end to end on real Adult rows.

Planted fidelity faults and privacy leaks are refused (exit 3) by a named check; real rows never trained on pass;
bad input exits 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import EXIT_BAD_INPUT, EXIT_PUBLISHED, EXIT_REFUSED, app
from flows.gate import GateThresholds, privacy_checks
from flows.sources import load_table
from privacy.audit import audit_privacy
from privacy.distance import distance_evidence

ADULT = Path(__file__).resolve().parents[2] / "data" / "adult.parquet"
TRAIN_ROWS, HOLDOUT_ROWS, SYNTHETIC_ROWS = 4_000, 2_000, 2_000


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_parquet(ADULT)


@pytest.fixture(scope="module")
def parts(adult: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Disjoint real parts: train, holdout, and `honest` (real rows never trained on, as a synthetic table)."""
    order = np.random.default_rng(0).permutation(len(adult))
    cuts = np.cumsum([TRAIN_ROWS, HOLDOUT_ROWS, SYNTHETIC_ROWS])
    chosen = np.split(order[: cuts[-1]], cuts[:-1])
    return {name: adult.iloc[rows].reset_index(drop=True) for name, rows in zip(("train", "holdout", "honest"),
                                                                                  chosen, strict=True)}


@pytest.fixture(scope="module")
def files(parts: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("real")
    paths = {name: folder / f"{name}.parquet" for name in ("train", "holdout")}
    for name, path in paths.items():
        parts[name].to_parquet(path)
    return paths


def evaluate(files: dict[str, Path], synthetic: pd.DataFrame, out: Path) -> tuple[int, dict[str, object]]:
    """Run the CLI on the real parts and `synthetic`; (exit code, manifest)."""
    synthetic_path = out.parent / f"{out.name}-synthetic.parquet"
    synthetic.to_parquet(synthetic_path)
    result = CliRunner().invoke(app, ["evaluate", "--train", str(files["train"]), "--holdout",
                                      str(files["holdout"]), "--synthetic", str(synthetic_path), "--out", str(out)])
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    return result.exit_code, manifest


def failed_checks(manifest: dict[str, object]) -> list[str]:
    gate = manifest["gate"]
    assert isinstance(gate, dict)
    return [check["name"] for check in gate["checks"] if not check["passed"]]


def test_real_rows_never_trained_on_pass_the_whole_gate(files: dict[str, Path], parts: dict[str, pd.DataFrame],
                                                       tmp_path: Path) -> None:
    code, manifest = evaluate(files, parts["honest"], tmp_path / "honest")
    assert failed_checks(manifest) == []
    assert code == EXIT_PUBLISHED
    assert (tmp_path / "honest" / "report.html").is_file()
    assert (tmp_path / "honest" / "expectations" / "index.html").is_file()
    names = [check["name"] for check in manifest["gate"]["checks"]]  # type: ignore[index]
    for expected in ("fidelity.quality", "fidelity.diagnostic", "fidelity.column_shape[age]",
                     "fidelity.null_drift[age]", "fidelity.category_coverage[workclass]", "utility.lift_kept",
                     "privacy.dcr_share", "privacy.membership_tpr[density]", "privacy.isolated_reproduced",
                     "privacy.singling_out_risk"):
        assert expected in names
    assert manifest["metrics"]["privacy"]["membership_auc_distance"] is not None  # kept for continuity
    assert any(name.startswith("expectations.") for name in names)
    assert manifest["metrics"]["utility"]["target"] == "class"  # type: ignore[index]


def _shuffled(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: np.random.default_rng(1).permutation(frame[column].to_numpy())})


def _merged(column: str, lost: str, into: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: frame[column].replace({lost: into})})


def _shifted(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: frame[column] + frame[column].std()})


def _nulled(column: str, share: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        values = frame[column].astype(float)
        values[np.random.default_rng(2).random(len(frame)) < share] = np.nan
        return frame.assign(**{column: values})

    return plant


@pytest.mark.parametrize(
    ("plant", "named"),
    [
        # education-num is education in numbers (Cramér's V 1.0): shuffled, each keeps its shape, the pair breaks.
        (_shuffled("education-num"), "fidelity.pair_trend[education|education-num]"),
        (_merged("workclass", "Self-emp-not-inc", "Private"), "fidelity.category_coverage[workclass]"),
        (_shifted("age"), "fidelity.column_shape[age]"),
        (_nulled("hours-per-week", 0.3), "fidelity.null_drift[hours-per-week]"),
    ],
    ids=["shuffled-correlated-column", "merged-category", "shifted-one-sd", "thirty-percent-nulls"],
)
def test_planted_fidelity_faults_are_refused_by_name(
    plant: Callable[[pd.DataFrame], pd.DataFrame], named: str, files: dict[str, Path],
    parts: dict[str, pd.DataFrame], tmp_path: Path,
) -> None:
    code, manifest = evaluate(files, plant(parts["honest"]), tmp_path / "faulty")
    assert code == EXIT_REFUSED
    assert named in failed_checks(manifest)
    assert "REFUSED" in (tmp_path / "faulty" / "report.html").read_text()


def _with_noise(frame: pd.DataFrame, schema_numbers: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    noisy = frame.copy()
    for column in schema_numbers:
        noisy[column] = frame[column] + rng.normal(0, 0.01 * frame[column].std(), len(frame))
    return noisy


def test_planted_privacy_leaks_are_refused_by_name(files: dict[str, Path], parts: dict[str, pd.DataFrame],
                                                   tmp_path: Path) -> None:
    train, honest = parts["train"], parts["honest"]
    table = load_table(files["train"])
    holdout = load_table(files["holdout"]).frame
    numbers = [spec.name for spec in table.schema.learned if spec.kind.value == "numerical"]
    copies = train.sample(SYNTHETIC_ROWS, random_state=3).reset_index(drop=True)
    some_copies = honest.copy()
    some_copies.iloc[: SYNTHETIC_ROWS // 20] = train.iloc[: SYNTHETIC_ROWS // 20].to_numpy()
    isolated = distance_evidence(table.frame, holdout, honest, table.schema).isolated_rows
    with_outliers = pd.concat([honest.iloc[20:], train.iloc[isolated]], ignore_index=True)
    leaks = {
        "copy-of-train": (copies, "privacy.exact_match_rate"),
        "five-percent-copies": (some_copies, "privacy.exact_match_rate"),
        "one-percent-noise": (_with_noise(copies, numbers, 4), "privacy.membership_tpr[distance]"),
        "isolated-rows": (with_outliers, "privacy.isolated_reproduced"),
    }
    for name, (synthetic, check) in leaks.items():
        code, manifest = evaluate(files, synthetic, tmp_path / name)
        assert code == EXIT_REFUSED, name
        assert check in failed_checks(manifest), (name, failed_checks(manifest))


def test_honest_rows_pass_the_privacy_gate_in_at_least_19_of_20_seeded_splits(adult: pd.DataFrame) -> None:
    table = load_table(ADULT)
    passed = 0
    for seed in range(20):
        order = np.random.default_rng(100 + seed).permutation(len(adult))
        train, holdout, honest = (table.frame.iloc[order[a:b]].reset_index(drop=True)
                                  for a, b in ((0, 3_000), (3_000, 4_500), (4_500, 6_000)))
        audit = audit_privacy(train, holdout, honest, table.schema, seed=seed)
        passed += all(check.passed for check in privacy_checks(audit, GateThresholds(), None))
    assert passed >= 19


def test_bad_input_exits_2_with_one_line(files: dict[str, Path], parts: dict[str, pd.DataFrame],
                                         tmp_path: Path) -> None:
    missing = parts["honest"].drop(columns=["age"])
    code, _ = evaluate(files, missing, tmp_path / "missing-column")
    assert code == EXIT_BAD_INPUT
    result = CliRunner().invoke(app, ["evaluate", "--train", str(tmp_path / "nope.csv"), "--holdout",
                                      str(files["holdout"]), "--synthetic", str(files["holdout"])])
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.output.strip().count("\n") == 0 and result.output.startswith("error:")
