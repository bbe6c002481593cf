"""The `synthesize` flow: source to gated release, one task per step (`flows.tasks`).

Each task is one call into library code. A run whose rows and config made the current release stops after the
ingest (`unchanged`); each run ends in a Prefect event (`flows.release.events`).

With `config.train_deployment`, the final fit runs on that deployment's work pool (`flows.handoff`); with `auto`,
the choice's trials still run here, on their small validation split, and only the chosen model's fit is handed
off. A model cached for the same training rows and config is reused before any fit or hand-off (`flows.cache`).
Drift is measured against the release `CURRENT` names when the run starts (`flows.release.drift`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import flow

from flows.config import AUTO_GENERATOR, RunConfig
from flows.release.events import announce
from flows.release.manifest import Sampling, Split, build_manifest, report_details
from flows.release.publish import new_run_id, read_current
from flows.steps import RunOutcome, budget_use, describe_generator, run_fingerprint
from flows.tasks import (
    check_privacy,
    drift,
    gate,
    ingest,
    publish,
    report_artifacts,
    sample,
    select,
    split,
    train,
    unchanged,
    validate,
)
from privacy.distance import PrivacyConfig
from validation.utility import infer_target


@flow(name="synthesize", persist_result=False)
def synthesize(config: RunConfig) -> RunOutcome:
    """Ingest, split, train, sample, validate, check privacy, gate, then publish or refuse.

    With `auto`, the generator is chosen on the training part between the split and the training. When the current
    release was made from the same rows and config, nothing is written and the outcome is `unchanged`.
    """
    run_id, started = new_run_id(), time.perf_counter()
    timings: dict[str, float] = {}
    previous = read_current(config.out, config.dataset)  # the release this run's drift is measured against
    table = ingest(config.source, config.columns, config.target, config.na_values, config.public_domain)
    fingerprint = run_fingerprint(config, table.source)
    current = unchanged(config, fingerprint)
    if current is not None:
        announce(current.manifest, unchanged=True)
        return current
    train_part, holdout = split(table.frame, config.holdout, config.seed)
    selection = select(train_part, table.schema, config) if config.generator == AUTO_GENERATOR else None
    with _timed(timings, "fit_s"):
        trained = train(train_part, table.schema, config, run_id, selection)
    model = trained.model
    with _timed(timings, "sample_s"):
        synthetic = sample(model, config.rows or len(table.frame), config.rebalance, config.seed)
    moved = drift(config.out, config.dataset, previous, table.frame, synthetic, table.schema)
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
            dataset=config.dataset,
            source=table.source,
            schema=table.schema,
            split=Split(len(train_part), len(holdout), config.seed, config.holdout),
            fidelity=fidelity,
            privacy=privacy,
            verdict=verdict,
            timings=timings,
            generator=describe_generator(trained, config, selection),
            sampling=Sampling(config.rebalance),
            fingerprint=fingerprint,
            drift=moved.drift,
        )
        report_artifacts(manifest)
        outcome = publish(config, run_id, synthetic, manifest, report_details(fidelity), model, Path(docs),
                          moved.profile)
    announce(outcome.manifest)
    return outcome


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - start
