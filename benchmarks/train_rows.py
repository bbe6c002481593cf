"""How many rows a generator needs: quality and C2ST of the default generator fitted on growing samples.

    python -m benchmarks.train_rows [--sizes 5000 10000 25000 50000 100000 200000 400000] [--generator cart]

On an Adult-like table (`benchmarks.big`, seeded): the generator is fitted on the first n rows, samples 20,000
rows, and is scored against 20,000 fresh rows of the same table (rows it never saw): sdmetrics' quality and the
C2ST AUC. Where the scores stop improving is where `train_rows` (`flows.split.DEFAULT_TRAIN_ROWS`) is set: more
rows cost fit time and memory and buy nothing a release can show.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from benchmarks.big import adult_like_chunk
from generators.registry import create
from generators.tabular.inference import infer_schema
from validation.c2st import classifier_two_sample
from validation.fidelity import evaluate_fidelity

log = logging.getLogger("benchmarks.train_rows")
SCORED_ROWS = 20_000


def main(argv: list[str] | None = None) -> None:
    """Fit on each size, score against fresh rows, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[5_000, 10_000, 25_000, 50_000, 100_000, 200_000, 400_000])
    parser.add_argument("--generator", default="cart")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    biggest = max(args.sizes)
    table, schema = infer_schema(adult_like_chunk(0, biggest + SCORED_ROWS, args.seed))
    fresh = table.iloc[biggest:].reset_index(drop=True)
    lines = ["| rows fitted on | fit s | quality | C2ST AUC [95 % CI] |", "|---|---|---|---|"]
    for size in sorted(args.sizes):
        start = time.perf_counter()
        model = create(args.generator, {}, seed=args.seed).fit(table.iloc[:size], schema)
        fit_s = time.perf_counter() - start
        synthetic = model.sample(SCORED_ROWS)
        quality = evaluate_fidelity(fresh, synthetic, schema).quality
        c2st = classifier_two_sample(fresh, synthetic, schema, rows=10_000, seed=args.seed)
        lines.append(f"| {size:,} | {fit_s:.1f} | {quality:.4f} | {c2st.auc:.3f} [{c2st.auc_ci[0]:.3f}, "
                     f"{c2st.auc_ci[1]:.3f}] |")
        log.info(lines[-1])
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
