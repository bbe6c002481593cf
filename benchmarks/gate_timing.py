"""Time the whole gate on full UCI Adult: the fidelity and privacy audits, beside sdmetrics' own DCR metrics.

The fidelity audit is sdmetrics quality and diagnostic, the GX suite with Data Docs, drift, utility and
figures; the privacy audit is PII, every distance check and the attacks. sdmetrics' DCR metrics are timed
in the same run for comparison.

    python -m benchmarks.gate_timing                      # synthetic = a copula release of the 80% split
    python -m benchmarks.gate_timing --sdmetrics-rows 500 # sdmetrics on 500 synthetic rows, scaled up

Train = 80% of the rows (seeded split, as a release), holdout = 20%, synthetic = as many rows as the
table. sdmetrics' DCR metrics compare every synthetic row with every real one in Python-level loops; on
full tables they take hours, so they run on `--sdmetrics-rows` synthetic rows and their time is scaled
linearly to the full table (their cost is linear in the synthetic rows).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.datasets import ADULT
from benchmarks.privacy_timing import time_sdmetrics
from flows.sources import load_table
from flows.split import split_holdout
from generators.registry import create
from privacy.audit import audit_privacy
from validation.audit import audit_fidelity


def main() -> None:
    """Time both audits and sdmetrics' DCR metrics on one synthetic Adult table; print the seconds as markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="copula", help="generator of the synthetic table")
    parser.add_argument("--sdmetrics-rows", type=int, default=500, help="synthetic rows sdmetrics' DCR runs on")
    args = parser.parse_args()
    table = load_table(ADULT)
    train, holdout = split_holdout(table.frame, 0.2, 0)
    synthetic = create(args.generator, {}, seed=0, device="cpu").fit(train, table.schema).sample(len(table.frame))
    with tempfile.TemporaryDirectory() as docs:
        start = time.perf_counter()
        fidelity = audit_fidelity(train, holdout, synthetic, table.schema, target="class", docs_dir=Path(docs))
        fidelity_s = time.perf_counter() - start
    start = time.perf_counter()
    privacy = audit_privacy(train, holdout, synthetic, table.schema)
    privacy_s = time.perf_counter() - start
    theirs = time_sdmetrics(train, holdout, synthetic, table.schema, args.sdmetrics_rows)
    print(f"train {len(train)}, holdout {len(holdout)}, synthetic {len(synthetic)} ({args.generator}); "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}\n")
    print("| step | seconds |\n|---|---|")
    print(f"| **fidelity audit, total** | **{fidelity_s:.1f}** |")
    for name, seconds in fidelity.timings.items():
        print(f"| · {name.removesuffix('_s')} | {seconds:.1f} |")
    print(f"| **privacy audit, total** | **{privacy_s:.1f}** |")
    for name, seconds in privacy.timings.items():
        print(f"| · {name.removesuffix('_s')} | {seconds:.1f} |")
    for name, seconds in theirs.items():
        print(f"| sdmetrics {name} (from {args.sdmetrics_rows} synthetic rows, scaled) | {seconds:.0f} |")


if __name__ == "__main__":
    main()
