"""Wall time of the privacy attacks on the full Adult table, each attack timed on its own.

    python -m benchmarks.attacks_timing --threads 2
    python -m benchmarks.attacks_timing --calibrate --rows 8000 --seeds 20


Train 26,000 real rows, control the other 6,561, and a 32,561-row "synthetic" table drawn from the
training rows with replacement and numerical noise (the attacks' cost does not depend on how the
synthetic rows were made). The target is 20 s for all attacks on 2 cores.

`--calibrate` instead runs `evaluate_attacks` on a subsample of Adult for each seed, split 60% train,
20% control and 20% honest "synthetic" (real rows never trained on), and on planted leaks in place of
the honest rows: copies of training rows, 5% of rows copied, training rows with 1%-of-SD noise on the
numbers, and the 20 most isolated training rows added. It prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from flows.sources import load_table
from generators.tabular.schema import ColumnKind, Schema
from privacy.attacks import AttackResult, attribute_inference, evaluate_attacks, linkability, singling_out
from privacy.distance import gower_distance_chunks

log = logging.getLogger("benchmarks")
ADULT = Path(__file__).resolve().parent.parent / "data" / "adult.parquet"


def main() -> None:
    """Time each attack on the full Adult table, or with `--calibrate` run the calibration for each seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--rows", type=int, default=8000, help="Adult rows per calibration run")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    table = load_table(ADULT, {}, None)
    frame, schema = table.frame, table.schema
    if args.calibrate:
        for seed in range(args.seeds):
            calibrate(frame, schema, args.rows, seed)
        return
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(frame))
    train, control = frame.iloc[order[:26_000]], frame.iloc[order[26_000:]]
    synthetic = train.iloc[rng.integers(len(train), size=len(frame))].reset_index(drop=True)
    for spec in schema.of_kind(ColumnKind.NUMERICAL):
        noise = rng.normal(0, 0.01 * synthetic[spec.name].std(), len(synthetic))
        synthetic[spec.name] = (synthetic[spec.name] + noise).astype(synthetic[spec.name].dtype)

    attacks: dict[str, Callable[[], AttackResult]] = {
        "singling out (multivariate)": lambda: singling_out(train, control, synthetic, schema, seed=args.seed),
        "singling out (univariate)": lambda: singling_out(
            train, control, synthetic, schema, mode="univariate", seed=args.seed
        ),
        "linkability": lambda: linkability(train, control, synthetic, schema, seed=args.seed),
        "inference (worst column)": lambda: _worst(
            attribute_inference(train, control, synthetic, schema, seed=args.seed)
        ),
    }
    total = 0.0
    for name, attack in attacks.items():
        started = time.perf_counter()
        result = attack()
        elapsed = time.perf_counter() - started
        total += elapsed
        log.info(
            "%-28s %6.2f s  risk %.3f [%.3f, %.3f]  attack %.3f control %.3f baseline %.3f  n=%d  (%s)",
            name,
            elapsed,
            result.risk,
            *result.risk_ci,
            result.attack_rate,
            result.control_rate,
            result.baseline_rate,
            result.n_attacks,
            result.name,
        )
    log.info("all attacks: %.2f s on %d threads (target 20 s on 2 cores)", total, args.threads)


def calibrate(frame: pd.DataFrame, schema: Schema, rows: int, seed: int) -> None:
    """One seed's split of `rows` Adult rows, attacked with honest rows and with each planted leak."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))[:rows]
    train, control, honest = (
        frame.iloc[part].reset_index(drop=True) for part in np.split(order, [rows * 3 // 5, rows * 4 // 5])
    )
    copies = train.iloc[rng.choice(len(train), len(honest), replace=False)].reset_index(drop=True)
    some_copied = honest.copy()
    swapped = rng.choice(len(honest), len(honest) // 20, replace=False)
    some_copied.iloc[swapped] = copies.iloc[: len(swapped)].to_numpy()
    noisy = copies.copy()
    for spec in schema.of_kind(ColumnKind.NUMERICAL):
        noisy[spec.name] = noisy[spec.name] + rng.normal(0, 0.01 * train[spec.name].std(), len(noisy))
    isolated = _most_isolated(train, schema, 20)
    outliers = pd.concat([honest.iloc[: len(honest) - 20], train.iloc[isolated]], ignore_index=True)
    leaks = {
        "honest": honest,
        "copies": copies,
        "5% copied": some_copied,
        "noise 1% SD": noisy,
        "20 isolated": outliers,
    }
    for leak, synthetic in leaks.items():
        result = evaluate_attacks(train, control, synthetic, schema, seed=seed)
        row = {
            "seed": seed,
            "leak": leak,
            "elapsed_s": round(result.elapsed_s, 2),
            "inference_column": result.inference_column,
        }
        for name in ("singling_out", "singling_out_univariate", "linkability", "inference"):
            attack = getattr(result, name)
            row[name] = [round(attack.risk, 4), round(attack.risk_ci[0], 4), round(attack.risk_ci[1], 4)]
        print(json.dumps(row), flush=True)


def _most_isolated(train: pd.DataFrame, schema: Schema, n: int) -> np.ndarray:
    """Training rows farthest (Gower) from their nearest other training row."""
    nearest = np.empty(len(train))
    for start, distances in gower_distance_chunks(train, train, schema):
        distances[torch.arange(len(distances)), torch.arange(start, start + len(distances))] = 2.0
        nearest[start : start + len(distances)] = distances.min(dim=1).values.numpy()
    return np.argsort(nearest)[-n:]


def _worst(results: dict[str, AttackResult]) -> AttackResult:
    return max(results.values(), key=lambda result: result.risk)


if __name__ == "__main__":
    pd.options.mode.copy_on_write = True
    main()
