"""What differential privacy costs in quality: gan and vae fitted with DP-SGD on Adult at a few epsilons.

Fits on the 80% training split (as the flow makes it), samples as many rows as the source has, and
scores the sample against the training rows with sdmetrics' quality report. Prints a markdown table.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m benchmarks.dp_quality [--epsilons 1 10]
        [--gan-steps N] [--gan-batch N] [--vae-steps N]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from benchmarks.datasets import ADULT
from flows.sources import load_table
from flows.split import split_holdout
from generators.models.gan import GanConfig, GanGenerator
from generators.models.vae import VAEConfig, VAEGenerator
from validation.fidelity import evaluate_fidelity

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    """Fit gan and vae with DP-SGD at each epsilon and print their spent budget, quality and fit time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--gan-steps", type=int, default=600, help="fixed DP-SGD steps of the gan")
    parser.add_argument("--gan-batch", type=int, default=250, help="expected rows per gan step")
    parser.add_argument("--vae-steps", type=int, default=600, help="about this many DP-SGD steps of the vae")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, default=ADULT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    table = load_table(args.source, {}, None)
    train, _ = split_holdout(table.frame, 0.2, args.seed)
    print("| generator | epsilon | spent epsilon | noise multiplier | steps | quality | fit s |")
    print("|---|---|---|---|---|---|---|")
    for epsilon in args.epsilons:
        models = (
            GanGenerator(
                GanConfig(
                    dp_epsilon=epsilon,
                    dp_delta=args.delta,
                    batch_size=args.gan_batch,
                    steps=args.gan_steps,
                    min_steps=args.gan_steps,
                ),
                seed=args.seed,
            ),
            VAEGenerator(VAEConfig(dp_epsilon=epsilon, dp_delta=args.delta, steps=args.vae_steps), seed=args.seed),
        )
        for model in models:
            started = time.perf_counter()
            model.fit(train, table.schema)
            seconds = time.perf_counter() - started
            synthetic = model.sample(len(table.frame), seed=args.seed)
            quality = evaluate_fidelity(train, synthetic, table.schema).quality
            spent = model.privacy_spent_ or {}
            print(
                f"| {model.name} | {epsilon:g} | {spent.get('epsilon', float('nan')):.3f} | "
                f"{spent.get('noise_multiplier', float('nan')):.3f} | {spent.get('steps')} | {quality:.3f} | "
                f"{seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
