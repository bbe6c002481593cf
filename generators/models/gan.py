"""A conditional tabular GAN of the CTGAN family (Xu et al., 2019), built for speed on CPU.

What is CTGAN's: mode-specific normalisation (the shared encoder), a conditional vector with
training-by-sampling (a discrete column picked uniformly, one of its values by log-frequency, and real
rows drawn to match it), a PacGAN critic (packs of `pac` rows) trained with the WGAN-GP loss, and the
conditional cross-entropy that makes the generator honour its condition, which is what makes
`sample(conditions=...)` native here: no rejection.

What is ours, and why it is about ten times faster at better quality: conditions and matching rows are
drawn for the whole batch at once (CTGAN loops over rows in Python); each step's fake batch serves both
the critic's and the generator's update; a plain batch-norm MLP generator and a narrower critic; one-hot
outputs with a straight-through gradient instead of Gumbel-softmax noise (see `straight_through`), which
lets related columns come out related much sooner; the number of steps scales with the table; and every
few steps a cheap fidelity proxy compares a generated sample with held-out rows, so training stops when
it stops improving and keeps the best checkpoint of a moving average of the generator's weights.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from generators.base import Generator
from generators.nn.dp import DPConfig, SgdPlan, clamp_values, per_row_gradients, poisson_batch, private_step
from generators.nn.layers import ConditionVector, OutputLayout, column_major, init_weights, mlp
from generators.nn.training import EarlyStopping, split_rows, update_average
from generators.tabular.encoder import Condition, Span
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)

_SCORE_CHUNK = 4096  # rows scored at once (each becomes pac x discrete-columns critic inputs)
_REFERENCE_BATCH = 500  # CTGAN's batch size, at which `learning_rate` applies


@dataclass(frozen=True)
class GanConfig(DPConfig):
    """Hyper-parameters; the defaults need no tuning and scale with the table. With `dp_epsilon` set, see
    `DPConfig` and `GanGenerator._fit_private`.

    Training runs `epochs` passes over the training rows in batches of `batch_size` (a multiple of `pac`;
    smaller on small tables), bounded to [`min_steps`, `max_steps`] optimiser steps, so small tables still
    get enough updates and large ones a bounded time. Every `eval_every` steps `eval_rows` generated rows
    are compared with the `held_out` share of the rows; training stops after `patience` checks without
    improvement and keeps the best weights of the moving average (decay `ema`) of the generator.
    `learning_rate` applies at CTGAN's batch of 500 rows and grows with the square root of the batch.
    """

    embedding_dim: int = 128
    generator_dims: tuple[int, ...] = (256, 256)
    critic_dims: tuple[int, ...] = (128, 128)
    pac: int = 10
    batch_size: int = 1000
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 1e-6
    gradient_penalty: float = 10.0
    temperature: float = 0.2
    ema: float = 0.99
    epochs: int = 300
    min_steps: int = 1000
    max_steps: int = 3000
    held_out: float = 0.1
    eval_every: int = 100
    eval_rows: int = 5000
    patience: int = 10
    value_bins: int = 10

    def __post_init__(self) -> None:
        self.check_privacy("gan")
        sizes = (self.embedding_dim, self.pac, self.batch_size, self.epochs, *self.generator_dims, *self.critic_dims)
        if not self.generator_dims or not self.critic_dims or min(sizes) < 1:
            raise BadInputError("gan: embedding_dim, pac, batch_size, epochs and the layer sizes must be ≥ 1")
        if self.batch_size % self.pac:
            raise BadInputError("gan: batch_size must be a multiple of pac")
        if not 1 <= self.min_steps <= self.max_steps:
            raise BadInputError("gan: need 1 ≤ min_steps ≤ max_steps")
        if not 0.0 < self.held_out < 1.0 or not 0.0 <= self.ema < 1.0:
            raise BadInputError("gan: held_out must be in (0, 1) and ema in [0, 1)")
        if self.learning_rate <= 0 or self.temperature <= 0 or self.gradient_penalty < 0:
            raise BadInputError("gan: learning_rate and temperature must be > 0, gradient_penalty ≥ 0")
        if min(self.eval_every, self.eval_rows, self.patience, self.value_bins) < 1:
            raise BadInputError("gan: eval_every, eval_rows, patience and value_bins must be ≥ 1")


class _Generator(nn.Module):
    """Noise and conditional vector -> raw (pre-activation) encoded row: linear layers with batch norm and
    ReLU (CTGAN concatenates each block's input to its output; plain blocks learn as well here, for less
    compute)."""

    def __init__(self, inputs: int, dims: tuple[int, ...], outputs: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for dim in dims:
            layers += [nn.Linear(inputs, dim), nn.BatchNorm1d(dim), nn.ReLU()]
            inputs = dim
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(inputs, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class _Critic(nn.Module):
    """PacGAN critic: one score per pack of `pac` consecutive rows (each with its conditional vector), so it
    sees the spread of a few rows at once, which penalises a generator that collapses onto a few modes."""

    def __init__(self, inputs: int, dims: tuple[int, ...], pac: int) -> None:
        super().__init__()
        self.pac = pac
        self.net = mlp([inputs * pac, *dims, 1], activation=lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(len(x) // self.pac, -1)).squeeze(1)


class GanGenerator(Generator):
    """Conditional tabular GAN (CTGAN family): WGAN-GP, PacGAN, training-by-sampling, native conditioning."""

    name: ClassVar[str] = "gan"
    config_class: ClassVar[type[Any]] = GanConfig
    config: GanConfig
    generator_: _Generator
    critic_: _Critic

    def _fit(self, x: torch.Tensor, generator: torch.Generator) -> None:
        if self.config.dp_epsilon is not None:
            self._fit_private(x, generator)
            return
        cfg = self.config
        self._build(x.device)
        train, held_out = split_rows(x, cfg.held_out, generator)
        if not len(held_out):  # a handful of rows: compare with the training rows themselves
            held_out = train
        self.conditions_.fit(train)
        self.frequencies_ = slot_frequencies(self.conditions_, train)
        proxy = FidelityProxy(self._fitted_encoder().layout_, held_out, cfg.value_bins)
        for module in (self.generator_, self.critic_):
            init_weights(module, generator)
        average = copy.deepcopy(self.generator_).eval()  # only ever evaluated: batch norm uses its statistics
        batch = min(cfg.batch_size, cfg.pac * math.ceil(len(train) / cfg.pac))
        steps = min(max(cfg.epochs * math.ceil(len(train) / batch), cfg.min_steps), cfg.max_steps)
        lr = cfg.learning_rate * math.sqrt(batch / _REFERENCE_BATCH)
        optimisers = [
            torch.optim.Adam(m.parameters(), lr, cfg.betas, weight_decay=cfg.weight_decay, foreach=True)
            for m in (self.generator_, self.critic_)
        ]
        eval_seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        stopping = EarlyStopping(cfg.patience)
        logger.info(
            "gan: %d training rows, %d held out, batch %d, up to %d steps", len(train), len(held_out), batch, steps
        )
        for step in range(1, steps + 1):
            c_loss, g_loss = self._step(train, batch, optimisers, generator)
            update_average(average, self.generator_, min(cfg.ema, step / (step + 10)))  # early weights fade fast
            if step % cfg.eval_every and step != steps:
                continue
            distance = proxy.distance(self._generate(average, cfg.eval_rows, self._torch_generator(eval_seed)))
            logger.info(
                "gan: step %d/%d, critic loss %.3f, generator loss %.3f, held-out distance %.4f",
                step,
                steps,
                float(c_loss),
                float(g_loss),
                distance,
            )
            if stopping.step(distance, average):
                logger.info("gan: no improvement in %d checks, stopped at step %d", cfg.patience, step)
                break
        stopping.restore(average)
        self.generator_ = average
        self.critic_.eval()
        self.steps_ = step
        self.held_out_distance_ = stopping.best

    def _fit_private(self, x: torch.Tensor, generator: torch.Generator) -> None:
        """DP-SGD on the critic, the only network that reads real rows; the generator learns only through
        the critic, so its updates are post-processing. What differs from `_fit`, and why:

        - each step's real rows are a Poisson sample, and every real row is paired with one fake row made
          under the real row's own value of a randomly picked discrete column; the pair's WGAN-GP loss,
          gradient penalty included, depends on that row alone, so it is the unit whose gradient is
          clipped (the penalty's double backward is exact per pair under `torch.func`, see `generators.nn.dp`);
        - the critic scores single rows: a PacGAN pack mixes rows, and adding one row would reshuffle
          every pack after it, so `pac` is taken as 1;
        - the generator's conditions, and the slot frequencies sampling draws from, come from the encoder's
          noisy counts (training-by-sampling reads raw counts);
        - a fixed number of steps and the final moving average of the generator are kept: stopping and
          checkpoints chosen on held-out rows would spend budget."""
        cfg = self.config
        x = clamp_values(x, self._fitted_encoder().layout_)
        self._build(x.device)
        self.frequencies_ = noisy_slot_frequencies(self.conditions_, self._fitted_encoder().noisy_counts_, x.device)
        for module in (self.generator_, self.critic_):
            init_weights(module, generator)
        average = copy.deepcopy(self.generator_).eval()
        batch = min(cfg.batch_size, len(x))
        steps = min(max(cfg.epochs * math.ceil(len(x) / batch), cfg.min_steps), cfg.max_steps)
        plan = SgdPlan.plan(cfg, len(x), batch, steps)
        lr = cfg.learning_rate * math.sqrt(batch / _REFERENCE_BATCH)
        g_opt, c_adam = (
            torch.optim.Adam(m.parameters(), lr, cfg.betas, weight_decay=cfg.weight_decay)
            for m in (self.generator_, self.critic_)
        )
        c_opt = plan.optimiser(c_adam, generator)
        logger.info(
            "gan: DP-SGD on the critic, %d steps at sample rate %.4f, noise multiplier %.3f",
            steps,
            plan.sample_rate,
            plan.noise_multiplier,
        )

        def pair_loss(critic: _Critic, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
            return critic_pair_loss(critic, real, fake, alpha, cfg.gradient_penalty)

        for step in range(1, steps + 1):
            rows = poisson_batch(x, plan.sample_rate, generator)
            cond = self.conditions_.own_values(rows, generator)
            fake = self._fake(cond, generator)[1].detach()
            alpha = torch.rand(len(rows), 1, generator=generator, device=x.device)
            grads = per_row_gradients(self.critic_, pair_loss, torch.cat([rows, cond], 1), fake, alpha)
            private_step(c_opt, self.critic_, grads)
            slots = torch.multinomial(self.frequencies_, batch, replacement=True, generator=generator)
            cond = self.conditions_.one_hot(slots[:, None])
            raw, fake = self._fake(cond, generator)
            g_loss = -self.critic_(fake).mean() + conditional_loss(raw, cond, self.conditions_)
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            update_average(average, self.generator_, min(cfg.ema, step / (step + 10)))
        self.generator_ = average
        self.critic_.eval()
        self.steps_ = steps
        self.privacy_spent_ = plan.spent(steps)

    def _fake(self, cond: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's raw outputs under `cond`, and the fake rows with conditions as the critic reads them."""
        raw = self.generator_(self._noise(cond, generator))
        return raw, torch.cat([straight_through(raw, self.outputs_, self.config.temperature), cond], 1)

    def _step(
        self, train: torch.Tensor, batch: int, optimisers: Sequence[torch.optim.Optimizer], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One critic and one generator update on a training-by-sampling batch; the fake rows, drawn once,
        serve both. Returns the two losses (detached; read only when logged, so a GPU is never waited on)."""
        g_opt, c_opt = optimisers
        cond, rows = self.conditions_.sample(batch, generator)
        raw = self.generator_(self._noise(cond, generator))
        fake = torch.cat([straight_through(raw, self.outputs_, self.config.temperature), cond], 1)
        real = torch.cat([train[rows], cond], 1)
        c_loss = critic_loss(self.critic_, real, fake.detach(), self.config.gradient_penalty, generator)
        c_opt.zero_grad(set_to_none=True)
        c_loss.backward()
        c_opt.step()
        g_loss = -self.critic_(fake).mean() + conditional_loss(raw, cond, self.conditions_)
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        return c_loss.detach(), g_loss.detach()

    def _build(self, device: torch.device) -> None:
        """The output layout, the conditional vector and the two networks (weights not yet drawn)."""
        cfg = self.config
        encoder = self._fitted_encoder()
        self.outputs_ = OutputLayout(encoder.layout_, device)
        self.conditions_ = ConditionVector(encoder.layout_, device)
        inputs = cfg.embedding_dim + self.conditions_.width
        self.generator_ = _Generator(inputs, cfg.generator_dims, encoder.width_).to(device)
        pac = 1 if cfg.dp_epsilon is not None else cfg.pac  # see `_fit_private`
        self.critic_ = _Critic(encoder.width_ + self.conditions_.width, cfg.critic_dims, pac).to(device)

    def _noise(self, cond: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(len(cond), self.config.embedding_dim, generator=generator, device=cond.device)
        return torch.cat([z, cond], 1)

    @torch.no_grad()
    def _generate(
        self, model: _Generator, n: int, generator: torch.Generator, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Encoded rows from `model`; conditional vectors drawn as in the data unless given (a discrete column
        picked uniformly, its value by frequency), which undoes the log-frequency bias of training. The
        logits are computed column-major, which `hard_outputs` reads fastest."""
        if cond is None and not self.conditions_.columns:
            cond = torch.zeros(n, 0, device=self.device_)
        elif cond is None:
            slots = torch.multinomial(self.frequencies_, n, replacement=True, generator=generator)
            cond = self.conditions_.one_hot(slots[:, None])
        return hard_outputs(column_major(model.head, model.body(self._noise(cond, generator))), self.outputs_)

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self._generate(self.generator_, n, generator)

    def _sample_conditional(self, n: int, generator: torch.Generator, fixed: tuple[Condition, ...]) -> torch.Tensor:
        """Native conditioning: every requested value's slot is set in the conditional vector."""
        return self._generate(self.generator_, n, generator, self.conditions_.from_conditions(fixed, n))

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """The critic's score of a pack of copies of the row, averaged over the row's own values of every
        discrete column as the condition: higher looks more real."""
        pac = self.critic_.pac
        scores = []
        for chunk in x.split(_SCORE_CHUNK):
            slots = self.conditions_.slots(chunk)
            conds = [self.conditions_.one_hot(slots[:, j : j + 1]) for j in range(slots.shape[1])]
            per_condition = [
                self.critic_(torch.cat([chunk, c], 1).repeat_interleave(pac, 0))
                for c in conds or [chunk.new_zeros(len(chunk), 0)]
            ]
            scores.append(torch.stack(per_condition).mean(0))
        return torch.cat(scores)

    def _state(self) -> dict[str, Any]:
        return {
            **{f"generator.{k}": v for k, v in self.generator_.state_dict().items()},
            **{f"critic.{k}": v for k, v in self.critic_.state_dict().items()},
            "frequencies": self.frequencies_,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self._build(self.device_)
        self.frequencies_ = state["frequencies"]
        for prefix, module in (("generator.", self.generator_), ("critic.", self.critic_)):
            module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
            module.eval()


def slot_frequencies(conditions: ConditionVector, x: torch.Tensor) -> torch.Tensor:
    """Probability of each conditional-vector slot when a discrete column is picked uniformly and its value
    by its frequency in `x`: how conditions are drawn at sampling time."""
    slots = conditions.slots(x)
    counts = torch.bincount(slots[slots >= 0], minlength=conditions.width).to(x.dtype)
    column = torch.repeat_interleave(torch.arange(conditions.columns, device=x.device), conditions.widths)
    totals = torch.zeros(conditions.columns, dtype=x.dtype, device=x.device).index_add_(0, column, counts)
    return counts / totals[column].clamp_min(1) / max(conditions.columns, 1)


def noisy_slot_frequencies(conditions: ConditionVector, counts: dict[str, Any], device: torch.device) -> torch.Tensor:
    """`slot_frequencies` from the encoder's noisy counts (a DP fit's), uniform where a column's are all zero."""
    shares = []
    for span in conditions.spans:
        column = torch.as_tensor(counts[span.column], dtype=torch.float32, device=device)
        shares.append(column / column.sum() if column.sum() > 0 else torch.full_like(column, 1 / len(column)))
    if not shares:
        return torch.zeros(0, device=device)
    return torch.cat(shares) / len(shares)


def hard_outputs(logits: torch.Tensor, outputs: OutputLayout) -> torch.Tensor:
    """The encoded rows that raw generator outputs stand for, with no sampling: tanh values, 0/1 flags, and
    a one-hot of the largest logit of every group. Works on the transposed logits, group by group, so
    pass column-major logits (see `column_major`) to spare a transposing copy."""
    columns = logits.T.contiguous()
    out = torch.empty_like(columns)
    out[outputs.values] = columns[outputs.values].tanh()
    out[outputs.flags] = (columns[outputs.flags] > 0).to(out.dtype)
    for start, width in zip(outputs.starts.tolist(), outputs.widths.tolist(), strict=True):
        block = columns[start : start + width]
        torch.eq(block, block.amax(0, keepdim=True), out=out[start : start + width])  # faster than argmax(0)
    return out.T


def straight_through(raw: torch.Tensor, outputs: OutputLayout, temperature: float) -> torch.Tensor:
    """`hard_outputs` in the forward pass; in the backward one, the gradient of a softmax (of a sigmoid, for
    flags) at `temperature`.

    CTGAN adds Gumbel noise before its softmax instead, which draws each column's category with noise of
    its own: given the generator's hidden state, two columns are then independent, and related columns
    (Adult's relationship and marital status, education and its number) only come out related once the
    generator has learned logits sharp enough to drown the noise. Without the noise the input noise `z`
    carries all randomness, and related columns are related from the start."""
    soft = outputs.activate((raw / temperature).index_copy(1, outputs.values, raw[:, outputs.values]))
    return soft + (hard_outputs(raw.detach(), outputs) - soft).detach()


def critic_loss(
    critic: _Critic, real: torch.Tensor, fake: torch.Tensor, penalty: float, generator: torch.Generator
) -> torch.Tensor:
    """WGAN-GP critic loss: fake minus real scores, plus `penalty` times the squared distance from 1 of the
    gradient norm at random pack-wise interpolations between the real and fake rows."""
    loss = critic(fake).mean() - critic(real).mean()
    if not penalty:
        return loss
    packs, width = len(real) // critic.pac, real.shape[1]
    alpha = torch.rand(packs, 1, 1, generator=generator, device=real.device)
    mixed = torch.lerp(fake.view(packs, critic.pac, width), real.view(packs, critic.pac, width), alpha)
    mixed = mixed.view_as(real).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return loss + penalty * (grad.view(packs, -1).norm(dim=1) - 1).square().mean()


def critic_pair_loss(
    critic: _Critic, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, penalty: float
) -> torch.Tensor:
    """`critic_loss` of one (real, fake) pair (a critic with `pac` 1), summed, at interpolation `alpha`: the
    unit a DP fit clips. The penalty's gradient is taken with `torch.func` so the pair's loss can itself be
    differentiated per pair under `vmap`."""
    loss = critic(fake).sum() - critic(real).sum()
    if not penalty:
        return loss
    grad = torch.func.grad(lambda mixed: critic(mixed).sum())(torch.lerp(fake, real, alpha))
    return loss + penalty * (grad.norm() - 1).square()


def conditional_loss(raw: torch.Tensor, cond: torch.Tensor, conditions: ConditionVector) -> torch.Tensor:
    """Cross-entropy of the generator's output for each row's conditioned column against the requested value
    (the other columns are left free), averaged over the batch."""
    total = raw.new_zeros(())
    for span, offset in zip(conditions.spans, conditions.offsets.tolist(), strict=True):
        block = raw[:, span.start : span.stop]
        if span.role == "flag":
            log_probs = torch.cat([nn.functional.logsigmoid(-block), nn.functional.logsigmoid(block)], 1)
        else:
            log_probs = block.log_softmax(1)
        total = total - (log_probs * cond[:, offset : offset + log_probs.shape[1]]).sum()
    return total / len(raw)


class FidelityProxy:
    """A cheap held-out fidelity signal in the encoded space, for early stopping and checkpoint choice.

    Every span is discretised (one-hot groups by their argmax, flags at 0.5, values into quantile bins of
    the held-out rows) and one matrix product gives every pair of spans' contingency table. Like sdmetrics'
    quality, the distance averages two parts: shapes, the total-variation distance (TVD) of every span's
    marginal and of the joint of spans of one column (a number's mode and value); and pair trends, the TVD
    of the tables of spans of different columns that are associated in the held-out rows (Cramér's V above
    `association`): sdmetrics scores strongly related pairs only, and the many unrelated ones would bury them.
    """

    def __init__(self, layout: tuple[Span, ...], held_out: torch.Tensor, bins: int, association: float = 0.3) -> None:
        self.layout = layout
        device = held_out.device
        quantiles = torch.linspace(0, 1, bins + 1, device=device)[1:-1]
        self.edges = {
            s.start: torch.quantile(held_out[:, s.start], quantiles).contiguous() for s in layout if s.role == "value"
        }
        widths = torch.tensor([self._width(s) for s in layout], device=device)
        span_of = torch.repeat_interleave(torch.arange(len(layout), device=device), widths)
        self.spans = nn.functional.one_hot(span_of, len(layout)).to(held_out.dtype)  # discretised slot -> span
        self.target = self._joint(held_out)
        columns = {name: i for i, name in enumerate(dict.fromkeys(s.column for s in layout))}
        column = torch.tensor([columns[s.column] for s in layout], device=device)
        same = column[:, None] == column[None, :]
        upper = torch.ones_like(same).triu()
        self.shapes = same & upper
        self.pairs = ~same & upper & (self._association(self.target) > association)

    def _width(self, span: Span) -> int:
        if span.role == "value":
            return len(self.edges[span.start]) + 1
        return 2 if span.width == 1 else span.width

    def _joint(self, x: torch.Tensor) -> torch.Tensor:
        """Frequencies of every pair of discretised slots (marginals on the diagonal)."""
        blocks = []
        for span in self.layout:
            if span.role == "value":
                codes = torch.bucketize(x[:, span.start].contiguous(), self.edges[span.start])
            elif span.width == 1:
                codes = (x[:, span.start] > 0.5).long()
            else:
                codes = x[:, span.start : span.stop].argmax(1)
            blocks.append(nn.functional.one_hot(codes, self._width(span)).to(x.dtype))
        h = torch.cat(blocks, 1)
        return h.T @ h / len(h)

    def _association(self, joint: torch.Tensor) -> torch.Tensor:
        """Cramér's V of every pair of spans (span x span)."""
        marginal = joint.diagonal()
        expected = marginal[:, None] * marginal[None, :]
        phi2 = torch.where(expected > 0, (joint - expected).square() / expected.clamp_min(1e-12), 0.0)
        levels = self.spans.T @ (marginal > 0).to(joint.dtype)
        dof = torch.minimum(levels[:, None], levels[None, :]).sub(1).clamp_min(1)
        return (self.spans.T @ phi2 @ self.spans / dof).sqrt()

    def distance(self, x: torch.Tensor) -> float:
        """0 when the sample's discretised tables match the held-out rows', up to 1."""
        tvd = self.spans.T @ (self._joint(x) - self.target).abs() @ self.spans / 2  # span x span
        shapes = float(tvd[self.shapes].mean())
        return 0.5 * shapes + 0.5 * float(tvd[self.pairs].mean()) if bool(self.pairs.any()) else shapes
