"""Time the distance-based privacy checks on UCI Adult (their calibration: `benchmarks.calibrate`).

    python -m benchmarks.privacy_timing                       # ours vs sdmetrics' DCR metrics, full Adult

Timing: train = 80% of the rows, holdout = 20%, synthetic = all real rows (the size a release has);
sdmetrics 0.32's `DCRBaselineProtection` and `DCROverfittingProtection` run on the same frames at their
default subsample (none), or on `--sdmetrics-rows` synthetic rows, scaled up linearly (their cost is
linear in the synthetic rows), when the full run would take too long.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
import pandas as pd
import torch

from benchmarks.datasets import ADULT
from flows.sources import load_table
from generators.tabular.schema import Schema
from privacy.distance import evaluate_privacy
from validation.metadata import to_sdmetrics_frame, to_sdmetrics_metadata

log = logging.getLogger("benchmarks")


def time_ours(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict[str, float]:
    """Wall and CPU seconds of `evaluate_privacy` (its stages are logged by privacy.distance at debug level)."""
    cpu = time.process_time()
    result = evaluate_privacy(train, holdout, synthetic, schema)
    log.info("ours: %s in %.1f CPU seconds", result, time.process_time() - cpu)
    return {"wall_s": result.elapsed_s, "cpu_s": time.process_time() - cpu}


def time_sdmetrics(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, rows: int | None
) -> dict[str, float]:
    """Both sdmetrics DCR metrics, on `rows` synthetic rows (None: all) with the time scaled to all of them."""
    from sdmetrics.single_table import DCRBaselineProtection, DCROverfittingProtection

    learned = Schema(tuple(schema.learned))
    metadata = to_sdmetrics_metadata(learned)
    sample = synthetic if rows is None else synthetic.sample(rows, random_state=0)
    frames = [to_sdmetrics_frame(frame, learned) for frame in (train, holdout, sample)]
    scale = len(synthetic) / len(sample)
    out = {}
    for name, call in [
        (
            "DCRBaselineProtection",
            lambda: DCRBaselineProtection.compute(pd.concat(frames[:2]), frames[2], metadata, None),
        ),
        (
            "DCROverfittingProtection",
            lambda: DCROverfittingProtection.compute(frames[0], frames[2], frames[1], metadata, None),
        ),
    ]:
        start = time.perf_counter()
        score = call()
        out[name] = (time.perf_counter() - start) * scale
        log.info("%s = %.4f in %.1f s on %d synthetic rows", name, score, out[name] / scale, len(sample))
    return out


def timing(frame: pd.DataFrame, schema: Schema, sdmetrics_rows: int | None, skip_sdmetrics: bool) -> None:
    """Time our distance checks, and unless skipped sdmetrics' DCR metrics, on an 80/20 split; print markdown."""
    order = np.random.default_rng(0).permutation(len(frame))
    cut = round(0.8 * len(frame))
    train, holdout = (frame.iloc[np.sort(part)].reset_index(drop=True) for part in (order[:cut], order[cut:]))
    ours = time_ours(train, holdout, frame, schema)
    theirs = {} if skip_sdmetrics else time_sdmetrics(train, holdout, frame, schema, sdmetrics_rows)
    load = os.getloadavg()[0]
    print(
        f"train {len(train)}, holdout {len(holdout)}, synthetic {len(frame)}; torch threads "
        f"{torch.get_num_threads()}, load average {load:.1f}\n"
    )
    print("| what | seconds |\n|---|---|")
    print(f"| ours: every distance check (wall) | {ours['wall_s']:.1f} |")
    print(f"| ours: CPU seconds, all threads | {ours['cpu_s']:.1f} |")
    scaled = "" if sdmetrics_rows is None else f" (from {sdmetrics_rows} synthetic rows, scaled)"
    for name, seconds in theirs.items():
        print(f"| sdmetrics {name}{scaled} | {seconds:.1f} |")


def main() -> None:
    """Time the distance checks on the full Adult table, logging their own steps at debug level."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdmetrics-rows", type=int, default=None, help="time sdmetrics on this many synthetic rows")
    parser.add_argument("--skip-sdmetrics", action="store_true", help="time our checks only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    table = load_table(ADULT, {}, None)
    frame, schema = table.frame, table.schema
    logging.getLogger("privacy.distance").setLevel(logging.DEBUG)
    timing(frame, schema, args.sdmetrics_rows, args.skip_sdmetrics)


if __name__ == "__main__":
    main()
