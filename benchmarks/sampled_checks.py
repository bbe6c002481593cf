"""The checks on samples against the checks on whole tables: the same release of Adult judged both ways.

    python -m benchmarks.sampled_checks [--check-rows 5000 10000 20000] [--generator cart]

The default generator is fitted on Adult's training part as a release fits it; its synthetic rows (as many as the
source) are then judged by the release's checks twice in one run: on the whole tables, and on seeded samples of
at most `--check-rows` rows of each table (exact copies still counted on every row, the outlier check still
looking at every synthetic row), as a run on a table bigger than `check_rows` is judged. If sampling costs
nothing a user can see, quality, C2ST and the verdict agree within their own intervals.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from flows.config import RunConfig, load_config
from flows.gate import audit_and_judge
from flows.shards import CountedPart, plan_shards, sample_shard
from flows.sources.staging import Staged, assemble, plan_ingest, stage_part
from flows.steps import rows_to_check
from generators.registry import create

log = logging.getLogger("benchmarks.sampled_checks")


def main(argv: list[str] | None = None) -> None:
    """Fit once, sample once, judge on the whole tables and on each sample size; print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-rows", type=int, nargs="+", default=[5_000, 10_000, 20_000])
    parser.add_argument("--generator", default="cart")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="synthgate-sampled-") as work:
        config = load_config(None, generator=args.generator, seed=args.seed)
        staged = _stage(config, Path(work))
        model = create(args.generator, {}, seed=args.seed).fit(staged.train, staged.schema)
        parts = [sample_shard(model, shard, Path(work) / "synthetic", {}).counted(staged.copies)
                 for shard in plan_shards(staged.rows, config.shard_rows, args.seed)]
        lines = ["| checks read | quality | C2ST AUC [95 % CI] | DCR share | exact-copy excess | verdict | "
                 "checks s |", "|---|---|---|---|---|---|---|"]
        for check_rows in [max(staged.rows, *args.check_rows), *sorted(args.check_rows, reverse=True)]:
            lines.append(_judged(staged, parts, config.model_copy(update={"check_rows": check_rows})))
    sys.stdout.write("\n".join(lines) + "\n")


def _stage(config: RunConfig, work: Path) -> Staged:
    """The source ingested as a run ingests it (`flows.sources.staging`)."""
    plan = plan_ingest(config.source, config.na_values, config.columns, config.target, False, config.limits)
    parts = [stage_part(plan, index, work / "staging") for index in plan.parts]
    return assemble(plan, parts, holdout=config.holdout, seed=config.seed, folder=work / "staging")


def _judged(staged: Staged, parts: list[CountedPart], config: RunConfig) -> str:
    start = time.perf_counter()
    checked = rows_to_check(staged, parts, config)
    fidelity, privacy, verdict = audit_and_judge(checked.train, checked.holdout, checked.synthetic, staged.schema,
                                                 seed=config.seed, thresholds=config.gate.thresholds(),
                                                 copies=checked.copies, every_synthetic=checked.every_synthetic)
    c2st, distances = fidelity.c2st, privacy.distances
    label = "whole tables" if checked.every_synthetic is None else f"samples of {config.check_rows:,} rows"
    failed = ", ".join(check.name for check in verdict.failed)
    return (f"| {label} | {fidelity.quality.quality:.4f} | {c2st.auc:.3f} [{c2st.auc_ci[0]:.3f}, {c2st.auc_ci[1]:.3f}]"
            f" | {distances.dcr_share:.3f} | {distances.exact_match_excess:.5f} | "
            f"{'published' if verdict.passed else 'refused: ' + failed} | {time.perf_counter() - start:.0f} |")


if __name__ == "__main__":
    main()
