"""The `synthesize` flow: source to gated release, one task per step, each one call into library code.

Tasks neither persist results nor cache: the private frames they pass each other live only in memory.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import publish_artifacts
from flows.config import AUTO_GENERATOR, RunConfig
from flows.gate import judge
from flows.ingest import load_table
from flows.manifest import build_manifest, report_details
from flows.publish import new_run_id
from flows.select import choose_generator
from flows.split import split_holdout
from flows.steps import RunOutcome, budget_use, describe_generator, release, sample_synthetic, train_generator
from privacy.audit import audit_privacy
from privacy.distance import PrivacyConfig
from validation.audit import audit_fidelity
from validation.utility import infer_target

P = ParamSpec("P")
R = TypeVar("R")


def private_task(fn: Callable[P, R], name: str) -> Task[P, R]:
    """A task over a library function whose inputs and outputs are never persisted nor cached."""
    return task(name=name, persist_result=False, cache_policy=NO_CACHE)(fn)


ingest = private_task(load_table, "ingest")
split = private_task(split_holdout, "split")
select = private_task(choose_generator, "select")
train = private_task(train_generator, "train")
sample = private_task(sample_synthetic, "sample")
validate = private_task(audit_fidelity, "validate")
check_privacy = private_task(audit_privacy, "privacy")
gate = private_task(judge, "gate")
report_artifacts = private_task(publish_artifacts, "artifacts")
publish = private_task(release, "publish")


@flow(name="synthesize", persist_result=False)
def synthesize(config: RunConfig) -> RunOutcome:
    """Ingest, split, (with `auto`: choose the generator on the training part), train, sample, validate,
    check privacy, gate, then publish or refuse."""
    run_id, started = new_run_id(), time.perf_counter()
    timings: dict[str, float] = {}
    table = ingest(config.source, config.columns, config.target, config.na_values)
    train_part, holdout = split(table.frame, config.holdout, config.seed)
    selection = select(train_part, table.schema, config) if config.generator == AUTO_GENERATOR else None
    with _timed(timings, "fit_s"):
        model = train(train_part, table.schema, config, selection)
    with _timed(timings, "sample_s"):
        synthetic = sample(model, config.rows or len(table.frame), config.rebalance, config.seed)
    with tempfile.TemporaryDirectory(prefix="synthgate-docs-") as docs:
        with _timed(timings, "validate_s"):
            fidelity = validate(train_part, holdout, synthetic, table.schema, target=infer_target(table.schema),
                                docs_dir=Path(docs), seed=config.seed, alpha=config.gate.alpha)
        with _timed(timings, "privacy_s"):
            privacy = check_privacy(train_part, holdout, synthetic, table.schema, seed=config.seed,
                                    config=PrivacyConfig(alpha=config.gate.alpha))
        verdict = gate(fidelity, privacy, config.gate.thresholds(), budget_use(config, model), config.rebalance)
        timings["total_s"] = time.perf_counter() - started
        manifest = build_manifest(
            config=config,
            table=table,
            generator=describe_generator(model, config, selection),
            fidelity=fidelity,
            privacy=privacy,
            verdict=verdict,
            timings=timings,
            split={"train_rows": len(train_part), "holdout_rows": len(holdout)},
        )
        report_artifacts(manifest)
        return publish(config, run_id, synthetic, manifest, report_details(fidelity), model, Path(docs))


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - start
