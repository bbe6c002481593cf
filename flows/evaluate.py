"""The `evaluate` flow (`synthgate evaluate`): the whole gate (fidelity and privacy) on any three tables.

The synthetic table may come from another tool; it gets the same checks, thresholds, manifest and report as a
release, one task per step (`flows.tasks`).

The schema is inferred from the training table (with the config's overrides); the holdout and the
synthetic table are read through it. Nothing is released: the manifest, the report and GX's Data Docs are
published as the output folder, replacing the previous evaluation there whole (`flows.release.publish`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from prefect import flow

from flows.config import RunConfig
from flows.release.manifest import Split, build_manifest, report_details
from flows.steps import RunOutcome
from flows.tasks import check_privacy, gate, publish_evaluation, read, report_artifacts, validate
from generators.tabular.schema import infer_target
from privacy.distance import PrivacyConfig


@flow(name="evaluate", persist_result=False)
def evaluate(train: Path, holdout: Path, synthetic: Path, out: Path, config: RunConfig) -> RunOutcome:
    """Read the three tables, validate, check privacy, gate, then publish the evaluation's folder.

    `train`: the rows the synthetic table was made from; `holdout`: real rows it never saw.
    """
    started = time.perf_counter()
    tables = read(train, holdout, synthetic, config)
    with tempfile.TemporaryDirectory(prefix="synthgate-docs-") as docs:
        fidelity = validate(tables.train, tables.holdout, tables.synthetic, tables.schema,
                            target=infer_target(tables.schema), docs_dir=Path(docs), seed=config.seed,
                            alpha=config.gate.alpha)
        privacy = check_privacy(tables.train, tables.holdout, tables.synthetic, tables.schema, seed=config.seed,
                                config=PrivacyConfig(alpha=config.gate.alpha))
        verdict = gate(fidelity, privacy, config.gate.thresholds())
        manifest = build_manifest(
            dataset=tables.source.uri,
            source=tables.source,
            schema=tables.schema,
            split=Split(len(tables.train), len(tables.holdout), config.seed),
            fidelity=fidelity,
            privacy=privacy,
            verdict=verdict,
            timings={"total_s": time.perf_counter() - started},
            evaluation=tables.paths,
            rows=len(tables.synthetic),
        )
        report_artifacts(manifest)
        return publish_evaluation(out, manifest, report_details(fidelity), Path(docs))
