"""`synthgate evaluate`: the whole gate (fidelity and privacy) on any three tables, such as synthetic data
made by another tool, with the same checks, thresholds, manifest and report as a release.

The schema is inferred from the training table (with the config's overrides); the holdout and the
synthetic table are read through it. Nothing is published: the manifest, the report and GX's Data Docs
are written to the output folder, each file replaced whole.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flows.config import RunConfig
from flows.gate import Verdict, judge
from flows.ingest import SourceInfo, read_source
from flows.manifest import EXPECTATIONS_DOCS, evidence, report_details, versions
from flows.publish import MANIFEST, REPORT, jsonable, replace_file
from flows.report import render_report
from generators.tabular.errors import BadInputError
from generators.tabular.inference import conform_column, infer_schema
from generators.tabular.schema import Schema
from privacy.audit import audit_privacy
from privacy.distance import PrivacyConfig
from validation.audit import audit_fidelity
from validation.utility import infer_target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """The verdict on three tables and where its manifest and report were written."""

    verdict: Verdict
    out: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Tables:
    """The three tables read through the training table's schema, with where they came from."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    synthetic: pd.DataFrame
    schema: Schema
    source: SourceInfo
    paths: dict[str, str]


def read_tables(train: Path, holdout: Path, synthetic: Path, config: RunConfig) -> Tables:
    """Read the tables and infer the schema from `train`: every bad input fails here, before any work."""
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


def evaluate_tables(tables: Tables, out: Path, config: RunConfig, *, documents: bool = True) -> Evaluation:
    """Judge the synthetic table against the train rows (those it was made from) and the holdout rows (real
    rows it never saw). `documents=False` leaves out the Data Docs and the report's figures (the same
    verdict, for a benchmark that runs thousands of evaluations)."""
    started = time.perf_counter()
    train_frame, holdout_frame, synthetic_frame, schema = tables.train, tables.holdout, tables.synthetic, tables.schema
    target = infer_target(schema)
    with tempfile.TemporaryDirectory(prefix="synthgate-docs-") as docs:
        docs_dir = Path(docs)
        fidelity = audit_fidelity(train_frame, holdout_frame, synthetic_frame, schema, target=target,
                                  docs_dir=docs_dir if documents else None, seed=config.seed,
                                  alpha=config.gate.alpha, figures=documents)
        privacy = audit_privacy(train_frame, holdout_frame, synthetic_frame, schema, seed=config.seed,
                                config=PrivacyConfig(alpha=config.gate.alpha))
        verdict = judge(fidelity, privacy, config.gate.thresholds())
        manifest = {
            "evaluation": tables.paths,
            "dataset": tables.source.uri,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": tables.source.to_dict(),
            "rows": len(synthetic_frame),
            "split": {"train_rows": len(train_frame), "holdout_rows": len(holdout_frame), "seed": config.seed},
            **evidence(fidelity, privacy, verdict, {"total_s": time.perf_counter() - started}),
            "schema": schema.to_dict(),
            "versions": versions(),
        }
        write_evaluation(out, manifest, report_details(fidelity), docs_dir)
    log.info("evaluation %s: %s", "passed" if verdict.passed else "refused", out)
    return Evaluation(verdict, out, manifest)


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


def write_evaluation(out: Path, manifest: dict[str, Any], details: dict[str, Any], docs_dir: Path) -> None:
    """Write the manifest, the report and the Data Docs into `out`, each replacing its old version whole."""
    out.mkdir(parents=True, exist_ok=True)
    plain = jsonable(manifest)
    replace_file(out / MANIFEST, json.dumps(plain, indent=2, allow_nan=False) + "\n")
    if any(docs_dir.iterdir()):
        fresh = Path(tempfile.mkdtemp(prefix=f".{EXPECTATIONS_DOCS}.", dir=out))
        shutil.copytree(docs_dir, fresh, dirs_exist_ok=True)
        shutil.rmtree(out / EXPECTATIONS_DOCS, ignore_errors=True)
        os.rename(fresh, out / EXPECTATIONS_DOCS)
    replace_file(out / REPORT, render_report(plain, details=details))
