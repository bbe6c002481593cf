"""Diffusion for mixed-type tables in the TabDDPM family (Kotelnikov et al. 2023), sized to train on a CPU.

Value columns diffuse as Gaussians; every one-hot group (categories, numeric modes, and boolean and null
flags as two-class groups) diffuses as a multinomial (Hoogeboom et al. 2021). One MLP, told the timestep,
predicts the Gaussian noise and the clean one-hot's logits; the loss is the Gaussian MSE plus the KL between
the true and the predicted multinomial posteriors (plus a weighted cross-entropy on the predicted x_0, which
has the same optimum and teaches the columns' joint structure many times faster). Both parts share a cosine
schedule of few steps, so a fit is minutes on a CPU: the training length and the network scale with the
table, AdamW's rate decays to zero, and the weights kept are those (an exponential average) with the lowest
loss on held-out rows.

Conditioning is native, by a twisted sequential Monte Carlo sampler (Wu et al. 2023): every row of a batch
is a particle, weighted at each reverse step by the network's own belief that it ends with the requested
values (its predicted p(x_0 | x_t) of those groups, which it computes anyway) and resampled when the weights
grow uneven. Rows are steered towards the condition from the start and the other columns follow it as the
model has learnt them, so a rare class comes out without rejection and without a separately trained model.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from generators.base import Generator
from generators.nn.layers import init_weights, mlp
from generators.nn.training import History, TrainingConfig, Update, split_rows, train
from generators.registry import register
from generators.tabular.encoder import Condition, Span
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)

_STD_FLOOR = 1e-3  # value columns with a smaller spread (a constant) are not blown up by standardising
_MAX_BETA = 0.999
_EVAL_ROWS = 4_096  # held-out rows the early-stopping loss is measured on
_EVAL_TIMESTEPS = 8  # timesteps, evenly spread, each held-out row is noised at
_MAX_BATCH_ROWS = 32_768  # rows pushed through the network at once when sampling and scoring
_MAX_WIDTH, _DEPTH = 512, 4  # the network's hidden layers when `hidden` is empty: at most this wide, this many


@dataclass(frozen=True)
class DiffusionConfig(TrainingConfig):
    """Hyper-parameters; the defaults need no tuning and scale with the table.

    `timesteps` is the length of the diffusion chain, `sample_steps` how many of them the reverse chain
    visits (evenly strided; 0 = all). `hidden` are the MLP's layer widths (empty: four layers of twice the
    encoded width, rounded up to 64 and at most 512). Training (see `TrainingConfig`)
    runs `epochs` passes over the rows within [`min_steps`, `steps`] batches of `batch_size` (an eighth of the
    rows on smaller tables), with AdamW (decoupled `weight_decay`). `cross_entropy` weighs a cross-entropy on
    the model's p(x_0 | x_t) of each group beside the multinomial KL: both have the same optimum, but the KL
    barely moves the prediction at high noise, so without it the columns' joint structure is learnt many
    times slower. Every `eval_every` steps the loss on a `held_out` share of rows is measured with the
    averaged weights (`ema_decay`); training stops after `patience` checks without improvement and keeps the
    best weights. The budget is in steps, never in seconds, so a seed gives the same model on a busy machine:
    the default 2,400 steps are what a fit of the full Adult table ran when it was bounded by a time limit
    (about 200 s on 2 CPU cores; BENCHMARKS.md). `score_timesteps` are the fractions of the chain at which
    `score` measures each row's denoising loss.
    """

    timesteps: int = 100
    sample_steps: int = 50
    hidden: tuple[int, ...] = ()
    batch_size: int = 2_048
    steps: int = 2_400
    min_steps: int = 500
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    ema_decay: float = 0.99
    cross_entropy: float = 12.0
    eval_every: int = 120
    patience: int = 5
    score_timesteps: tuple[float, ...] = (0.05, 0.15, 0.3, 0.5)

    def __post_init__(self) -> None:
        self.check_training("ddpm")
        if self.timesteps < 2 or self.sample_steps < 0:
            raise BadInputError("ddpm: timesteps must be ≥ 2 and sample_steps ≥ 0")
        if self.hidden and min(self.hidden) < 1:
            raise BadInputError("ddpm: hidden layer widths must be ≥ 1 (or none: scaled to the table)")
        if not self.score_timesteps or not all(0.0 < f <= 1.0 for f in self.score_timesteps):
            raise BadInputError("ddpm: score_timesteps must be fractions of the chain in (0, 1]")
        if self.cross_entropy < 0:
            raise BadInputError("ddpm: cross_entropy must be ≥ 0")


class _Groups:
    """One-hot groups side by side in a flat n x slots matrix, with the group-wise operations diffusion needs.

    Every operation is a few flat scatter/gather calls, whatever the group sizes: a padded n x groups x
    largest-group view would cost several times more when one column has many categories.
    """

    def __init__(self, sizes: list[int], device: torch.device) -> None:
        self.sizes = sizes
        counts = torch.tensor(sizes, dtype=torch.long, device=device)
        self.starts = counts.cumsum(0) - counts
        self.group = torch.repeat_interleave(torch.arange(len(sizes), device=device), counts)
        self.k = counts.to(torch.float32)[self.group]  # the size of each slot's group
        self.log_k = self.k.log()

    def __len__(self) -> int:
        return len(self.sizes)

    def spread(self, per_group: torch.Tensor) -> torch.Tensor:
        """Each group's value repeated over its slots: n x groups -> n x slots.

        Uses index_select: much faster on a CPU than advanced indexing.
        """
        return per_group.index_select(1, self.group)

    def max(self, flat: torch.Tensor) -> torch.Tensor:
        """Each group's maximum, n x groups (no gradient)."""
        top = torch.full((len(flat), len(self)), -math.inf, dtype=flat.dtype, device=flat.device)
        return top.scatter_reduce_(1, self.group.expand(len(flat), -1), flat.detach(), "amax")

    def sum(self, flat: torch.Tensor) -> torch.Tensor:
        """Each group's sum, n x groups."""
        return torch.zeros(len(flat), len(self), dtype=flat.dtype, device=flat.device).index_add_(1, self.group, flat)

    def log_blend(self, onehot: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """log(keep · onehot + (1 - keep)/K): a one-hot kept with probability `keep`, else resampled uniformly."""
        return torch.log(keep * onehot + (1 - keep) / self.k)

    def logsumexp(self, flat: torch.Tensor) -> torch.Tensor:
        """Each group's log-sum-exp, n x groups."""
        top = self.max(flat)
        return top + self.sum((flat - self.spread(top)).exp()).log()

    def log_normalise(self, flat: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (or logits) normalised within each group."""
        return flat - self.spread(self.logsumexp(flat))

    def sample(self, log_probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One category per group (Gumbel-max), as a flat one-hot."""
        u = torch.rand(log_probs.shape, generator=generator, dtype=log_probs.dtype, device=log_probs.device)
        scores = log_probs - (-u.clamp_min(1e-20).log()).log()
        hit = scores == self.spread(self.max(scores))
        # Keep each group's first hit, should two scores tie exactly.
        seen = hit.cumsum(dim=1)
        before = torch.cat([torch.zeros_like(seen[:, :1]), seen], dim=1).index_select(1, self.starts)
        return (hit & (seen - self.spread(before) == 1)).to(log_probs.dtype)


@dataclass(frozen=True, eq=False)
class _Layout:
    """Where the diffusion's two parts come from in the encoded matrix, and how to put them back.

    Gaussian part: the `value` columns, standardised. Multinomial part: one group per `mode` and `category`
    span, and a two-class group (off, on) per `flag` and `null` column.
    """

    values: torch.Tensor  # encoded column of each Gaussian dimension
    sources: torch.Tensor  # encoded column of each multinomial slot
    flipped: torch.Tensor  # slots that hold 1 - the encoded column (the "off" class of a flag)
    groups: _Groups
    group_of_span: dict[int, int]  # encoded span start -> its group

    @classmethod
    def of(cls, spans: tuple[Span, ...], device: torch.device) -> _Layout:
        values = [s.start for s in spans if s.role == "value"]
        sources: list[int] = []
        flipped: list[bool] = []
        sizes: list[int] = []
        group_of_span: dict[int, int] = {}
        for span in spans:
            if span.role == "value":
                continue
            group_of_span[span.start] = len(sizes)
            if span.role in ("flag", "null"):
                sources += [span.start, span.start]
                flipped += [True, False]
                sizes.append(2)
            else:
                sources += range(span.start, span.stop)
                flipped += [False] * span.width
                sizes.append(span.width)

        def tensor(items: list[Any], dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(items, dtype=dtype, device=device)

        return cls(
            tensor(values, torch.long),
            tensor(sources, torch.long),
            tensor(flipped, torch.bool),
            _Groups(sizes, device),
            group_of_span,
        )

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded rows -> (raw value columns, flat one-hots).

        A group left all zero (a category unseen in training) becomes uniform, so such rows still score, and
        score as atypical.
        """
        onehot = x.index_select(1, self.sources)
        onehot = torch.where(self.flipped, 1.0 - onehot, onehot)
        empty = self.groups.sum(onehot) == 0
        onehot = onehot + self.groups.spread(empty.to(x.dtype)) / self.groups.k
        return x.index_select(1, self.values), onehot

    def join(self, values: torch.Tensor, onehot: torch.Tensor, width: int) -> torch.Tensor:
        out = torch.zeros(len(values), width, dtype=values.dtype, device=values.device)
        out[:, self.values] = values
        kept = ~self.flipped
        out[:, self.sources[kept]] = onehot[:, kept]
        return out

    def wanted(self, fixed: tuple[Condition, ...], spans: tuple[Span, ...]) -> torch.Tensor:
        """The multinomial slots the `fixed` values occupy; a fixed flag's null flag must be off."""
        pinned: list[tuple[int, int]] = []
        for condition in fixed:
            pinned.append((condition.span.start, condition.index))
            if condition.span.role == "flag":
                pinned += [(s.start, 0) for s in spans if s.column == condition.span.column and s.role == "null"]
        slots = [int(self.groups.starts[self.group_of_span[start]]) + index for start, index in pinned]
        return torch.tensor(slots, dtype=torch.long, device=self.sources.device)


def cosine_alpha_bars(timesteps: int) -> torch.Tensor:
    """ᾱ_0..ᾱ_T of the cosine schedule (Nichol & Dhariwal 2021), each step's β capped so ᾱ_T stays > 0."""
    s = 0.008
    f = torch.cos((torch.linspace(0, 1, timesteps + 1, dtype=torch.float64) + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=_MAX_BETA)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, dim=0)])


def gaussian_posterior(
    x0: torch.Tensor, xt: torch.Tensor, bar_t: torch.Tensor, bar_s: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_s | x_t, x_0) for s < t (any stride); ᾱ as n x 1 columns."""
    alpha = bar_t / bar_s
    mean = (bar_s.sqrt() * (1 - alpha) * x0 + alpha.sqrt() * (1 - bar_s) * xt) / (1 - bar_t)
    return mean, (1 - alpha) * (1 - bar_s) / (1 - bar_t)


def multinomial_posterior(
    log_x0: torch.Tensor, xt: torch.Tensor, bar_t: torch.Tensor, bar_s: torch.Tensor, groups: _Groups
) -> torch.Tensor:
    """The multinomial posterior log q(x_s | x_t, x_0) for s < t.

    With x_0 given as (log-)probabilities and x_t as a one-hot, it is
    ∝ (α x_t + (1 - α)/K) ⊙ (ᾱ_s x_0 + (1 - ᾱ_s)/K) with α = ᾱ_t / ᾱ_s, normalised in each group.
    """
    from_0 = torch.logaddexp(bar_s.log() + log_x0, torch.log1p(-bar_s) - groups.log_k)
    return groups.log_normalise(groups.log_blend(xt, bar_t / bar_s) + from_0)


def x0_belief(log_x0: torch.Tensor, xt: torch.Tensor, bar_t: torch.Tensor, groups: _Groups) -> torch.Tensor:
    """The model's log p(x_0 | x_t): its predicted x_0 weighed by how likely each class makes x_t, q(x_t | x_0).

    The predicted x_0 that enters `multinomial_posterior` is not itself p(x_0 | x_t): the reverse step it
    gives equals the mixture of true posteriors under this belief, which is what makes a cross-entropy on
    the belief share the KL's optimum.
    """
    return groups.log_normalise(log_x0 + groups.log_blend(xt, bar_t))


def multinomial_kl(log_q: torch.Tensor, log_p: torch.Tensor, groups: _Groups) -> torch.Tensor:
    """KL(q || p) per row and group; at s = 0 it is the decoder's negative log-likelihood."""
    return groups.sum(log_q.exp() * (log_q - log_p))


def multinomial_cross_entropy(onehot: torch.Tensor, log_p: torch.Tensor, groups: _Groups) -> torch.Tensor:
    """Cross-entropy of the true classes under `log_p`, per row and group."""
    return -groups.sum(onehot * log_p)


def gaussian_mse(predicted: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per-row mean squared error of the predicted noise."""
    return (predicted - noise).square().mean(dim=1)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of (integer) timesteps, as in the transformer and DDPM."""
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    angles = t.to(torch.float32)[:, None] * frequencies
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class _Twist:
    """Sequential Monte Carlo over a batch of rows, steering them towards a condition.

    Log-weights track the change in a twisting function (the belief that a row meets the condition), with
    systematic resampling when the effective sample size drops under half the batch, and always at the end.
    """

    def __init__(self, size: int, device: torch.device) -> None:
        self.log_weight = torch.zeros(size, device=device)
        self.previous = torch.zeros(size, device=device)

    def update(self, twist: torch.Tensor, generator: torch.Generator, final: bool = False) -> torch.Tensor:
        """Row indices to carry on with (ancestors after resampling, or all rows in order)."""
        self.log_weight += twist - self.previous
        self.previous = twist
        size = len(twist)
        weight = torch.softmax(self.log_weight, dim=0)
        if not weight.isfinite().all() or (not final and 1 / weight.square().sum() >= size / 2):
            return torch.arange(size, device=twist.device)  # no row meets the condition, or weights still even
        start = torch.rand(1, generator=generator, device=twist.device)
        positions = (start + torch.arange(size, device=twist.device)) / size
        keep = torch.searchsorted(weight.cumsum(dim=0), positions).clamp_max(size - 1)
        self.log_weight.zero_()
        self.previous = twist[keep]
        return keep


class _Denoiser(nn.Module):
    """MLP on (x_t, timestep embedding) -> (Gaussian noise, multinomial x_0 logits), TabDDPM's shape.

    The input and the embedded timestep meet in the first of the `hidden` layers.
    """

    def __init__(self, d: int, hidden: tuple[int, ...], time_dim: int = 128) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.time = mlp([time_dim, hidden[0], hidden[0]], activation=nn.SiLU)
        self.input = nn.Linear(d, hidden[0])
        self.body = mlp([*hidden, d], activation=nn.SiLU)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # Embedded once per distinct timestep: a batch holds at most a few hundred of them.
        steps, index = t.unique(return_inverse=True)
        h = self.input(x) + self.time(timestep_embedding(steps, self.time_dim))[index]
        return self.body(nn.functional.silu(h))


@register
class TabularDiffusion(Generator):
    """TabDDPM-style diffusion: Gaussian for values, multinomial for categories; slow to fit, high fidelity."""

    name: ClassVar[str] = "ddpm"
    config_class: ClassVar[type[Any]] = DiffusionConfig
    config: DiffusionConfig
    model_: _Denoiser

    def _fit(self, x: torch.Tensor, generator: torch.Generator) -> History:
        cfg = self.config
        self._prepare(x.shape[1])
        values, onehot = self.layout_.split(x)
        self.mean_ = values.mean(dim=0)
        self.std_ = (values - self.mean_).square().mean(dim=0).sqrt().clamp_min(_STD_FLOOR)
        values = (values - self.mean_) / self.std_
        self.low_, self.high_ = values.min(dim=0).values, values.max(dim=0).values
        data = torch.cat([values, onehot], dim=1)
        train_rows, held_out = split_rows(data, cfg.held_out, generator)
        held_out = held_out[:_EVAL_ROWS]
        width = min(_MAX_WIDTH, 64 * math.ceil(2 * x.shape[1] / 64))
        plan = cfg.plan(len(train_rows), min(cfg.batch_size, max(64, len(train_rows) // 8)))
        self.model_ = self._network(cfg.hidden or (width,) * _DEPTH)
        init_weights(self.model_, generator)
        self._start_at_marginals(train_rows)
        optimiser = torch.optim.AdamW(
            self.model_.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True
        )  # fused: one kernel for all tensors, about 4x faster than the default loop on a CPU
        # Fixed noise and timesteps for the held-out loss, so evaluations are comparable.
        eval_seed = int(torch.randint(2**62, (1,), generator=generator, device=self.device_))
        eval_generator = torch.Generator(device=self.device_).manual_seed(eval_seed)
        t_grid = torch.linspace(1, cfg.timesteps, _EVAL_TIMESTEPS, device=self.device_).round().long()
        eval_rows = held_out.repeat(_EVAL_TIMESTEPS, 1)
        eval_t = t_grid.repeat_interleave(len(held_out))
        eval_noise = self._noise(eval_rows, eval_t, eval_generator)

        def batch_loss() -> torch.Tensor:
            rows = train_rows[torch.randint(len(train_rows), (plan.batch,), generator=generator, device=x.device)]
            t = torch.randint(1, cfg.timesteps + 1, (plan.batch,), generator=generator, device=x.device)
            return self._loss(self.model_, rows, t, self._noise(rows, t, generator)).mean()

        def held_out_loss(average: _Denoiser) -> float:
            return self._loss(average, eval_rows, eval_t, eval_noise).mean().item()

        self.model_, history = train(
            self.model_,
            [Update("loss", optimiser, batch_loss)],
            plan,
            held_out=held_out_loss if len(held_out) else None,
            patience=cfg.patience,
            ema_decay=cfg.ema_decay,
            name="ddpm",
        )
        return history

    def _network(self, hidden: tuple[int, ...]) -> _Denoiser:
        return _Denoiser(self.n_values_ + len(self.layout_.flipped), hidden).to(self.device_)

    def _start_at_marginals(self, train: torch.Tensor) -> None:
        """Zero the output layer and set the logits' biases to the log frequencies.

        The untrained network then predicts no noise and every column's marginal: training starts at the right
        column shapes.
        """
        last = self.model_.body[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
            last.bias[self.n_values_ :] = train[:, self.n_values_ :].mean(dim=0).clamp_min(1e-6).log()

    def _prepare(self, width: int) -> None:
        """What follows from the encoder's layout and the config: the layout and the schedule."""
        self.width_ = width
        self.layout_ = _Layout.of(self.encoder_.layout_, self.device_)
        self.bars_ = cosine_alpha_bars(self.config.timesteps).to(self.device_)
        self.n_values_ = len(self.layout_.values)

    def _noise(
        self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(Gaussian noise, multinomial x_t) drawn from q(x_t | x_0)."""
        bar = self.bars_[t][:, None].to(x0.dtype)
        values, onehot = x0[:, : self.n_values_], x0[:, self.n_values_ :]
        noise = torch.randn(values.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        groups = self.layout_.groups
        return noise, groups.sample(groups.log_blend(onehot, bar), generator) if len(groups) else onehot

    def _denoise(
        self, model: nn.Module, values: torch.Tensor, onehot: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted Gaussian noise, predicted x_0 log-probabilities) from x_t."""
        out = model(torch.cat([values, onehot], dim=1), t)
        return out[:, : self.n_values_], self.layout_.groups.log_normalise(out[:, self.n_values_ :])

    def _loss(
        self, model: nn.Module, x0: torch.Tensor, t: torch.Tensor, noised: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Per-row Gaussian MSE plus multinomial KL and weighted cross-entropy, averaged over groups, at `t`."""
        noise, xt_onehot = noised
        groups = self.layout_.groups
        bar_t = self.bars_[t][:, None].to(x0.dtype)
        values, onehot = x0[:, : self.n_values_], x0[:, self.n_values_ :]
        xt_values = bar_t.sqrt() * values + (1 - bar_t).sqrt() * noise
        predicted_noise, log_x0 = self._denoise(model, xt_values, xt_onehot, t)
        loss = gaussian_mse(predicted_noise, noise) if self.n_values_ else torch.zeros_like(x0[:, 0])
        if len(groups):
            bar_s = self.bars_[t - 1][:, None].to(x0.dtype)
            log_q = multinomial_posterior(onehot.clamp_min(1e-30).log(), xt_onehot, bar_t, bar_s, groups)
            log_p = multinomial_posterior(log_x0, xt_onehot, bar_t, bar_s, groups)
            per_group = multinomial_kl(log_q, log_p, groups)
            if self.config.cross_entropy:
                cross_entropy = multinomial_cross_entropy(onehot, x0_belief(log_x0, xt_onehot, bar_t, groups), groups)
                per_group = per_group + self.config.cross_entropy * cross_entropy
            loss = loss + per_group.mean(dim=1)
        return loss

    def _reverse(self, n: int, generator: torch.Generator, fixed: tuple[Condition, ...] = ()) -> torch.Tensor:
        """Rows, `n` of them, from the reverse chain (strided to `sample_steps`).

        They are drawn in batches of particles twisted towards the `fixed` values.
        """
        cfg = self.config
        steps = min(cfg.sample_steps or cfg.timesteps, cfg.timesteps)
        path = torch.linspace(cfg.timesteps, 0, steps + 1).round().long().unique_consecutive().tolist()
        groups = self.layout_.groups
        wanted = self.layout_.wanted(fixed, self.encoder_.layout_)
        out = []
        for size in (len(rows) for rows in torch.arange(n).split(_MAX_BATCH_ROWS)):
            values = torch.randn(size, self.n_values_, generator=generator, device=self.device_)
            onehot = groups.sample(-groups.log_k.repeat(size, 1), generator)
            twist = _Twist(size, self.device_)
            for t, s in itertools.pairwise(path):
                bar_t, bar_s = self.bars_[t].float(), self.bars_[s].float()
                noise, log_x0 = self._denoise(self.model_, values, onehot, torch.full((size,), t, device=self.device_))
                if len(wanted):
                    belief = x0_belief(log_x0, onehot, bar_t, groups).index_select(1, wanted).sum(dim=1)
                    keep = twist.update(belief, generator)
                    values, onehot, noise, log_x0 = values[keep], onehot[keep], noise[keep], log_x0[keep]
                x0 = torch.clamp((values - (1 - bar_t).sqrt() * noise) / bar_t.sqrt(), self.low_, self.high_)
                mean, variance = gaussian_posterior(x0, values, bar_t, bar_s)
                values = mean + variance.sqrt() * torch.randn(values.shape, generator=generator, device=self.device_)
                if len(groups):
                    onehot = groups.sample(multinomial_posterior(log_x0, onehot, bar_t, bar_s, groups), generator)
            if len(wanted):
                met = onehot.index_select(1, wanted).all(dim=1)
                keep = twist.update(torch.where(met, 0.0, -math.inf), generator, final=True)
                values, onehot = values[keep], onehot[keep]
            out.append(self.layout_.join(values * self.std_ + self.mean_, onehot, self.width_))
        return torch.cat(out)

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self._reverse(n, generator)

    def _sample_conditional(self, n: int, generator: torch.Generator, fixed: tuple[Condition, ...]) -> torch.Tensor:
        return self._reverse(n, generator, fixed)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """Minus the denoising loss, averaged over `score_timesteps` with noise fixed by the seed: an ELBO proxy."""
        generator = self._torch_generator(self.seed)
        values, onehot = self.layout_.split(x)
        data = torch.cat([(values - self.mean_) / self.std_, onehot], dim=1)
        losses = []
        for fraction in self.config.score_timesteps:
            for rows in data.split(_MAX_BATCH_ROWS):
                t = torch.full((len(rows),), max(1, round(fraction * self.config.timesteps)), device=self.device_)
                losses.append(self._loss(self.model_, rows, t, self._noise(rows, t, generator)))
        return -torch.cat(losses).view(len(self.config.score_timesteps), len(x)).mean(dim=0)

    def _state(self) -> dict[str, Any]:
        weights = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        return {
            **weights,
            "width": self.width_,
            "hidden": [layer.in_features for layer in self.model_.body if isinstance(layer, nn.Linear)],
            "mean": self.mean_,
            "std": self.std_,
            "low": self.low_,
            "high": self.high_,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self._prepare(int(state["width"]))
        self.mean_, self.std_, self.low_, self.high_ = state["mean"], state["std"], state["low"], state["high"]
        self.model_ = self._network(tuple(state["hidden"]))
        self.model_.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        self.model_.eval()
