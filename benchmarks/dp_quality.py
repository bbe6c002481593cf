"""What differential privacy costs: mst (marginals), gan and vae (DP-SGD) on Adult at a few epsilons.

`mst-plain` is mst without its label (`target_aware: false`): the plain MST tree, for comparison.

Fits on the 80% training split (as the flow makes it), samples as many rows as the source has, and
scores the sample against the training rows with sdmetrics' quality report and the classifier two-sample
AUC, and on the 20% holdout with the utility ratio (a model trained on synthetic rows against one trained
on real rows). Prints a markdown table. `--public-domain` declares every inferred category set and bound
public (the config's `public_domain: true`): the DP fit then keeps them instead of estimating them.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m benchmarks.dp_quality [--epsilons 1 10]
        [--generators mst mst-plain vae gan] [--no-dp] [--gan-steps N] [--gan-batch N] [--vae-steps N] [--public-domain]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from benchmarks.datasets import ADULT
from flows.sources import read_source
from flows.split import split_holdout
from generators.base import Generator
from generators.models.gan import GanConfig, GanGenerator
from generators.models.mst import MSTConfig, MSTGenerator
from generators.models.vae import VAEConfig, VAEGenerator
from generators.tabular.inference import infer_schema
from generators.tabular.schema import infer_target
from validation.c2st import classifier_two_sample
from validation.fidelity import evaluate_fidelity
from validation.utility import evaluate_utility

logger = logging.getLogger(__name__)


def _models(args: argparse.Namespace, epsilon: float | None) -> dict[str, Generator]:
    """Each generator the benchmark knows, at `epsilon` (None: without DP)."""
    return {
        "mst": MSTGenerator(MSTConfig(dp_epsilon=epsilon, dp_delta=args.delta), seed=args.seed),
        "mst-plain": MSTGenerator(MSTConfig(dp_epsilon=epsilon, dp_delta=args.delta, target_aware=False),
                                  seed=args.seed),
        "vae": VAEGenerator(VAEConfig(dp_epsilon=epsilon, dp_delta=args.delta, steps=args.vae_steps), seed=args.seed),
        "gan": GanGenerator(
            GanConfig(
                dp_epsilon=epsilon,
                dp_delta=args.delta,
                batch_size=args.gan_batch,
                steps=args.gan_steps,
                min_steps=args.gan_steps,
            ),
            seed=args.seed,
        ),
    }


def main(argv: list[str] | None = None) -> None:
    """Fit each generator with DP at each epsilon; print its spent budget, quality, C2ST AUC, utility and fit time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--generators", nargs="+", default=["mst", "vae", "gan"],
                        choices=["mst", "mst-plain", "vae", "gan"])
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--gan-steps", type=int, default=600, help="fixed DP-SGD steps of the gan")
    parser.add_argument("--gan-batch", type=int, default=250, help="expected rows per gan step")
    parser.add_argument("--vae-steps", type=int, default=600, help="about this many DP-SGD steps of the vae")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, default=ADULT)
    parser.add_argument("--public-domain", action="store_true", help="declare every inferred domain public")
    parser.add_argument("--no-dp", action="store_true", help="also fit each generator without DP (epsilon 'none')")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    frame, schema = infer_schema(read_source(args.source)[0], public_domain=args.public_domain)
    train, holdout = split_holdout(frame, 0.2, args.seed)
    target = infer_target(schema)
    print("| generator | epsilon | spent epsilon | quality | utility ratio | C2ST AUC [95% CI] | fit s |")
    print("|---|---|---|---|---|---|---|")
    epsilons: list[float | None] = [*args.epsilons, *([None] if args.no_dp else [])]
    for epsilon in epsilons:
        models = _models(args, epsilon)
        for name in args.generators:
            model = models[name]
            started = time.perf_counter()
            model.fit(train, schema)
            seconds = time.perf_counter() - started
            synthetic = model.sample(len(frame), seed=args.seed)
            quality = evaluate_fidelity(train, synthetic, schema).quality
            utility = (evaluate_utility(train, holdout, synthetic, schema, target, args.seed).ratio
                       if target else float("nan"))
            c2st = classifier_two_sample(train, synthetic, schema, seed=args.seed)
            spent = model.privacy_spent_ or {}
            shown = "none" if epsilon is None else f"{epsilon:g}"
            print(
                f"| {name} | {shown} | {spent.get('epsilon', float('nan')):.3f} | {quality:.3f} | "
                f"{utility:.3f} | {c2st.auc:.3f} [{c2st.auc_ci[0]:.3f}, {c2st.auc_ci[1]:.3f}] | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
