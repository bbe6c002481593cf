"""The whole privacy evidence for one synthetic table, in one call: what the gate judges and the report shows.

Three independent lines of evidence, because each catches leaks the others miss: PII lookup (a real
identifier in the output), distances on the full tables (copies, near-copies, isolated records,
membership inference) and the anonymeter-style attacks (singling out, linkage, attribute inference,
each against a control set of real rows never trained on).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from generators.tabular.schema import Schema
from privacy.attacks import AttacksResult, evaluate_attacks
from privacy.distance import CopyExcess, PrivacyConfig, PrivacyResult, evaluate_privacy
from privacy.pii import PiiLeaks, find_pii_leaks

logger = logging.getLogger(__name__)
_DEFAULTS = PrivacyConfig()


@dataclass(frozen=True)
class PrivacyAudit:
    """The privacy evidence for one synthetic table, one field per line of evidence.

    `distances`: DCR, exact copies, NNDR, column subsets, membership inference, isolated records;
    `attacks`: singling-out, linkability and inference risks; `pii`: real identifiers found in the output.
    """

    distances: PrivacyResult
    attacks: AttacksResult
    pii: PiiLeaks
    timings: dict[str, float]


def audit_privacy(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    seed: int = 0,
    config: PrivacyConfig = _DEFAULTS,
    copies: CopyExcess | None = None,
    every_synthetic: Callable[[], Iterable[pd.DataFrame]] | None = None,
) -> PrivacyAudit:
    """Measure how much `synthetic` reveals about the `train` rows, against `holdout` as the baseline.

    `holdout` (real rows never trained on) is the baseline every test compares against; `config.alpha`
    sets every interval's one-sided error. `copies`: the exact-copy evidence over the whole tables, when these
    are samples of them; `every_synthetic`: then the whole synthetic table, part by part (see `evaluate_privacy`).
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    pii = find_pii_leaks(pd.concat([train, holdout], ignore_index=True), synthetic, schema)
    timings["pii_s"] = time.perf_counter() - start
    start = time.perf_counter()
    distances = evaluate_privacy(train, holdout, synthetic, schema, seed=seed, config=config, copies=copies,
                                 every_synthetic=every_synthetic)
    timings["distances_s"] = time.perf_counter() - start
    start = time.perf_counter()
    attacks = evaluate_attacks(train, holdout, synthetic, schema, seed=seed, alpha=config.alpha)
    timings["attacks_s"] = time.perf_counter() - start
    logger.info("privacy audit in %.1f s: %s", sum(timings.values()),
                ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items()))
    return PrivacyAudit(distances, attacks, pii, timings)
