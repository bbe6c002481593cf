"""The training loop's pieces, with defaults that scale with the number of rows: `split_rows`,
`minibatches`, `schedule`, `EarlyStopping`, `train` and `update_average` (weights' moving average).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

logger = logging.getLogger(__name__)


def split_rows(x: torch.Tensor, share: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded (train, held-out) split holding out `share` of the rows (none when that rounds to 0)."""
    order = torch.randperm(len(x), generator=generator, device=x.device)
    cut = len(x) - int(share * len(x))
    return x[order[:cut]], x[order[cut:]]


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Row indices of one shuffled epoch, in batches; a last batch under half a batch is folded into the
    one before it, since a handful of rows makes a noisy step."""
    order = torch.randperm(n, generator=generator, device=generator.device)
    cuts = list(range(batch_size, n, batch_size))
    if cuts and n - cuts[-1] < batch_size // 2:
        cuts.pop()
    yield from torch.tensor_split(order, cuts)


def schedule(
    n_rows: int, steps: int, max_batch: int, min_batch: int = 64, min_epochs: int = 10, max_epochs: int = 300
) -> tuple[int, int]:
    """(batch size, epochs) giving about `steps` optimiser steps whatever the table size.

    Batches are a 20th of the rows within [`min_batch`, `max_batch`], so big tables train with wide,
    cheap batches; epochs fill the step budget within [`min_epochs`, `max_epochs`], so small tables see
    their rows many times and big ones few.
    """
    batch = max(1, min(n_rows, max(min_batch, min(max_batch, math.ceil(n_rows / 20)))))
    per_epoch = max(1, round(n_rows / batch))
    return batch, min(max_epochs, max(min_epochs, math.ceil(steps / per_epoch)))


class EarlyStopping:
    """Stops when a held-out loss has not improved by `min_delta` (relative) for `patience` checks and
    keeps a copy of the best weights, which `restore` puts back."""

    def __init__(self, patience: int, min_delta: float = 1e-3) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.waited = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def step(self, loss: float, module: nn.Module) -> bool:
        """Record one check; True when training should stop."""
        if loss < self.best - self.min_delta * abs(self.best if math.isfinite(self.best) else loss):
            self.best, self.waited = loss, 0
            self._best_state = copy.deepcopy(module.state_dict())
        else:
            self.waited += 1
        return self.waited >= self.patience

    def restore(self, module: nn.Module) -> nn.Module:
        """The module with its best recorded weights (unchanged if none was recorded)."""
        if self._best_state is not None:
            module.load_state_dict(self._best_state)
        return module


def train(
    module: nn.Module,
    batch_loss: Callable[[], torch.Tensor],
    held_out_loss: Callable[[], float] | None,
    *,
    epochs: int,
    per_epoch: int,
    learning_rate: float,
    weight_decay: float,
    patience: int,
    name: str,
) -> int:
    """Adam on `batch_loss` (the mean loss of a fresh batch, drawn by the caller), `per_epoch` steps an
    epoch, the learning rate decaying linearly to zero over all epochs, which at a fixed budget beats a
    constant rate. After each epoch `held_out_loss` is checked: training stops after `patience` epochs
    without improvement and the best weights come back. Returns the number of epochs run."""
    optimiser = torch.optim.Adam(module.parameters(), lr=learning_rate, weight_decay=weight_decay)
    total_steps = epochs * per_epoch + 1
    decay = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / total_steps)
    stopper = EarlyStopping(patience)
    epoch = 0
    while epoch < epochs:
        epoch += 1
        running = 0.0
        for _ in range(per_epoch):
            loss = batch_loss()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            decay.step()
            running += float(loss.detach())
        if held_out_loss is None:
            logger.info("%s: epoch %d/%d, loss %.4f", name, epoch, epochs, running / per_epoch)
            continue
        with torch.no_grad():
            held = held_out_loss()
        logger.info("%s: epoch %d/%d, loss %.4f, held-out %.4f", name, epoch, epochs, running / per_epoch, held)
        if stopper.step(held, module):
            break
    stopper.restore(module)
    return epoch


def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """Move `average`'s floating-point weights and statistics towards `model`'s by 1 - `decay`, in one
    fused kernel (an exponential moving average of the weights, as gan and ddpm keep)."""
    with torch.no_grad():
        pairs = [
            (a, m)
            for a, m in zip(average.state_dict().values(), model.state_dict().values(), strict=True)
            if a.dtype.is_floating_point
        ]
        torch._foreach_lerp_([a for a, _ in pairs], [m for _, m in pairs], 1 - decay)


