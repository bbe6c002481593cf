"""Differential privacy for the neural generators: DP-SGD with Opacus's optimiser and accountant.

A DP fit spends one (epsilon, delta) budget in two parts, composed sequentially: `ENCODER_SHARE` of it
estimates the encoder's statistics with noisy counts (see `EncoderPrivacy`), the rest pays for DP-SGD.
DP-SGD draws Poisson batches (each row in with probability `sample_rate`), clips every row's gradient to
`dp_max_grad_norm`, adds Gaussian noise of `noise_multiplier` times that norm (Opacus's `DPOptimizer`)
and is accounted for by Opacus's RDP accountant; the noise multiplier is chosen before training so that
the planned steps end within the budget.

Per-row gradients come from `torch.func` (`vmap` of `grad`) rather than Opacus's `GradSampleModule`:
its hooks rebuild per-row gradients from one first-order backward pass layer by layer, so they see
neither a parameter used outside a layer's forward (the VAE's learned spread) nor the second-order term
of a WGAN-GP gradient penalty; `torch.func` differentiates the per-row loss exactly, penalty included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import DPOptimizer
from torch import nn

from generators.nn.training import Update
from generators.tabular.encoder import EncoderPrivacy, Span
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)

ENCODER_SHARE = 0.1  # of epsilon and of delta, spent on the encoder's statistics
MECHANISM = "DP-SGD (Opacus RDP) + Laplace counts for the encoder"
# Opacus's default RDP orders, extended: at large epsilon the best order lies beyond its 63.
_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 96, 128, 192, 256]


@dataclass(frozen=True)
class DPConfig:
    """Differential privacy settings a generator config mixes in; `dp_epsilon` None trains without DP.

    `dp_delta` should be well below one over the number of rows; `dp_max_grad_norm` is the norm every
    row's gradient is clipped to (the noise scales with it).
    """

    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    dp_max_grad_norm: float = 1.0

    def check_privacy(self, name: str) -> None:
        """Reject DP settings no accountant can honour, naming the generator `name` in the error."""
        if self.dp_epsilon is not None and not 0 < self.dp_epsilon < float("inf"):
            raise BadInputError(f"{name}: dp_epsilon must be a positive finite number (or null for no DP)")
        if not 0.0 < self.dp_delta < 1.0 or self.dp_max_grad_norm <= 0:
            raise BadInputError(f"{name}: dp_delta must be in (0, 1) and dp_max_grad_norm > 0")

    def encoder_privacy(self) -> EncoderPrivacy | None:
        """The share of the budget the encoder may spend; None without DP."""
        if self.dp_epsilon is None:
            return None
        return EncoderPrivacy(ENCODER_SHARE * self.dp_epsilon, ENCODER_SHARE * self.dp_delta)


@dataclass(frozen=True)
class SgdPlan:
    """How DP-SGD spends the rest of the budget.

    It takes `steps` Poisson batches at `sample_rate` (of `batch` rows expected) with noise
    `noise_multiplier`, accounted at `delta`.
    """

    noise_multiplier: float
    sample_rate: float
    batch: int
    steps: int
    delta: float
    max_grad_norm: float
    encoder: EncoderPrivacy

    @classmethod
    def plan(cls, config: DPConfig, rows: int, batch: int, steps: int, trains: str) -> SgdPlan:
        """The smallest noise that keeps the planned steps within the part of the budget left after the encoder's.

        The plan is `steps` steps of batches of `batch` of `rows` rows; `trains` names what DP-SGD trains, for
        the log line that states the plan.
        """
        encoder = config.encoder_privacy()
        if config.dp_epsilon is None or encoder is None:
            raise ValueError("no DP budget to plan with")
        epsilon = (1 - ENCODER_SHARE) * config.dp_epsilon
        delta = (1 - ENCODER_SHARE) * config.dp_delta
        rate = min(1.0, batch / rows)
        try:
            sigma = get_noise_multiplier(
                target_epsilon=epsilon, target_delta=delta, sample_rate=rate, steps=steps, alphas=_ORDERS
            )
        except ValueError:
            raise BadInputError(f"dp_epsilon {config.dp_epsilon} is too small for {steps} steps") from None
        logger.info("%s: DP-SGD, %d steps at sample rate %.4f, noise multiplier %.3f", trains, steps, rate, sigma)
        return cls(float(sigma), rate, min(batch, rows), steps, delta, config.dp_max_grad_norm, encoder)

    def epsilon(self, steps: int | None = None) -> float:
        """What the RDP accountant says `steps` (by default all planned) steps spent."""
        accountant = RDPAccountant()
        accountant.history = [(self.noise_multiplier, self.sample_rate, self.steps if steps is None else steps)]
        return float(accountant.get_epsilon(delta=self.delta, alphas=_ORDERS))

    def optimiser(self, optimiser: torch.optim.Optimizer, generator: torch.Generator) -> DPOptimizer:
        """`optimiser` wrapped to clip per-row gradients, add seeded noise and average over the expected batch.

        The wrapper is Opacus's `DPOptimizer`; per-row gradients go in through `private_update`.
        """
        return DPOptimizer(
            optimiser,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            expected_batch_size=self.batch,
            loss_reduction="mean",
            generator=generator,
        )

    def spent(self, steps: int, public: Sequence[str] = ()) -> dict[str, Any]:
        """The `privacy_spent_` record of a fit that ran `steps` steps.

        The total is the sequential composition of the encoder's and DP-SGD's parts. `public` lists the domains the
        encoder took as declared public (`generators.tabular.encoder.public_assumptions`), which no part paid for.
        """
        sgd = self.epsilon(steps)
        return {
            "epsilon": self.encoder.epsilon + sgd,
            "delta": self.encoder.delta + self.delta,
            "mechanism": MECHANISM,
            "encoder_epsilon": self.encoder.epsilon,
            "sgd_epsilon": sgd,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "steps": steps,
            "sample_rate": self.sample_rate,
            "public_assumptions": list(public),
        }


def clamp_values(x: torch.Tensor, layout: tuple[Span, ...]) -> torch.Tensor:
    """`x` with its numbers clamped to [-1, 1], which a private encoder maps its noisy bounds to.

    A value beyond them (rare, or the bounds would hold it) would otherwise make a loss large enough to
    overflow.
    """
    values = torch.tensor([s.start for s in layout if s.role == "value"], dtype=torch.long, device=x.device)
    return x.index_copy(1, values, x[:, values].clamp(-1.0, 1.0))


def poisson_batch(x: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """The rows of `x` each kept independently with probability `rate`: the sampling DP-SGD's amplification assumes.

    A fixed-size batch would not match the accountant.
    """
    keep = torch.rand(len(x), generator=generator, device=x.device) < rate
    return x[keep]


class _Bound(nn.Module):
    """`loss(module, *rows)` as a module's forward, so `functional_call` can swap the module's weights."""

    def __init__(self, module: nn.Module, loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.module = module
        self.loss = loss

    def forward(self, *rows: torch.Tensor) -> torch.Tensor:
        return self.loss(self.module, *rows)


def per_row_gradients(module: nn.Module, loss: Callable[..., torch.Tensor], *rows: torch.Tensor) -> list[torch.Tensor]:
    """The gradient of `loss(module, *row)` for every row: one n x shape tensor per parameter of `module`.

    The loss is a scalar; each row gets a batch dimension of 1. The tensors come in `parameters()` order.
    """
    names = [name for name, _ in module.named_parameters()]
    weights = {f"module.{name}": p.detach() for name, p in module.named_parameters()}
    if not len(rows[0]):
        return [p.new_zeros(0, *p.shape) for p in weights.values()]
    bound = _Bound(module, loss)

    def row_loss(weights: dict[str, torch.Tensor], *row: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(bound, weights, tuple(r.unsqueeze(0) for r in row))

    grads = torch.func.vmap(torch.func.grad(row_loss), in_dims=(None, *(0,) * len(rows)))(weights, *rows)
    return [grads[f"module.{name}"] for name in names]


def private_update(
    name: str,
    plan: SgdPlan,
    optimiser: torch.optim.Optimizer,
    module: nn.Module,
    loss: Callable[..., torch.Tensor],
    rows: Callable[[], tuple[torch.Tensor, ...]],
    generator: torch.Generator,
) -> Update:
    """DP-SGD as one of the training loop's `Update`s.

    Each step `rows()` draws a Poisson batch (the per-row inputs of `loss(module, *row)`), every row's
    gradient is written for `optimiser` wrapped by `plan.optimiser`, which clips each, sums, adds seeded
    noise and steps. Nothing is recorded: a loss on private rows is not noised, so it may not leave the fit.
    """
    private = plan.optimiser(optimiser, generator)

    def write_gradients() -> None:
        for p, g in zip(module.parameters(), per_row_gradients(module, loss, *rows()), strict=True):
            setattr(p, "grad_sample", g)  # noqa: B010 (what DPOptimizer reads; not a declared attribute)

    return Update(name, private, write_gradients)
