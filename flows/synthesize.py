"""The `synthesize` flow: source to gated release, one task per step (`flows.tasks`).

Each task is one call into library code. A run whose rows and config made the current release stops after the
ingest (`unchanged`); each run ends in a Prefect event (`flows.release.events`).

With `config.train_deployment`, the final fit runs on that deployment's work pool (`flows.handoff`); with `auto`,
the choice's trials still run here, on their small validation split, and only the chosen model's fit is handed
off. A model cached for the same training rows and config is reused before any fit or hand-off (`flows.cache`).
Drift is measured against the release `CURRENT` names when the run starts (`flows.release.drift`).

Any table size runs in bounded memory: the source is read once in chunks into a bounded training sample and holdout
sample (`flows.sources.staging`), the synthetic rows are sampled in seeded shards written as Parquet parts
(`flows.shards`, fanned out on Dask with `config.dask`), the checks read seeded samples of at most
`config.check_rows` rows of each table, and exact copies are counted on every row.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from prefect import Task, flow, unmapped

from flows.config import AUTO_GENERATOR, RunConfig
from flows.release.drift import DriftMeasure
from flows.release.events import announce
from flows.release.manifest import Sampling, Split, build_manifest, report_details
from flows.release.publish import new_run_id, provenance, read_current
from flows.shards import CountedPart, plan_shards
from flows.sources.staging import STAGING, Staged
from flows.steps import RunOutcome, budget_use, describe_generator, rows_to_check, run_fingerprint, run_folder
from flows.tasks import (
    assemble,
    check_privacy,
    drift,
    gate,
    plan_ingest,
    publish,
    report_artifacts,
    sample_shard,
    select,
    stage_part,
    train,
    unchanged,
    validate,
)
from generators.base import Generator
from generators.tabular.schema import infer_target
from privacy.distance import CopyCounts, PrivacyConfig

R = TypeVar("R")


@flow(name="synthesize", persist_result=False)
def synthesize(config: RunConfig) -> RunOutcome:
    """Ingest, split, train, sample, validate, check privacy, gate, then publish or refuse.

    With `auto`, the generator is chosen on the training part between the split and the training. When the current
    release was made from the same rows and config, nothing is written and the outcome is `unchanged`. The run's
    private working files (staged rows, shards) live under its folder in `.runs/`, removed however it ends.
    """
    run_id, started = new_run_id(), time.perf_counter()
    try:
        return _synthesize(config, run_id, started)
    finally:
        shutil.rmtree(run_folder(config, run_id), ignore_errors=True)


def _synthesize(config: RunConfig, run_id: str, started: float) -> RunOutcome:
    timings: dict[str, float] = {}
    previous = read_current(config.out, config.dataset)  # the release this run's drift is measured against
    staged = _ingest(config, run_id)
    timings["ingest_s"] = staged.read_s
    fingerprint = run_fingerprint(config, staged.source)
    current = unchanged(config, fingerprint)
    if current is not None:
        announce(current.manifest, unchanged=True)
        return current
    schema = staged.schema
    selection = select(staged.train, schema, config) if config.generator == AUTO_GENERATOR else None
    with _timed(timings, "fit_s"):
        trained = train(staged.train, schema, config, run_id, selection)
    model = trained.model
    record = describe_generator(trained, config, selection)
    with _timed(timings, "sample_s"):
        parts = _sample_shards(config, run_id, model, config.rows or staged.rows,
                               provenance(run_id, record, staged.source.sha256), staged.copies)
    checked = rows_to_check(staged, parts, config)
    # Drift compares whole tables (bins and every row's hash): measured when the run holds its whole table.
    moved = (drift(config.out, config.dataset, previous, pd.concat([staged.train, staged.holdout]), checked.synthetic,
                   schema) if staged.whole else DriftMeasure(None, None))
    with tempfile.TemporaryDirectory(prefix="synthgate-docs-") as docs:
        with _timed(timings, "validate_s"):
            fidelity = validate(checked.train, checked.holdout, checked.synthetic, schema, target=infer_target(schema),
                                docs_dir=Path(docs), seed=config.seed, alpha=config.gate.alpha)
        with _timed(timings, "privacy_s"):
            privacy = check_privacy(checked.train, checked.holdout, checked.synthetic, schema, seed=config.seed,
                                    config=PrivacyConfig(alpha=config.gate.alpha), copies=checked.copies,
                                    every_synthetic=checked.every_synthetic)
        verdict = gate(fidelity, privacy, config.gate.thresholds(), budget_use(config, model), config.rebalance)
        timings["total_s"] = time.perf_counter() - started
        manifest = build_manifest(
            dataset=config.dataset,
            source=staged.source,
            schema=schema,
            split=Split(staged.train_rows, staged.holdout_rows, config.seed, config.holdout,
                        fitted_rows=len(staged.train), checked_rows=config.check_rows),
            fidelity=fidelity,
            privacy=privacy,
            verdict=verdict,
            timings=timings,
            generator=record,
            sampling=Sampling(config.rebalance, shards=len(parts), shard_rows=config.shard_rows),
            fingerprint=fingerprint,
            drift=moved.drift,
        )
        report_artifacts(manifest)
        outcome = publish(config, run_id, [part.path for part in parts], manifest, report_details(fidelity), model,
                          Path(docs), moved.profile)
    announce(outcome.manifest)
    return outcome


def _ingest(config: RunConfig, run_id: str) -> Staged:
    """The source read once, part by part (fanned out with `config.dask`), into what the run works on."""
    plan = plan_ingest(config.source, config.na_values, config.columns, config.target, config.public_domain,
                       config.limits)
    folder = run_folder(config, run_id) / STAGING
    parts = _fan_out(stage_part, "index", plan.parts, {"ingest": plan, "folder": folder}, config.dask)
    return assemble(plan, parts, holdout=config.holdout, seed=config.seed, folder=folder)


def _sample_shards(config: RunConfig, run_id: str, model: Generator, rows: int, metadata: dict[bytes, bytes],
                   copies: CopyCounts) -> list[CountedPart]:
    """Every shard of the synthetic rows, sampled and written under the run's folder, with its copies counted."""
    shared = {"model": model, "folder": run_folder(config, run_id) / "synthetic", "metadata": metadata,
              "rebalance": config.rebalance}
    return _fan_out(sample_shard, "shard", plan_shards(rows, config.shard_rows, config.seed), shared, config.dask,
                    then=lambda shard: shard.counted(copies))


def _fan_out(task: Task[..., R], over: str, items: Sequence[Any], shared: dict[str, Any], dask: str | None,
             then: Callable[[R], Any] = lambda result: result) -> list[Any]:
    """`task` once per item (passed as `over`), with the `shared` arguments; `then` of each result, in order.

    `then` runs on each result as it is taken, so a big result (a shard's keys) is let go before the next.

    With `dask` (a scheduler's address) the runs fan out over its workers through prefect-dask, and the workers
    must see the run's folder (one machine, or a shared file system); otherwise they run here one after another,
    so memory holds one at a time.
    """
    if dask is None:
        return [then(task(**{over: item}, **shared)) for item in items]
    from prefect_dask import DaskTaskRunner  # only a run on Dask needs Dask's client

    with DaskTaskRunner(address=dask) as runner:
        futures = runner.map(task, {over: list(items), **{key: unmapped(value) for key, value in shared.items()}})
        return [then(future.result()) for future in futures]


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - start
