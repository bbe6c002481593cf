"""Time and calibrate the distance-based privacy checks on UCI Adult.

    python -m benchmarks.privacy_timing                       # ours vs sdmetrics' DCR metrics, full Adult
    python -m benchmarks.privacy_timing --calibrate --rows 8000 --seeds 20

Timing: train = 80% of the rows, holdout = 20%, synthetic = all real rows (the size a release has);
sdmetrics 0.32's `DCRBaselineProtection` and `DCROverfittingProtection` run on the same frames at their
default subsample (none), or on `--sdmetrics-rows` synthetic rows, scaled up linearly (their cost is
linear in the synthetic rows), when the full run would take too long.

Calibration: each seed splits the rows 60/20/20 into train, holdout and "synthetic" real rows never
trained on (an honest release), then plants leaks into it: (a) the training rows themselves,
(b) 5% of rows replaced by training rows, (c) training rows with Gaussian noise of 1% of each numerical
column's standard deviation, (c5) that noise on 5% of the rows only, (d) the 20 most isolated training
rows added. Prints the spread of every number over the seeds as markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.datasets import ADULT
from flows.ingest import load_table
from generators.schema import Schema
from privacy.distance import PrivacyResult, distance_evidence, evaluate_privacy
from validation.metadata import to_sdmetrics_frame, to_sdmetrics_metadata

log = logging.getLogger("benchmarks")
Leak = Callable[[pd.DataFrame, pd.DataFrame, np.ndarray, np.random.Generator], pd.DataFrame]
METRICS = (
    "dcr_share",
    "dcr_p_value",
    "exact_excess",
    "nndr_low_share",
    "subset_dcr_share",
    "membership_auc_distance",
    "auc_distance_low",
    "membership_auc_density",
    "auc_density_low",
    "isolated_reproduced",
    "isolated_min_ratio",
    "elapsed_s",
)


def time_ours(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict[str, float]:
    """Wall and CPU seconds of `evaluate_privacy` (its stages are logged by privacy.distance at debug level)."""
    cpu = time.process_time()
    result = evaluate_privacy(train, holdout, synthetic, schema)
    log.info("ours: %s in %.1f CPU seconds", _flat(result), time.process_time() - cpu)
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


def calibrate(frame: pd.DataFrame, schema: Schema, rows: int, seeds: int, out: Path | None) -> None:
    records = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        sample = frame.iloc[rng.permutation(len(frame))[:rows]].reset_index(drop=True)
        cuts = [0, rows * 3 // 5, rows * 4 // 5, rows]
        train, holdout, honest = (sample.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(cuts))
        isolated = distance_evidence(train, holdout, honest, schema, seed=seed).isolated_rows
        for leak, make in LEAKS.items():
            synthetic = make(train, honest, isolated, rng)
            record = {
                "rows": rows,
                "seed": seed,
                "leak": leak,
                **_flat(evaluate_privacy(train, holdout, synthetic, schema, seed=seed)),
            }
            log.info("%s", record)
            records.append(record)
    table = pd.DataFrame(records)
    if out is not None:
        out.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    honest_runs = table[table.leak == "honest"][list(METRICS)]
    print(f"\nhonest, {rows} rows, {seeds} seeds\n")
    print(_markdown(honest_runs.describe(percentiles=[0.5]).loc[["min", "50%", "max"]].T))
    print(f"\nplanted leaks, median over {seeds} seeds (min / max in the JSON lines)\n")
    print(_markdown(table.groupby("leak", sort=False)[list(METRICS)].median().T))


def _copies(train: pd.DataFrame, honest: pd.DataFrame, isolated: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    return train.iloc[rng.choice(len(train), len(honest), replace=False)].reset_index(drop=True)


def _some_copies(
    train: pd.DataFrame, honest: pd.DataFrame, isolated: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    copied = round(0.05 * len(honest))
    return pd.concat(
        [honest.iloc[copied:], train.iloc[rng.choice(len(train), copied, replace=False)]], ignore_index=True
    )


def _noisy(train: pd.DataFrame, honest: pd.DataFrame, isolated: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    copies = _copies(train, honest, isolated, rng)
    numeric = [c for c in copies.columns if pd.api.types.is_numeric_dtype(copies[c])]
    noise = rng.normal(0.0, 0.01, (len(copies), len(numeric))) * train[numeric].std().to_numpy()
    return copies.assign(**{c: copies[c].astype(float) + noise[:, i] for i, c in enumerate(numeric)})


def _some_noisy(
    train: pd.DataFrame, honest: pd.DataFrame, isolated: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    noisy = _noisy(train, honest, isolated, rng)
    kept = round(0.95 * len(honest))
    return pd.concat([honest.iloc[:kept].astype(noisy.dtypes.to_dict()), noisy.iloc[kept:]], ignore_index=True)


def _isolated(
    train: pd.DataFrame, honest: pd.DataFrame, isolated: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    return pd.concat([honest, train.iloc[isolated]], ignore_index=True)


LEAKS: dict[str, Leak] = {
    "honest": lambda train, honest, isolated, rng: honest,
    "a copies": _copies,
    "b 5% copies": _some_copies,
    "c noise 1%": _noisy,
    "c5 noise on 5%": _some_noisy,
    "d isolated": _isolated,
}


def _markdown(frame: pd.DataFrame) -> str:
    lines = ["| | " + " | ".join(map(str, frame.columns)) + " |", "|---" * (len(frame.columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v:.4g}" for v in row) + " |" for name, row in frame.iterrows()]
    return "\n".join(lines)


def _flat(result: PrivacyResult) -> dict[str, float]:
    flat = {k: v for k, v in asdict(result).items() if isinstance(v, int | float)}
    flat["exact_excess"] = result.exact_match_rate - result.holdout_exact_match_rate
    flat["auc_distance_low"] = result.membership_auc_distance_ci[0]
    flat["auc_density_low"] = result.membership_auc_density_ci[0]
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", action="store_true", help="honest spread and planted leaks instead of timing")
    parser.add_argument("--rows", type=int, default=8000, help="rows sampled per calibration seed")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--sdmetrics-rows", type=int, default=None, help="time sdmetrics on this many synthetic rows")
    parser.add_argument("--skip-sdmetrics", action="store_true", help="time our checks only")
    parser.add_argument("--out", type=Path, default=None, help="write the calibration runs as JSON lines here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    table = load_table(ADULT, {}, None)
    frame, schema = table.frame, table.schema
    logging.getLogger("privacy.distance").setLevel(logging.DEBUG)
    if args.calibrate:
        calibrate(frame, schema, min(args.rows, len(frame)), args.seeds, args.out)
    else:
        timing(frame, schema, args.sdmetrics_rows, args.skip_sdmetrics)


if __name__ == "__main__":
    main()
