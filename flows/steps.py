"""The pipeline's steps that are more than one library call, as plain functions a test can call without
Prefect. The flow in `flows/synthesize.py` wraps each of these (and the library's own functions) as a task."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows import ledger
from flows.config import AUTO_GENERATOR, RunConfig
from flows.gate import BudgetUse
from flows.ingest import load_table, read_source
from flows.manifest import EXPECTATIONS_DOCS
from flows.publish import MANIFEST, check_writable, publish_release, record_refusal
from flows.report import render_report
from flows.select import CANDIDATES, Candidate, Selection
from generators import registry
from generators.base import Generator
from generators.registry import create
from generators.tabular.errors import BadInputError
from generators.tabular.inference import as_written, conform_column
from generators.tabular.schema import ColumnKind, Schema

MODEL_PATH = "model/generator.pt"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """What a run ended in: a published release or a kept refusal, with its manifest."""

    published: bool
    path: Path
    manifest: dict[str, Any]


def preflight(config: RunConfig) -> None:
    """Fail on bad input before anything slow starts: check the output folder can take a release, read the
    source, infer its schema, build the model (with `auto`, every candidate)."""
    check_writable(config.out, config.dataset)
    table = load_table(config.source, config.columns, config.target, config.na_values)
    if config.rebalance is not None:
        rebalance_values(table.schema, config.rebalance)
    candidates = CANDIDATES if config.generator == AUTO_GENERATOR else (Candidate(config.generator, config.params),)
    for candidate in candidates:
        create(candidate.name, dict(candidate.params), seed=config.seed, device=config.device)


def train_generator(frame: pd.DataFrame, schema: Schema, config: RunConfig,
                    selection: Selection | None = None) -> Generator:
    """The generator the config names fitted on `frame`; with `auto`, the one `selection` chose, with its
    parameters."""
    name, params = (selection.name, dict(selection.params)) if selection else (config.generator, config.params)
    log.info("training %s on %d rows", name, len(frame))
    return create(name, params, seed=config.seed, device=config.device).fit(frame, schema)


def sample_synthetic(model: Generator, rows: int, rebalance: str | None = None, seed: int = 0) -> pd.DataFrame:
    """`rows` synthetic rows; with `rebalance`, each value of that column gets an equal share, drawn by
    conditional sampling (native where the model has it), then shuffled."""
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


def describe_generator(model: Generator, config: RunConfig, selection: Selection | None = None) -> dict[str, Any]:
    """The manifest's `generator` entry: the full hyper-parameters used, defaults included, and the
    differential-privacy budget the fit spent (None without DP); with `auto`, the generator it chose and
    how (`selection`: every candidate's trial on the validation split)."""
    described = {"name": selection.name if selection else config.generator, "params": asdict(model.config),
                 "seed": config.seed, "device": str(model.device_), "differential_privacy": model.privacy_spent_}
    return described | ({"selection": selection.to_dict()} if selection else {})


def budget_use(config: RunConfig, model: Generator) -> BudgetUse | None:
    """The release against the dataset's privacy budget, when one is configured; a fit without DP asks
    for an unbounded epsilon, so a dataset with a budget refuses it."""
    if config.privacy_budget is None:
        return None
    requested = float(model.privacy_spent_["epsilon"]) if model.privacy_spent_ else float("inf")
    return BudgetUse(ledger.spent(config.out, config.dataset), requested, config.privacy_budget)


def release(config: RunConfig, run_id: str, synthetic: pd.DataFrame, manifest: dict[str, Any],
            details: dict[str, Any], model: Generator, docs_dir: Path | None) -> RunOutcome:
    """Publish when the gate passed, with the trained model (shareable form) and GX's Data Docs beside the
    data, and the spent epsilon recorded in the dataset's ledger; otherwise keep only the manifest, report
    and Data Docs under `refused/`."""
    def report(final: dict[str, Any]) -> str:
        return render_report(final, details=details)

    folders = {EXPECTATIONS_DOCS: docs_dir} if docs_dir is not None and any(docs_dir.iterdir()) else {}
    if manifest["gate"]["passed"]:
        attachments = {"model": (MODEL_PATH, lambda path: model.save(path, shareable=True))}
        rows = as_written(synthetic, model.encoder_.schema_)
        path = publish_release(config.out, config.dataset, run_id, rows, manifest, report,
                               attachments=attachments, folders=folders,
                               on_commit=lambda: spend_budget(config, run_id, model))
        return RunOutcome(True, path, manifest)
    path = record_refusal(config.out, config.dataset, run_id, manifest, report, folders=folders)
    return RunOutcome(False, path, manifest)


def spend_budget(config: RunConfig, run_id: str, model: Generator) -> None:
    """With the dataset locked: check the budget again (another run may have spent it since the gate) and
    record this release's epsilon."""
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
    """The source's rows with a `score` column from a release's model (higher = more typical): low
    scores flag rows unlike the training data (anomalies)."""
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
