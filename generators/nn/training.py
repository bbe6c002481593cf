"""The one training loop of the neural generators, and the vocabulary of its hyper-parameters.

`TrainingConfig` names every training hyper-parameter once (`steps`, `epochs`, `batch_size`, `learning_rate`,
`ema_decay`, `patience`, ...), and every neural model's config inherits it, so one idea has one name across
models. `train` runs any model's `Update`s (one optimiser each: a batch loss to backpropagate, closed-form
gradients, or DP-SGD's per-row gradients, see `generators.nn.dp.private_update`) on one budget, with one
learning-rate schedule, one moving average of the weights and one early stopping, and returns the model's
`History`. Budgets are counted in optimiser steps, never in seconds, so a seed gives the same model however
busy the machine is.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)

_MIN_BATCH = 64  # `batch_for`'s smallest batch: fewer rows make a noisy step
_EMA_WARMUP = 10  # the moving average's decay is at most step / (step + this): early weights fade fast

Module = TypeVar("Module", bound=nn.Module)


@dataclass(frozen=True)
class TrainingConfig:
    """The training hyper-parameters every neural generator has, by one name each.

    A model's config inherits them and sets its own defaults.

    A fit runs `epochs` passes over its training rows in batches of at most `batch_size` rows, but at most
    `steps` optimiser steps and at least `min_steps` (a floor that gives way to `steps`): small tables get
    enough updates, big ones a bounded time. Adam's `learning_rate` decays linearly to zero over the run
    (unless a model keeps it constant) with `weight_decay`; `ema_decay` > 0 keeps a moving average of the
    weights, which is what is evaluated and kept. Every `eval_every` steps (0: once an epoch) the loss on a
    `held_out` share of the rows is measured: after `patience` checks without improvement training stops
    (or anneals, see `train`).
    """

    steps: int = 2000
    epochs: int = 300
    min_steps: int = 0
    batch_size: int = 500
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.0
    held_out: float = 0.1
    eval_every: int = 0
    patience: int = 10

    def check_training(self, name: str) -> None:
        """Reject training settings out of range before a fit starts, naming the generator `name` in the error."""
        if min(self.steps, self.epochs, self.batch_size, self.patience) < 1:
            raise BadInputError(f"{name}: steps, epochs, batch_size and patience must be ≥ 1")
        if self.min_steps < 0 or self.eval_every < 0:
            raise BadInputError(f"{name}: min_steps and eval_every must be ≥ 0")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise BadInputError(f"{name}: learning_rate must be > 0 and weight_decay ≥ 0")
        if not 0.0 <= self.ema_decay < 1.0 or not 0.0 <= self.held_out < 1.0:
            raise BadInputError(f"{name}: ema_decay and held_out must be in [0, 1)")

    def plan(self, rows: int, batch: int) -> Plan:
        """The budget of a fit on `rows` training rows in batches of `batch`.

        An epoch is `batches_per_epoch` steps.
        """
        per_epoch = batches_per_epoch(rows, batch)
        steps = min(self.steps, max(self.min_steps, self.epochs * per_epoch))
        return Plan(steps, batch, per_epoch, self.eval_every or per_epoch)


@dataclass(frozen=True)
class Plan:
    """`steps` optimiser steps on batches of `batch` rows, `per_epoch` of them a pass over the training rows.

    The held-out loss is checked every `check_every` steps and after the last.
    """

    steps: int
    batch: int
    per_epoch: int
    check_every: int

    def epochs(self, steps: int) -> float:
        """Passes over the training rows that `steps` steps make."""
        return steps / self.per_epoch


@dataclass(frozen=True)
class History:
    """What a fit did: its checks, steps and epochs, whether it stopped early, and its best held-out loss.

    There is one record per check (`step`, `epoch`, `learning_rate`, the mean of each update's loss since the
    previous check, and `held_out`, None without one), the steps and epochs run of those planned, whether
    training stopped early, and the best held-out loss (None without checks). Non-neural models record their
    own iterations (EM's, the copula's sweeps) in the same form.
    """

    records: tuple[dict[str, Any], ...] = ()
    steps: int = 0
    planned_steps: int = 0
    epochs: float = 0.0
    stopped_early: bool = False
    best_held_out: float | None = None

    def to_state(self) -> dict[str, Any]:
        """Plain lists, dicts and numbers, as a model file holds them."""
        return {**dataclasses.asdict(self), "records": [dict(r) for r in self.records]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> History:
        """The history `to_state` wrote."""
        return cls(**{**state, "records": tuple(state["records"])})


@dataclass(frozen=True)
class Update:
    """One optimiser's move in a training step.

    `loss` draws its batch and returns the mean loss to backpropagate; or it writes the gradients itself
    (closed-form ones, DP-SGD's per-row ones) and returns a detached value to record, or None when nothing
    may be recorded (a DP fit's loss on private rows).
    """

    name: str
    optimiser: torch.optim.Optimizer
    loss: Callable[[], torch.Tensor | None]


class _Rate:
    """The learning-rate factor: a linear decay to zero over the planned steps (1 throughout when not `decaying`).

    Once `finish` is called, it decays from its value then to zero over the steps left.
    """

    def __init__(self, steps: int, decaying: bool) -> None:
        self.start, self.value, self.length, self.decaying = 0, 1.0, max(steps, 1), decaying

    def __call__(self, step: int) -> float:
        return self.value * max(0.0, 1 - (step - self.start) / self.length) if self.decaying else 1.0

    def finish(self, step: int, remaining: int) -> None:
        self.start, self.value, self.length, self.decaying = step, self(step), max(remaining, 1), True


def train(
    model: Module,
    updates: Sequence[Update],
    plan: Plan,
    *,
    held_out: Callable[[Module], float] | None = None,
    patience: int = 1,
    ema_decay: float = 0.0,
    decay: bool = True,
    anneal: bool = False,
    after_step: Callable[[], None] | None = None,
    name: str,
) -> tuple[Module, History]:
    """Run `plan.steps` steps of `updates`, in order; return the model to keep (in eval mode) and the `History`.

    The learning rates decay linearly to zero over the run (`decay`), which at a fixed budget beats a
    constant rate. With `ema_decay` > 0 an exponential moving average of `model`'s weights is kept (warmed
    up: its decay is at most step / (step + 10)), and it is what `held_out` evaluates and what comes back.
    Every `plan.check_every` steps `held_out` (a loss of the evaluated module, lower is better) is measured:
    after `patience` checks without improvement training stops and the best weights come back; or, with
    `anneal`, the learning rate is annealed to zero over `patience` more checks and training ends there,
    keeping the last weights (a model whose state must match its final weights, such as persistent chains,
    needs that). `after_step` runs after every step's updates (a model's projections).
    """
    average = copy.deepcopy(model).requires_grad_(False).eval() if ema_decay else model
    rate = _Rate(plan.steps, decay)
    schedules = [torch.optim.lr_scheduler.LambdaLR(u.optimiser, rate) for u in updates]
    stopping = EarlyStopping(patience)
    records: list[dict[str, Any]] = []
    totals: dict[str, torch.Tensor | None] = {u.name: None for u in updates}
    since, step, end, annealing = 0, 0, plan.steps, False
    while step < end:
        step += 1
        since += 1
        for update in updates:
            update.optimiser.zero_grad(set_to_none=True)
            loss = update.loss()
            if loss is not None and loss.requires_grad:
                loss.backward()
            update.optimiser.step()
            if loss is not None:
                total = totals[update.name]
                totals[update.name] = loss.detach() if total is None else total + loss.detach()
        for schedule in schedules:
            schedule.step()
        if after_step is not None:
            after_step()
        if average is not model:
            update_average(average, model, min(ema_decay, step / (step + _EMA_WARMUP)))
        if step % plan.check_every and step != end:
            continue
        held = None
        if held_out is not None:  # in eval mode: batch norm reads its statistics and leaves them be
            training = average.training
            with torch.no_grad():
                held = held_out(average.eval())
            average.train(training)
        record = {
            "step": step,
            "epoch": plan.epochs(step),
            "learning_rate": updates[0].optimiser.param_groups[0]["lr"],
            **{k: None if v is None else float(v) / since for k, v in totals.items()},
            "held_out": held,
        }
        records.append(record)
        logger.info("%s: %s", name, ", ".join(f"{k} {_number(v)}" for k, v in record.items() if v is not None))
        totals, since = dict.fromkeys(totals), 0
        if held is None or not stopping.step(held, None if anneal else average) or annealing:
            continue
        if not anneal:
            logger.info("%s: no held-out improvement in %d checks; stopped at step %d", name, patience, step)
            break
        annealing = True
        end = min(end, step + patience * plan.check_every)
        rate.finish(step, end - step)
        logger.info("%s: held-out plateau; annealing the learning rate to zero by step %d", name, end)
    if not anneal:
        stopping.restore(average)
    best = stopping.best if math.isfinite(stopping.best) else None
    history = History(tuple(records), step, plan.steps, plan.epochs(step), step < plan.steps, best)
    return average.eval(), history


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def split_rows(x: torch.Tensor, share: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded (train, held-out) split holding out `share` of the rows (none when that rounds to 0)."""
    order = torch.randperm(len(x), generator=generator, device=x.device)
    cut = len(x) - int(share * len(x))
    return x[order[:cut]], x[order[cut:]]


def batch_for(rows: int, batch_size: int) -> int:
    """A 20th of the rows within [64, `batch_size`] (and at most all of them).

    Big tables train with wide, cheap batches, small ones still take many steps an epoch.
    """
    return max(1, min(rows, max(_MIN_BATCH, min(batch_size, math.ceil(rows / 20)))))


def batches_per_epoch(n: int, batch_size: int) -> int:
    """The steps of an epoch, as `minibatches` cuts `n` rows (about n / `batch_size`).

    A last batch under half a batch is folded into the one before it, since a handful of rows makes a noisy
    step.
    """
    full, rest = divmod(n, batch_size)
    return full + (rest > 0 and rest >= batch_size // 2) if full else 1


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Row indices of one shuffled epoch, in `batches_per_epoch` batches."""
    order = torch.randperm(n, generator=generator, device=generator.device)
    cuts = list(range(batch_size, n, batch_size))[: batches_per_epoch(n, batch_size) - 1]
    yield from torch.tensor_split(order, cuts)


class EarlyStopping:
    """Stops when a held-out loss has not improved by `min_delta` (relative) for `patience` checks.

    It keeps a copy of the best weights, which `restore` puts back.
    """

    def __init__(self, patience: int, min_delta: float = 1e-3) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.waited = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def step(self, loss: float, module: nn.Module | None) -> bool:
        """Record one check (and a copy of `module`'s weights when it improves); True when training should stop."""
        if loss < self.best - self.min_delta * abs(self.best if math.isfinite(self.best) else loss):
            self.best, self.waited = loss, 0
            if module is not None:
                self._best_state = copy.deepcopy(module.state_dict())
        else:
            self.waited += 1
        return self.waited >= self.patience

    def restore(self, module: nn.Module) -> nn.Module:
        """The module with its best recorded weights (unchanged if none was recorded)."""
        if self._best_state is not None:
            module.load_state_dict(self._best_state)
        return module


def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """Move `average`'s floating-point weights and statistics towards `model`'s by 1 - `decay`.

    This is an exponential moving average of the weights, updated in one fused kernel.
    """
    with torch.no_grad():
        pairs = [
            (a, m)
            for a, m in zip(average.state_dict().values(), model.state_dict().values(), strict=True)
            if a.dtype.is_floating_point
        ]
        torch._foreach_lerp_([a for a, _ in pairs], [m for _, m in pairs], 1 - decay)
