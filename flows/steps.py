"""The pipeline's steps that are more than one library call, as plain functions a test can call without Prefect.

The flows (`flows/synthesize.py`, `flows/evaluate.py`) wrap each of these, and the library's own functions, as a
task (`flows/tasks.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.config import AUTO_GENERATOR, RunConfig
from flows.gate import BudgetUse
from flows.release import ledger
from flows.release.manifest import EXPECTATIONS_DOCS, GeneratorRecord, Manifest
from flows.release.publish import (
    MANIFEST,
    check_evaluation_folder,
    check_writable,
    publish_evaluation,
    publish_release,
    record_refusal,
)
from flows.release.report import render_report
from flows.select import CANDIDATES, Candidate, Selection
from flows.sources import SourceInfo, load_table, read_source
from generators import registry
from generators.base import Generator
from generators.registry import create
from generators.tabular.errors import BadInputError
from generators.tabular.inference import as_written, conform_column, infer_schema
from generators.tabular.schema import ColumnKind, Schema

MODEL_PATH = "model/generator.pt"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """Where a run left its manifest (a published release, a kept refusal, an evaluation's folder), and the manifest."""

    path: Path
    manifest: Manifest

    @property
    def passed(self) -> bool:
        """Whether the gate passed, as the manifest records it: the CLI's exit code follows it."""
        return self.manifest.passed


def preflight(config: RunConfig) -> None:
    """Fail on bad input before anything slow starts.

    Check the output folder can take a release, read the source, infer its schema, build the model (with `auto`,
    every candidate).
    """
    check_writable(config.out, config.dataset)
    table = load_table(config.source, config.columns, config.target, config.na_values)
    if config.rebalance is not None:
        rebalance_values(table.schema, config.rebalance)
    candidates = CANDIDATES if config.generator == AUTO_GENERATOR else (Candidate(config.generator, config.params),)
    for candidate in candidates:
        create(candidate.name, dict(candidate.params), seed=config.seed, device=config.device)


@dataclass(frozen=True)
class Tables:
    """The three tables `evaluate` judges, read through the training table's schema, with where they came from."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    synthetic: pd.DataFrame
    schema: Schema
    source: SourceInfo
    paths: dict[str, str]


def read_tables(train: Path, holdout: Path, synthetic: Path, config: RunConfig) -> Tables:
    """Read the tables and infer the schema from `train` (with the config's overrides).

    The holdout and the synthetic table are read through it. Every bad input fails here, before any work.
    """
    real_frame, train_info = read_source(train, config.na_values)
    train_frame, schema = infer_schema(real_frame, config.columns, config.target)
    return Tables(
        train=train_frame,
        holdout=conform_to(read_source(holdout, config.na_values)[0], schema, "holdout"),
        synthetic=conform_to(read_source(synthetic, config.na_values)[0], schema, "synthetic"),
        schema=schema,
        source=train_info,
        paths={"train": str(train), "holdout": str(holdout), "synthetic": str(synthetic)},
    )


def conform_to(frame: pd.DataFrame, schema: Schema, role: str) -> pd.DataFrame:
    """`frame` with the schema's columns read as their kinds (other columns kept, so the GX suite sees them)."""
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise BadInputError(f"the {role} table lacks column(s) of the training table: {', '.join(missing)}")
    try:
        conformed = {spec.name: conform_column(frame[spec.name], spec.kind) for spec in schema}
    except (TypeError, ValueError) as err:
        raise BadInputError(f"the {role} table cannot be read as the training table's schema: {err}") from None
    return frame.assign(**conformed)


def check_evaluation(train: Path, holdout: Path, synthetic: Path, out: Path, config: RunConfig) -> None:
    """Fail on bad input before anything slow starts.

    Check the output folder can take the evaluation and read the three tables.
    """
    check_evaluation_folder(out)
    read_tables(train, holdout, synthetic, config)


def write_evaluation(out: Path, manifest: Manifest, details: Mapping[str, Any], docs_dir: Path | None) -> RunOutcome:
    """Write the evaluation's manifest, report and GX's Data Docs as the folder `out`, whole or not at all."""
    path = publish_evaluation(out, manifest, lambda final: render_report(final, details=details),
                              folders=documents(docs_dir))
    return RunOutcome(path, manifest)


def train_generator(frame: pd.DataFrame, schema: Schema, config: RunConfig,
                    selection: Selection | None = None) -> Generator:
    """The generator the config names fitted on `frame`; with `auto`, the one `selection` chose, with its parameters."""
    name, params = (selection.name, dict(selection.params)) if selection else (config.generator, config.params)
    log.info("training %s on %d rows", name, len(frame))
    return create(name, params, seed=config.seed, device=config.device).fit(frame, schema)


def sample_synthetic(model: Generator, rows: int, rebalance: str | None = None, seed: int = 0) -> pd.DataFrame:
    """`rows` synthetic rows; with `rebalance`, each value of that column gets an equal share.

    The shares are drawn by conditional sampling (native where the model has it), then shuffled.
    """
    if rebalance is None:
        log.info("sampling %d synthetic rows", rows)
        return model.sample(rows)
    values = rebalance_values(model.encoder_.schema_, rebalance)
    log.info("sampling %d synthetic rows balanced over %d values of '%s'", rows, len(values), rebalance)
    shares = np.full(len(values), rows // len(values)) + (np.arange(len(values)) < rows % len(values))
    seeds = np.random.SeedSequence([seed, len(values)]).generate_state(len(values))
    parts = [model.sample(int(count), seed=int(s), conditions={rebalance: value})
             for value, count, s in zip(values, shares, seeds, strict=True)]
    order = np.random.default_rng(seed).permutation(rows)
    return pd.concat(parts, ignore_index=True).iloc[order].reset_index(drop=True)


def rebalance_values(schema: Schema, column: str) -> list[object]:
    """The values a rebalanced release spreads evenly: a categorical's categories or a boolean's two."""
    if column not in schema:
        raise BadInputError(f"cannot rebalance '{column}': no such column")
    spec = schema[column]
    if spec.kind is ColumnKind.BOOLEAN:
        return [False, True]
    if spec.kind is not ColumnKind.CATEGORICAL or not spec.categories:
        raise BadInputError(f"cannot rebalance '{column}': only categorical or boolean columns can be")
    return list(spec.categories)


def describe_generator(model: Generator, config: RunConfig, selection: Selection | None = None) -> GeneratorRecord:
    """The manifest's `generator` entry: the full hyper-parameters used, defaults included, and the DP budget spent.

    The differential-privacy budget is what the fit spent (None without DP). With `auto`, the entry names the
    generator it chose and says how (`selection`: every candidate's trial on the validation split).
    """
    return GeneratorRecord(selection.name if selection else config.generator, asdict(model.config), config.seed,
                           str(model.device_), model.privacy_spent_, selection.to_dict() if selection else None)


def budget_use(config: RunConfig, model: Generator) -> BudgetUse | None:
    """The release against the dataset's privacy budget, when one is configured.

    A fit without DP asks for an unbounded epsilon, so a dataset with a budget refuses it.
    """
    if config.privacy_budget is None:
        return None
    requested = float(model.privacy_spent_["epsilon"]) if model.privacy_spent_ else float("inf")
    return BudgetUse(ledger.spent(config.out, config.dataset), requested, config.privacy_budget)


def release(config: RunConfig, run_id: str, synthetic: pd.DataFrame, manifest: Manifest,
            details: Mapping[str, Any], model: Generator, docs_dir: Path | None) -> RunOutcome:
    """Publish when the gate passed; otherwise keep only the manifest, report and Data Docs under `refused/`.

    A release carries the trained model (shareable form) and GX's Data Docs beside the data, and the spent epsilon
    is recorded in the dataset's ledger.
    """
    def report(final: Manifest) -> str:
        return render_report(final, details=details)

    folders = documents(docs_dir)
    if manifest.passed:
        rows = as_written(synthetic, model.encoder_.schema_)
        path = publish_release(config.out, config.dataset, run_id, rows, manifest, report,
                               model=(MODEL_PATH, lambda path: model.save(path, shareable=True)), folders=folders,
                               on_commit=lambda: spend_budget(config, run_id, model))
    else:
        path = record_refusal(config.out, config.dataset, run_id, manifest, report, folders=folders)
    return RunOutcome(path, manifest)


def documents(docs_dir: Path | None) -> dict[str, Path]:
    """The folders a run's output carries: GX's Data Docs, when they were built."""
    return {EXPECTATIONS_DOCS: docs_dir} if docs_dir is not None and any(docs_dir.iterdir()) else {}


def spend_budget(config: RunConfig, run_id: str, model: Generator) -> None:
    """With the dataset locked: check the budget again and record this release's epsilon.

    The check is repeated because another run may have spent the budget since the gate.
    """
    spent = model.privacy_spent_
    if not spent:
        return
    if config.privacy_budget is not None:
        check = ledger.check_budget(config.out, config.dataset, float(spent["epsilon"]), config.privacy_budget)
        if not check.allowed:
            raise BadInputError(f"privacy budget of {config.dataset} exhausted by a concurrent release "
                                f"(spent {check.spent:g} of {check.budget:g})")
    ledger.record_release(config.out, config.dataset, run_id, float(spent["epsilon"]), float(spent["delta"]))


def score_source(model_path: Path, source: Path) -> pd.DataFrame:
    """The source's rows with a `score` column from a release's model (higher = more typical).

    Low scores flag rows unlike the training data (anomalies).
    """
    if model_path.is_dir():
        manifest = model_path / MANIFEST
        model_path = model_path / MODEL_PATH
        if not model_path.is_file():
            raise BadInputError(f"{manifest.parent} holds no trained model ({MODEL_PATH})")
    model = registry.load(model_path)
    frame, _ = read_source(source)
    schema = model.encoder_.schema_
    missing = [spec.name for spec in schema.learned if spec.name not in frame.columns]
    if missing:
        raise BadInputError(f"{source} lacks the model's column(s): {', '.join(missing)}")
    learned = pd.DataFrame({s.name: conform_column(frame[s.name], s.kind) for s in schema.learned})
    return frame.assign(score=model.score(learned))
