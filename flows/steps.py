"""The pipeline's steps that are more than one library call, as plain functions a test can call without Prefect.

The flows (`flows/synthesize.py`, `flows/evaluate.py`) wrap each of these, and the library's own functions, as a
task (`flows/tasks.py`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from flows.cache import ModelCache, digest, model_key, rows_digest
from flows.config import AUTO_GENERATOR, RunConfig
from flows.gate import BudgetUse
from flows.release import ledger
from flows.release.drift import SourceProfile, write_profile
from flows.release.manifest import EXPECTATIONS_DOCS, GeneratorRecord, Manifest
from flows.release.publish import (
    MANIFEST,
    RELEASES,
    check_evaluation_folder,
    check_writable,
    dataset_folder,
    publish_evaluation,
    publish_release,
    read_current,
    record_refusal,
)
from flows.release.report import render_report
from flows.select import CANDIDATES, Candidate, Selection, Trial, choose_generator
from flows.shards import CountedPart, read_parts, rebalance_values, sample_parts
from flows.sources import SourceInfo, read_source
from flows.sources.staging import Staged, plan_ingest
from flows.split import Stream, bounded_rows, stream_seed
from generators import registry
from generators.base import Generator
from generators.registry import create
from generators.tabular.errors import BadInputError
from generators.tabular.inference import as_written, conform_column, infer_schema
from generators.tabular.schema import Schema
from privacy.distance import CopyExcess

MODEL_PATH = "model/generator.pt"
RUNS = ".runs"  # OUT/<dataset>/.runs/<run_id>/: a run's staged rows, hand-off and shards, only while it runs
# What does not change a run's output: where it is written, how it is scheduled and where it trains, how many
# releases are kept, and whether a cached model may be reused (a reused model is the one a fit would make).
_NOT_FINGERPRINTED = frozenset({"out", "retrain", "schedule", "train_deployment", "keep"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """Where a run left its manifest (a published release, a kept refusal, an evaluation's folder), and the manifest.

    `unchanged`: the run found the current release made from the same rows and config and wrote nothing; `path`
    and `manifest` are that release's.
    """

    path: Path
    manifest: Manifest
    unchanged: bool = False

    @property
    def passed(self) -> bool:
        """Whether the gate passed, as the manifest records it: the CLI's exit code follows it."""
        return self.manifest.passed


def preflight(config: RunConfig) -> None:
    """Fail on bad input before anything slow starts.

    Check the output folder can take a release, plan the source's reading and infer its schema on its first rows
    (a chunk: never the whole table), build the model (with `auto`, every candidate).
    """
    check_writable(config.out, config.dataset)
    ingest = plan_ingest(config.source, config.na_values, config.columns, config.target, config.public_domain,
                         config.limits)
    if config.rebalance is not None:
        rebalance_values(ingest.inference.schema(), config.rebalance)
    candidates = CANDIDATES if config.generator == AUTO_GENERATOR else (Candidate(config.generator, config.params),)
    for candidate in candidates:
        create(candidate.name, dict(candidate.params), seed=config.seed, device=config.device)


@dataclass(frozen=True)
class CheckedRows:
    """What the checks read of a run's tables: bounded seeded samples, plus what is judged on every row.

    `copies`: exact copies of training rows counted on every synthetic row against every training row;
    `every_synthetic`: the whole synthetic table, part by part, when `synthetic` is only a sample of it (the outlier
    check looks for reproduced outliers in every row), else None.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    synthetic: pd.DataFrame
    copies: CopyExcess
    every_synthetic: Callable[[], Iterable[pd.DataFrame]] | None


def rows_to_check(staged: Staged, parts: Sequence[CountedPart], config: RunConfig) -> CheckedRows:
    """The checks' rows: at most `config.check_rows` of each table, seeded, and the copies counted on every row."""
    schema, paths = staged.schema, [part.path for part in parts]
    total = sum(part.rows for part in parts)
    synthetic = sample_parts(paths, config.check_rows, config.seed, schema)
    return CheckedRows(
        train=bounded_rows(staged.train, config.check_rows, stream_seed(config.seed, Stream.CHECKED_TRAIN)),
        holdout=staged.holdout,
        synthetic=synthetic,
        copies=staged.copies.excess(sum(part.copies for part in parts), total, config.gate.alpha),
        every_synthetic=partial(read_parts, paths, schema) if len(synthetic) < total else None,
    )


def run_folder(config: RunConfig, run_id: str) -> Path:
    """`OUT/<dataset>/.runs/<run_id>/`: a run's private working files (staged rows, shards), removed when it ends."""
    return dataset_folder(config.out, config.dataset) / RUNS / run_id


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
    train_frame, schema = infer_schema(real_frame, config.columns, config.target,
                                         public_domain=config.public_domain)
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


def run_fingerprint(config: RunConfig, source: SourceInfo) -> str:
    """What decides a run's output: the source's sha256, the run's config and the synthgate version, as a sha256.

    The settings that do not change the rows published are left out (`_NOT_FINGERPRINTED`), so a scheduled rerun
    that only reuses a cached model, or trains elsewhere, still finds its release unchanged.
    """
    return digest(source=source.sha256, config=config.model_dump(mode="json", exclude=set(_NOT_FINGERPRINTED)))


def unchanged_release(config: RunConfig, fingerprint: str) -> RunOutcome | None:
    """The current release, when its manifest has `fingerprint`: the run would publish the same rows again.

    Same rows, same config and the same version make the same release (every step is seeded), so a scheduled run
    on data that did not change stops here. `retrain` does not bypass this: a fit of the same rows with the same
    seed is the model the release already carries. A current manifest that cannot be read is not a match: the run
    goes on and publishes, losing nothing.
    """
    current = read_current(config.out, config.dataset)
    if current is None:
        return None
    path = dataset_folder(config.out, config.dataset) / RELEASES / current
    try:
        manifest = Manifest.from_json((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as err:
        log.warning("cannot read the current release's manifest %s (%s); running in full", path / MANIFEST, err)
        return None
    if manifest.fingerprint != fingerprint:
        return None
    log.info("%s release %s already has these rows and this config: nothing to publish", config.dataset, current)
    return RunOutcome(path, manifest, unchanged=True)


def select_generator(frame: pd.DataFrame, schema: Schema, config: RunConfig) -> Selection:
    """`auto`'s choice on these training rows (`choose_generator`), or the one an earlier run cached for them.

    The cache key holds what the trials depend on: the rows, the schema, the seed, the device and the gate's
    thresholds (each trial is judged by them). `config.retrain` chooses again and replaces the cached choice.
    """
    cache = ModelCache(config.out, config.dataset)
    key = digest(rows=rows_digest(frame), schema=schema.to_dict(), generator=AUTO_GENERATOR, seed=config.seed,
                 device=config.device, gate=config.gate.model_dump())
    cached = None if config.retrain else cache.load_record(key)
    if cached is not None:
        try:
            selection = selection_from_dict(cached)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            log.warning("ignoring a malformed cached selection (%s); choosing again", err)
        else:
            log.info("reusing the cached choice of %s for these rows", selection.name)
            return selection
    selection = choose_generator(frame, schema, config)
    cache.store_record(key, selection.to_dict())
    return selection


def selection_from_dict(record: Mapping[str, Any]) -> Selection:
    """The `Selection` whose `to_dict()` is `record` (as the model cache keeps it)."""
    trials = tuple(Trial(t["name"], t["params"], t["fit_s"], float("nan") if t["quality"] is None else t["quality"],
                         t["passed"], tuple(t["failed"])) for t in record["candidates"])
    chosen = record["chosen"]
    return Selection(chosen["name"], chosen["params"], trials, record["fit_rows"], record["validation_rows"],
                     record["seconds"])


@dataclass(frozen=True)
class Trained:
    """A fitted model, its key in the dataset's model cache, and whether it was reused from there (no fit)."""

    model: Generator
    cache_key: str
    reused: bool


def train_generator(frame: pd.DataFrame, schema: Schema, config: RunConfig, run_id: str,
                    selection: Selection | None = None) -> Trained:
    """The generator the config names fitted on `frame`; with `auto`, the one `selection` chose, with its parameters.

    A model cached for the same rows, schema, generator, full parameters, seed and device is loaded instead of
    fitted, unless `config.retrain`. A fit runs in this process or, with `config.train_deployment`, on that
    deployment's work pool (`fit_remotely`); either way the model is then cached. The cache is consulted first, so a
    reused model never starts a hand-off.
    """
    name, params = (selection.name, dict(selection.params)) if selection else (config.generator, config.params)
    unfitted = create(name, params, seed=config.seed, device=config.device)
    key = model_key(rows_digest(frame), schema, name, asdict(unfitted.config), config.seed, config.device)
    cache = ModelCache(config.out, config.dataset)
    cached = None if config.retrain else cache.load_model(key)
    if cached is not None:
        log.info("reusing the %s model cached for these rows and parameters", name)
        return Trained(cached, key, reused=True)
    if config.train_deployment is not None:
        model = fit_remotely(config.train_deployment, unfitted, frame, schema,
                             run_folder(config, run_id))
    else:
        log.info("training %s on %d rows", name, len(frame))
        model = unfitted.fit(frame, schema)
    cache.store_model(key, model)
    return Trained(model, key, reused=False)


def fit_remotely(deployment: str, unfitted: Generator, frame: pd.DataFrame, schema: Schema, run_dir: Path
                 ) -> Generator:
    """`unfitted` fitted on `frame` by a run of the `train` deployment on its work pool, loaded here.

    The rows go to the pool through `run_dir`, which is removed whatever happens: it holds private training rows.
    The hand-off is imported only here, since only a run with a train deployment needs Prefect's deployment client.
    """
    from flows.handoff import train_remotely

    try:
        path = train_remotely(deployment, frame, schema, unfitted.name, asdict(unfitted.config), unfitted.seed,
                              unfitted.device, run_dir)
        return registry.load(path)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def describe_generator(trained: Trained, config: RunConfig, selection: Selection | None = None) -> GeneratorRecord:
    """The manifest's `generator` entry: the full hyper-parameters used, defaults included, and the DP budget spent.

    The differential-privacy budget is what the fit spent (None without DP). With `auto`, the entry names the
    generator it chose and says how (`selection`: every candidate's trial on the validation split). The model's
    cache key, and whether it was reused from the cache, say which fit made the rows.
    """
    model = trained.model
    return GeneratorRecord(selection.name if selection else config.generator, asdict(model.config), config.seed,
                           str(model.device_), model.privacy_spent_, selection.to_dict() if selection else None,
                           cache_key=trained.cache_key, reused=trained.reused)


def budget_use(config: RunConfig, model: Generator) -> BudgetUse | None:
    """The release against the dataset's privacy budget, when one is configured.

    A fit without DP asks for an unbounded epsilon, so a dataset with a budget refuses it.
    """
    if config.privacy_budget is None:
        return None
    requested = float(model.privacy_spent_["epsilon"]) if model.privacy_spent_ else float("inf")
    return BudgetUse(ledger.spent(config.out, config.dataset), requested, config.privacy_budget)


def release(config: RunConfig, run_id: str, synthetic: pd.DataFrame | Sequence[Path], manifest: Manifest,
            details: Mapping[str, Any], model: Generator, docs_dir: Path | None,
            profile: SourceProfile | None = None) -> RunOutcome:
    """Publish when the gate passed; otherwise keep only the manifest, report and Data Docs under `refused/`.

    `synthetic`: the rows, or the parts the sharded sampling wrote (`flows.shards`). A release carries the trained
    model (shareable form; none for a model made of training values, `cart`) and
    GX's Data Docs beside the data, and the spent epsilon is recorded in the dataset's ledger. `profile`, the
    source's private profile, is kept beside the releases for the next run's drift. The outcome's manifest carries
    the release's id (or the refused run's).
    """
    def report(final: Manifest) -> str:
        return render_report(final, details=details)

    folders = documents(docs_dir)
    if manifest.passed:
        rows = as_written(synthetic, model.encoder_.schema_) if isinstance(synthetic, pd.DataFrame) else synthetic
        path = publish_release(config.out, config.dataset, run_id, rows, manifest, report,
                               model=None if model.holds_training_values
                               else (MODEL_PATH, lambda path: model.save(path, shareable=True)), folders=folders,
                               on_commit=lambda: spend_budget(config, run_id, model), keep=config.keep,
                               profile=None if profile is None else lambda path: write_profile(path, profile))
        return RunOutcome(path, manifest.released(run_id, config.dataset))
    path = record_refusal(config.out, config.dataset, run_id, manifest, report, folders=folders, keep=config.keep)
    return RunOutcome(path, manifest.refused(run_id, config.dataset))


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
            raise BadInputError(f"{manifest.parent} holds no trained model ({MODEL_PATH}): a release of a model "
                                "whose state is training values (cart) never carries it")
    model = registry.load(model_path)
    frame, _ = read_source(source)
    schema = model.encoder_.schema_
    missing = [spec.name for spec in schema.learned if spec.name not in frame.columns]
    if missing:
        raise BadInputError(f"{source} lacks the model's column(s): {', '.join(missing)}")
    learned = pd.DataFrame({s.name: conform_column(frame[s.name], s.kind) for s in schema.learned})
    return frame.assign(score=model.score(learned))
