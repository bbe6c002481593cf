"""`generator: auto`: how the choice is made, and what a run with it publishes or refuses.

The choice is made on the training part alone, is the same for the same seed, and prefers a candidate the gate
passes over one that leaks; a run with it publishes with the choice in its manifest; a refusal says what to try.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows import select
from flows.cli import EXIT_PUBLISHED, app, show_outcome
from flows.config import RunConfig, load_config
from flows.release.manifest import Manifest
from flows.release.report import refusal_advice, render_report
from flows.select import Candidate, Selection, Trial, choose_generator, rank, selection_split
from flows.split import split_holdout
from flows.steps import RunOutcome
from generators.registry import create
from generators.tabular.errors import BadInputError
from generators.tabular.inference import infer_schema
from generators.tabular.schema import Schema

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    """(train, holdout, schema) of a seeded 800-row table a Gaussian copula models exactly.

    Its columns are correlated normal numbers and a category cut from one of them; each row is numbered by an id
    column no model learns.
    """
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal([0.0, 0.0, 0.0], [[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]], size=800)
    raw = pd.DataFrame({"row": range(800), "a": x[:, 0], "b": 50 + 10 * x[:, 1],
                        "c": np.where(x[:, 2] > 0.5, "high", np.where(x[:, 2] > -0.5, "mid", "low"))})
    frame, schema = infer_schema(raw, {"row": "id"})
    train, holdout = split_holdout(frame, 0.2, seed=0)
    return train, holdout, schema


class CopyCat:
    """A "generator" that releases its training rows as they are: the leak the privacy checks exist for."""

    def fit(self, frame: pd.DataFrame, schema: Schema) -> CopyCat:
        self.rows = frame
        return self

    def sample(self, n: int) -> pd.DataFrame:
        return self.rows.sample(n, replace=n > len(self.rows), random_state=0).reset_index(drop=True)


@dataclass
class Spy:
    """Every frame a candidate was fitted on or judged against."""

    seen: list[pd.DataFrame] = field(default_factory=list)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    """Candidates built through a recording `create`, judged through a recording `judge_candidate`.

    The recording `create` knows one more name, `copycat`.
    """
    found = Spy()
    judge = select.judge_rows

    def recording_create(name: str, params: dict[str, Any] | None = None, seed: int = 0, device: str = "auto") -> Any:
        model: Any = CopyCat() if name == "copycat" else create(name, params, seed=seed, device=device)
        fit = model.fit

        def recorded_fit(frame: pd.DataFrame, schema: Schema) -> Any:
            found.seen.append(frame)
            return fit(frame, schema)

        model.fit = recorded_fit
        return model

    def recording_judge(fit: pd.DataFrame, validation: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        found.seen.extend([fit, validation])
        return judge(fit, validation, *args, **kwargs)

    monkeypatch.setattr(select, "create", recording_create)
    monkeypatch.setattr(select, "judge_rows", recording_judge)
    yield found


def _outcome(selection: Selection) -> list[tuple[Any, ...]]:
    """What a selection decided, without the times it took."""
    return [(t.name, dict(t.params), t.quality, t.passed, t.failed) for t in selection.trials] + [
        (selection.name, dict(selection.params), selection.fit_rows, selection.validation_rows)
    ]


def test_a_candidate_that_passes_beats_one_that_leaks_and_only_training_rows_are_seen(
    table: tuple[pd.DataFrame, pd.DataFrame, Schema], spy: Spy
) -> None:
    train, holdout, schema = table
    selection = choose_generator(train, schema, RunConfig(), [Candidate("copycat"), Candidate("copula")])

    copycat, copula = selection.trials
    assert (selection.name, selection.params) == ("copula", {})
    assert not copycat.passed and copycat.failed_privacy > 0
    assert copula.passed, copula.failed
    assert (selection.fit_rows, selection.validation_rows) == (480, 160)
    assert len(spy.seen) == 6  # per candidate: the rows it was fitted on, then both parts it was judged with
    for frame in spy.seen:
        assert set(frame["row"]) <= set(train["row"]) and not set(frame["row"]) & set(holdout["row"])


def test_the_first_candidate_that_passes_ends_the_search(
    table: tuple[pd.DataFrame, pd.DataFrame, Schema], spy: Spy
) -> None:
    train, _, schema = table
    selection = choose_generator(train, schema, RunConfig(), [Candidate("copula"), Candidate("copycat")])
    assert [t.name for t in selection.trials] == ["copula"] and selection.trials[0].passed
    assert selection.name == "copula" and len(spy.seen) == 3  # one fit, one judgement


def test_the_same_seed_makes_the_same_choice(table: tuple[pd.DataFrame, pd.DataFrame, Schema]) -> None:
    train, _, schema = table
    candidates = [Candidate("copula"), Candidate("gmm", {"components": (2, 4)})]
    first, again = (choose_generator(train, schema, RunConfig(seed=3), candidates) for _ in range(2))
    assert _outcome(first) == _outcome(again)


def test_the_split_is_seeded_disjoint_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    train = pd.DataFrame({"x": range(1_000)})
    fit, validation = selection_split(train, seed=0)
    assert (len(fit), len(validation)) == (750, 250) and not set(fit["x"]) & set(validation["x"])
    assert fit.equals(selection_split(train, seed=0)[0]) and not fit.equals(selection_split(train, seed=1)[0])
    monkeypatch.setattr(select, "SELECTION_ROWS", 100)
    assert [len(part) for part in selection_split(train, seed=0)] == [100, 100]
    with pytest.raises(BadInputError, match="generator auto needs at least 10 rows"):
        selection_split(train.head(30), seed=0)


def _trial(name: str, failed: tuple[str, ...] = (), quality: float = 0.9) -> Trial:
    return Trial(name, {}, 1.0, quality, not failed, failed)


def test_the_ranking_puts_passing_first_then_fewest_leaks_then_fewest_faults_then_quality() -> None:
    trials = [
        _trial("two leaks", ("privacy.dcr_share", "privacy.nndr_low_share"), 0.99),
        _trial("one leak", ("privacy.dcr_share",), 0.98),
        _trial("two faults", ("fidelity.quality", "utility.lift_kept"), 0.97),
        _trial("one fault", ("fidelity.quality",), 0.96),
        _trial("passed", quality=0.80),
        _trial("passed, better", quality=0.85),
        _trial("passed, better, later", quality=0.85),
        _trial("passed, quality unknown", quality=float("nan")),
    ]
    assert [t.name for t in rank(trials)] == ["passed, better", "passed, better, later", "passed",
                                              "passed, quality unknown", "one fault", "two faults", "one leak",
                                              "two leaks"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [({"params": {"steps": 10}}, "params: generator auto \\(the default\\) takes no params"),
     ({"privacy_budget": 1.0}, "privacy_budget: generator auto \\(the default\\) chooses among generators without")],
)
def test_auto_refuses_settings_it_cannot_honour(flags: dict[str, Any], message: str) -> None:
    assert load_config(generator="auto").generator == "auto"
    with pytest.raises(BadInputError, match=message):
        load_config(generator="auto", **flags)


def _manifest(failed: list[str], **generator: Any) -> Manifest:
    checks = [{"name": name, "value": 1.0, "threshold": 0.5, "comparison": "<=", "passed": False} for name in failed]
    passed = [{"name": "fidelity.diagnostic", "value": 1.0, "threshold": 0.999, "comparison": ">=", "passed": True}]
    return Manifest.from_dict({"generator": {"name": "rbm", **generator},
                               "gate": {"passed": not failed, "checks": passed + checks}})


def test_a_refusal_says_what_to_try(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leak = refusal_advice(_manifest(["privacy.membership_tpr[density]", "fidelity.quality"]))
    assert leak.startswith("Try `--generator auto` (chooses") and "more rows" in leak and "dp_epsilon" in leak
    fault = refusal_advice(_manifest(["fidelity.quality"]))
    assert fault == "Try `--generator auto` or a stronger generator such as ddpm."
    assert "auto" not in refusal_advice(_manifest(["privacy.dcr_share"], selection={"chosen": {}}))
    assert "auto" not in refusal_advice(_manifest(["fidelity.quality"], selection={"chosen": {}}))
    assert "privacy_budget" in refusal_advice(_manifest(["privacy.budget"]))
    assert refusal_advice(_manifest([])) == ""
    assert refusal_advice(replace(_manifest(["fidelity.quality"]), generator=None)) == ""  # `synthgate evaluate`'s
    assert "<code>--generator auto</code>" in render_report(_manifest(["privacy.dcr_share"]))
    show_outcome(RunOutcome(tmp_path, _manifest(["privacy.dcr_share"])))
    assert "Try `--generator auto`" in capsys.readouterr().out


def test_a_run_with_auto_publishes_with_its_choice_in_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two fast candidates, so the whole run takes seconds; the default list is measured in README."""
    raw = pd.read_parquet(ROOT / "data" / "adult.parquet").drop(columns=["education-num"])
    source = tmp_path / "adult.csv"
    raw.sample(1_000, random_state=0).to_csv(source, index=False)
    monkeypatch.setattr(select, "CANDIDATES", (Candidate("copula"), Candidate("gmm", {"components": (2, 4)})))
    result = runner.invoke(app, ["run", "--source", str(source), "--generator", "auto", "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_PUBLISHED, result.output
    (manifest_path,) = (tmp_path / "out" / "adult" / "releases").glob("*/manifest.json")
    generator = json.loads(manifest_path.read_text())["generator"]
    chosen = generator["selection"]["chosen"]
    assert generator["name"] == chosen["name"] in {"copula", "gmm"}
    tried = [c["name"] for c in generator["selection"]["candidates"]]
    assert tried == ["copula", "gmm"][: len(tried)] and tried[-1] == chosen["name"]  # the first that passed
    assert generator["selection"]["fit_rows"] == 600 and generator["selection"]["validation_rows"] == 200
    assert generator["params"] == {**generator["params"], **chosen["params"]}


def test_generators_lists_auto() -> None:
    result = runner.invoke(app, ["generators"])
    assert result.exit_code == 0 and "auto" in result.stdout and "validation split" in result.stdout
