"""What the latent-code generators (vae and autoencoder) share.

Their hyper-parameters (`LatentConfig`) and fitting, sampling, saving and loading through a latent mixture
(`LatentCodeGenerator`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from generators.base import Generator
from generators.nn.layers import SpreadDecoder, init_weights
from generators.nn.mixture import LatentMixture
from generators.nn.training import History, Plan, TrainingConfig, Update, batch_for, split_rows, train
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatentConfig(TrainingConfig):
    """Hyper-parameters every latent-code generator has; subclasses add their own and may change defaults.

    Training (see `TrainingConfig`): batches are a 20th of the rows within [64, `batch_size`]; the learning
    rate decays linearly to zero; the held-out rows' loss is checked once an epoch. `hidden` are the
    encoder's layer widths (the decoder's, reversed); `latent` the code's size. `prior_components` are the
    counts of mixture components tried for the density over the codes (see `LatentMixture`).
    """

    model: ClassVar[str] = "latent"
    latent: int = 16
    hidden: tuple[int, ...] = (128, 128)
    steps: int = 2000
    batch_size: int = 500
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    prior_components: tuple[int, ...] = (8, 16, 32)

    def __post_init__(self) -> None:
        name = self.model
        self.check_training(name)
        if self.latent < 1 or not self.hidden or min(self.hidden) < 1:
            raise BadInputError(f"{name}: latent and hidden sizes must be ≥ 1")
        if not self.prior_components or min(self.prior_components) < 1:
            raise BadInputError(f"{name}: prior_components must be a non-empty list of positive integers")


class LatentCodeGenerator(Generator):
    """A network (`model_`) whose codes are sampled from a `LatentMixture` (`prior_`).

    This is how such generators train, save and load. Subclasses build both in `_build`.
    """

    config: LatentConfig
    model_: SpreadDecoder
    prior_: LatentMixture

    def _build(self, width: int) -> None:
        raise NotImplementedError

    def _start(
        self, x: torch.Tensor, generator: torch.Generator, hold_out: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, Plan]:
        """Build the network with seeded weights and split off the held-out rows (none unless `hold_out`).

        Returns (training rows, held-out rows, the budget).
        """
        self._build(x.shape[1])
        init_weights(self.model_, generator)
        rows, held = split_rows(x, self.config.held_out, generator) if hold_out else (x, x[:0])
        return rows, held, self.config.plan(len(rows), batch_for(len(rows), self.config.batch_size))

    def _optimiser(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.model_.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )

    def _train(self, updates: Sequence[Update], plan: Plan, held_out: Callable[[Any], float] | None) -> History:
        """`train` the network on `updates` with the config's settings (`held_out` None: no early stopping)."""
        cfg = self.config
        self.model_, history = train(
            self.model_, updates, plan, held_out=held_out, patience=cfg.patience, ema_decay=cfg.ema_decay,
            name=self.name,
        )
        return history

    def _state(self) -> dict[str, Any]:
        return {
            **{f"model.{k}": v for k, v in self.model_.state_dict().items()},
            **{f"prior.{k}": v for k, v in self.prior_.state().items()},
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self._build(self._fitted_encoder().width_)
        self.model_.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        self.model_.eval()
        self.prior_ = LatentMixture.from_state({k[6:]: v for k, v in state.items() if k.startswith("prior.")})
