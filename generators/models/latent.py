"""What the latent-code generators (vae and autoencoder) share: their training hyper-parameters
(`LatentConfig`) and fitting, sampling, saving and loading through a latent mixture (`LatentCodeGenerator`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from generators.base import Generator
from generators.nn.layers import SpreadDecoder, init_weights
from generators.nn.mixture import LatentMixture
from generators.nn.training import schedule, split_rows, train
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatentConfig:
    """Hyper-parameters every latent-code generator has; subclasses add their own and may change defaults.

    `steps` optimiser steps are spread over epochs of batches of up to `max_batch` rows (see `schedule`)
    while the learning rate decays linearly to zero; training stops earlier once the `held_out` rows' loss
    has not improved for `patience` epochs. `prior_components` are the counts of mixture components tried
    for the density over the codes (see `LatentMixture`).
    """

    model: ClassVar[str] = "latent"
    latent: int = 16
    hidden: tuple[int, ...] = (128, 128)
    steps: int = 2000
    max_batch: int = 500
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    held_out: float = 0.1
    patience: int = 10
    prior_components: tuple[int, ...] = (8, 16, 32)

    def __post_init__(self) -> None:
        name = self.model
        if self.latent < 1 or not self.hidden or min(self.hidden) < 1:
            raise BadInputError(f"{name}: latent and hidden sizes must be ≥ 1")
        if min(self.steps, self.max_batch, self.patience) < 1:
            raise BadInputError(f"{name}: steps, max_batch and patience must be ≥ 1")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise BadInputError(f"{name}: learning_rate must be > 0 and weight_decay ≥ 0")
        if not self.prior_components or min(self.prior_components) < 1:
            raise BadInputError(f"{name}: prior_components must be a non-empty list of positive integers")
        if not 0.0 <= self.held_out < 1.0:
            raise BadInputError(f"{name}: held_out must be in [0, 1)")


class LatentCodeGenerator(Generator):
    """A network (`model_`) whose codes are sampled from a `LatentMixture` (`prior_`): how such generators
    save and load. Subclasses build both in `_build`."""

    config: LatentConfig
    model_: SpreadDecoder
    prior_: LatentMixture

    def _build(self, width: int) -> None:
        raise NotImplementedError

    def _start(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Build the network with seeded weights and split off the held-out rows: (training rows, held-out
        rows, batch size, epochs)."""
        self._build(x.shape[1])
        init_weights(self.model_, generator)
        rows, held = split_rows(x, self.config.held_out, generator)
        return (rows, held, *schedule(len(rows), self.config.steps, self.config.max_batch))

    def _train(
        self,
        batch_loss: Callable[[], torch.Tensor],
        held_out_loss: Callable[[], float] | None,
        *,
        rows: int,
        batch: int,
        epochs: int,
    ) -> None:
        """`train` the network with the config's optimiser settings (`held_out_loss` None: no early stopping),
        then put it in evaluation mode."""
        cfg = self.config
        train(
            self.model_,
            batch_loss,
            held_out_loss,
            epochs=epochs,
            per_epoch=max(1, round(rows / batch)),
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            patience=cfg.patience,
            name=self.name,
        )
        self.model_.eval()

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
