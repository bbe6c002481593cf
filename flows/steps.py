"""The pipeline's steps that are more than one library call, as plain functions a test can call without
Prefect. The flow in `flows/synthesize.py` wraps each of these (and the library's own functions) as a task."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flows.config import RunConfig
from flows.ingest import load_table
from flows.publish import publish_release, record_refusal
from flows.report import render_report
from generators.base import Generator
from generators.registry import create
from generators.schema import Schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """What a run ended in: a published release or a kept refusal, with its manifest."""

    published: bool
    path: Path
    manifest: dict[str, Any]


def preflight(config: RunConfig) -> None:
    """Fail on bad input before anything slow starts: read the source, infer its schema, build the model."""
    load_table(config.source, config.columns, config.target)
    create(config.generator, config.params, seed=config.seed, device=config.device)


def train_generator(frame: pd.DataFrame, schema: Schema, config: RunConfig) -> Generator:
    log.info("training %s on %d rows", config.generator, len(frame))
    return create(config.generator, config.params, seed=config.seed, device=config.device).fit(frame, schema)


def sample_synthetic(model: Generator, rows: int) -> pd.DataFrame:
    log.info("sampling %d synthetic rows", rows)
    return model.sample(rows)


def describe_generator(model: Generator, config: RunConfig) -> dict[str, Any]:
    """The manifest's `generator` entry: the full hyper-parameters used, defaults included."""
    return {"name": config.generator, "params": asdict(model.config), "seed": config.seed, "device": str(model.device_)}


def release(config: RunConfig, run_id: str, synthetic: pd.DataFrame, manifest: dict[str, Any],
            details: dict[str, Any]) -> RunOutcome:
    """Publish when the gate passed; otherwise keep only the manifest and report under `refused/`."""
    def report(final: dict[str, Any]) -> str:
        return render_report(final, details=details)

    if manifest["gate"]["passed"]:
        path = publish_release(config.out, config.dataset, run_id, synthetic, manifest, report)
        return RunOutcome(True, path, manifest)
    path = record_refusal(config.out, config.dataset, run_id, manifest, report)
    return RunOutcome(False, path, manifest)
