"""A restricted Boltzmann machine on the encoded table, trained by persistent contrastive divergence.

Visible units follow the encoder's spans: Gaussian units with learned variances for the mode-normalised
numbers (standardised within their mode first, so a spike keeps its values on the spike), softmax units for
every one-hot group (modes and categories), Bernoulli units for flags; the hidden units are Bernoulli.
Everything the model knows is in one weight matrix between the two layers, so a row's free energy is
closed-form (its negative is the score) and Gibbs sampling alternates two matrix products.

Training follows the free energy's gradient (closed form, centred on the data's and the hidden units'
means, which conditions it far better) with the model's statistics taken from persistent chains (PCD:
fantasy particles that keep moving between updates, all of them vectorised on the device). Once the
held-out rows' pseudo-log-likelihood of their discrete units stops improving, the learning rate is
annealed to zero and training ends (each update is one step of the shared loop, `generators.nn.training.train`,
whose update writes the closed-form gradient itself). Sampling continues the fantasy particles in many
parallel chains: a burn-in, then one draw every few sweeps; conditions are native, by clamping the
conditioned units.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from generators.base import Generator
from generators.nn.layers import OutputLayout
from generators.nn.training import History, TrainingConfig, Update, batch_for, minibatches, split_rows, train
from generators.registry import register
from generators.tabular.encoder import Condition
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)

_HELD_OUT_ROWS = (64, 500)  # the pseudo-log-likelihood's held-out rows: fewer for wide tables, within these
_PLL_COST = 2**27  # rows x discrete units x hidden units of one pseudo-log-likelihood evaluation
_BLOCK = 2**22  # elements of the largest tensor the pseudo-log-likelihood builds
_MIN_PATIENCE_STEPS = 500  # tiny tables have tiny epochs: wait at least this many updates for a gain
_OFFSET_RATE = 0.01  # of the hidden offset's running mean
_LOG_VARIANCE_RANGE = (math.log(1e-2), math.log(4.0))  # of the standardised Gaussian units


@dataclass(frozen=True)
class RBMConfig(TrainingConfig):
    """Hyper-parameters; the defaults need no tuning and scale with the table.

    `hidden`: the one hidden layer's units, as a one-item list (empty: twice the encoded width, at most 512
    and an eighth of the rows, at least 64). Training (see `TrainingConfig`): batches are a 20th of the rows
    within [64, `batch_size`], each update after `gibbs_steps` sweeps of `chains` persistent chains (0: twice
    the batch); the learning rate decays linearly to zero; once the pseudo-log-likelihood of the `held_out`
    rows has not improved for `patience` epochs (and at least 500 updates), it is annealed to zero over as
    many epochs again and training ends. Sampling runs up to `sample_chains` chains started from the
    persistent ones: `burn_in` sweeps, then a draw every `thinning` sweeps.
    """

    hidden: tuple[int, ...] = ()
    steps: int = 4000
    batch_size: int = 256
    chains: int = 0
    gibbs_steps: int = 1
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    burn_in: int = 50
    thinning: int = 5
    sample_chains: int = 4096

    def __post_init__(self) -> None:
        self.check_training("rbm")
        if len(self.hidden) > 1 or min(self.hidden, default=1) < 1:
            raise BadInputError("rbm: hidden is one layer: a list of one size ≥ 1 (or empty: scaled to the table)")
        if self.chains < 0:
            raise BadInputError("rbm: chains must be ≥ 0 (0 scales them with the batch)")
        if min(self.gibbs_steps, self.sample_chains) < 1:
            raise BadInputError("rbm: gibbs_steps and sample_chains must be ≥ 1")
        if self.burn_in < 0 or self.thinning < 1:
            raise BadInputError("rbm: burn_in must be ≥ 0 and thinning ≥ 1")


class _RBM(nn.Module):
    """A centred RBM: biases, weights, the Gaussian units' log-variances, and the offsets μ, λ.

    p(h | v) = sigmoid(c + (ṽ − μ)W), with ṽ the visible row whose Gaussian units are divided by their
    variance (Cho et al. 2011's parametrisation, in which a learned σ stays stable); p(v | h) has
    logits b + W(h − λ) for the discrete units and is N(b_g + (W(h − λ))_g, σ_g²) for a Gaussian one.
    Centring on the data's mean μ and the hidden units' running mean λ (Melchior et al. 2016) changes
    nothing the model can express, but conditions its gradient far better.
    """

    gaussian: torch.Tensor
    visible_offset: torch.Tensor
    hidden_offset: torch.Tensor

    def __init__(self, visible: int, hidden: int, gaussian: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(visible, hidden))
        self.visible_bias = nn.Parameter(torch.zeros(visible))
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))
        self.log_variance = nn.Parameter(torch.zeros(len(gaussian)))
        self.register_buffer("visible_offset", torch.zeros(visible))
        self.register_buffer("hidden_offset", torch.full((hidden,), 0.5))
        self.register_buffer("gaussian", gaussian, persistent=False)

    def centred(self, v: torch.Tensor) -> torch.Tensor:
        """ṽ − μ: the Gaussian units divided by their variance, then every unit less its offset."""
        scaled = v.index_copy(1, self.gaussian, v[:, self.gaussian] * (-self.log_variance).exp())
        return scaled - self.visible_offset

    def hidden_logits(self, v: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.hidden_bias, self.centred(v), self.weight)

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.visible_bias, h - self.hidden_offset, self.weight.T)


def free_energy(rbm: _RBM, v: torch.Tensor) -> torch.Tensor:
    """The free energy F(v) of each row.

    F(v) = Σ_g (v_g − b_g)²/2σ_g² − b_d·(v_d − μ_d) + λ·a − Σ softplus(a), a = c + (ṽ − μ)W, per row
    (g: Gaussian units, d: the others).
    """
    b, g = rbm.visible_bias, rbm.gaussian
    quadratic = ((v[:, g] - b[g]).square() * (-rbm.log_variance).exp()).sum(dim=1)
    shifted = v - rbm.visible_offset
    linear = shifted @ b - shifted[:, g] @ b[g]
    a = rbm.hidden_logits(v)
    return 0.5 * quadratic - linear + a @ rbm.hidden_offset - nn.functional.softplus(a).sum(dim=1)


def contrastive_gradients(rbm: _RBM, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Write the gradient of mean F(positive) − mean F(negative) into the parameters' `.grad`.

    The gradient is in closed form, the chains' centred statistics less the data's: no autograd, no softplus.
    Returns the squared distance between the two sides' visible means, a cheap progress signal for the history.
    """
    b, g = rbm.visible_bias, rbm.gaussian
    precision = (-rbm.log_variance).exp()
    sides = []
    for v in (positive, negative):
        centred, hidden = rbm.centred(v), rbm.hidden_logits(v).sigmoid() - rbm.hidden_offset
        # ∂F/∂log σ_g² = (−½(v_g − b_g)² + v_g (W(p(h | v) − λ))_g) / σ_g²
        d_log_variance = (-0.5 * (v[:, g] - b[g]).square() + v[:, g] * (hidden @ rbm.weight[g].T)) * precision
        sides.append((centred.T @ hidden / len(v), centred.mean(0), hidden.mean(0), d_log_variance.mean(0)))
    (pw, pb, pc, pz), (nw, nb, nc, nz) = sides
    rbm.weight.grad, rbm.visible_bias.grad, rbm.hidden_bias.grad = nw - pw, nb - pb, nc - pc
    rbm.log_variance.grad = pz - nz
    return (positive.mean(dim=0) - negative.mean(dim=0)).square().sum()


def move_hidden_offset(rbm: _RBM, positive: torch.Tensor, rate: float) -> None:
    """Move the hidden offset: λ ← λ + rate (mean p(h | data) − λ).

    The visible biases are compensated (b ← b + WΔλ) so the model's distribution stays the same.
    """
    step = rate * (rbm.hidden_logits(positive).sigmoid().mean(dim=0) - rbm.hidden_offset)
    rbm.hidden_offset.add_(step)
    rbm.visible_bias.add_(rbm.weight @ step)


def gibbs(
    rbm: _RBM,
    layout: OutputLayout,
    v: torch.Tensor,
    sweeps: int,
    generator: torch.Generator,
    clamp: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """`sweeps` rounds of h ~ p(h | v), v ~ p(v | h); `clamp` (a function of v) rewrites clamped units."""
    for _ in range(sweeps):
        h = _bernoulli(rbm.hidden_logits(v).sigmoid(), generator)
        v = _visible_sample(rbm, layout, rbm.visible_logits(h), generator)
        if clamp is not None:
            v = clamp(v)
    return v


def pseudo_log_likelihood(rbm: _RBM, layout: OutputLayout, v: torch.Tensor) -> torch.Tensor:
    """Σ log p(unit | all other units) per row over the discrete units.

    Each softmax group is scored against its other slots, each flag against its flip (free-energy differences,
    so exact). Wide groups are taken a block of slots at a time, so memory stays bounded.
    """
    w, b, offset = rbm.weight, rbm.visible_bias, rbm.hidden_offset
    a = rbm.hidden_logits(v)
    block = max(1, _BLOCK // (len(v) * w.shape[1]))
    total = torch.zeros(len(v), device=v.device)
    for slots in (g[m] for g, m in zip(layout.groups, layout.mask, strict=True)):
        current = v[:, slots]
        rest = a - current @ w[slots]
        energy = torch.cat(
            [
                b[part] - w[part] @ offset + nn.functional.softplus(rest[:, None, :] + w[part]).sum(dim=-1)
                for part in slots.split(block)
            ],
            dim=1,
        )
        total += (energy.log_softmax(dim=-1) * current).sum(dim=1)
    for part in layout.flags.split(block):
        on, w_flags = v[:, part], w[part]
        rest = a[:, None, :] - on[:, :, None] * w_flags
        off_energy = nn.functional.softplus(rest).sum(dim=-1)
        on_energy = b[part] - w_flags @ offset + nn.functional.softplus(rest + w_flags).sum(dim=-1)
        total += (on * on_energy + (1 - on) * off_energy - torch.logaddexp(on_energy, off_energy)).sum(dim=1)
    return total


def _bernoulli(p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """0/1 draws with probabilities p (a uniform compared with p: three times faster than torch.bernoulli)."""
    return (torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(p.dtype)


def _visible_sample(rbm: _RBM, layout: OutputLayout, logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Visible units v ~ p(v | h): a slot per softmax group, a bit per flag, N(mean, σ²) per Gaussian unit."""
    v = layout.sample(logits, generator=generator)
    mean = logits[:, rbm.gaussian]
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return v.index_copy(1, rbm.gaussian, mean + noise * (0.5 * rbm.log_variance).exp())


@register
class RBMGenerator(Generator):
    """Gaussian-softmax-Bernoulli restricted Boltzmann machine trained by persistent contrastive divergence."""

    name: ClassVar[str] = "rbm"
    config_class: ClassVar[type[Any]] = RBMConfig
    config: RBMConfig

    def _fit(self, x: torch.Tensor, generator: torch.Generator) -> History:
        cfg = self.config
        self.layout_ = OutputLayout(self._fitted_encoder().layout_, self.device_)
        self._fit_scales(x)
        v = self._standardise(x)
        hidden = cfg.hidden[0] if cfg.hidden else min(512, 2 * x.shape[1], max(64, len(x) // 8))
        self.rbm_ = _RBM(x.shape[1], hidden, self.layout_.values).to(self.device_)
        self._initialise(v, generator)
        train_rows, held = split_rows(v, cfg.held_out, generator)
        cost = (len(self.layout_.flags) + int(self.layout_.mask.sum())) * hidden
        held = held[: min(_HELD_OUT_ROWS[1], max(_HELD_OUT_ROWS[0], _PLL_COST // max(cost, 1)))]
        plan = cfg.plan(len(train_rows), batch_for(len(train_rows), cfg.batch_size))
        chains = _visible_sample(
            self.rbm_, self.layout_, self.rbm_.visible_bias.detach().expand(cfg.chains or 2 * plan.batch, -1), generator
        )
        optimiser = torch.optim.Adam(self.rbm_.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        epochs = itertools.chain.from_iterable(
            minibatches(len(train_rows), plan.batch, generator) for _ in itertools.count()
        )
        rows = torch.empty(0, dtype=torch.long)

        def contrast() -> torch.Tensor:
            """PCD's update: the chains move on, and the gradient is the data's statistics against theirs."""
            nonlocal chains, rows
            rows = next(epochs)
            with torch.no_grad():
                chains = gibbs(self.rbm_, self.layout_, chains, cfg.gibbs_steps, generator)
                return contrastive_gradients(self.rbm_, train_rows[rows], chains)

        def settle() -> None:
            """After each update: the variances kept in range, the hidden offset moved towards the data's."""
            with torch.no_grad():
                self.rbm_.log_variance.clamp_(*_LOG_VARIANCE_RANGE)
                move_hidden_offset(self.rbm_, train_rows[rows], _OFFSET_RATE)

        def held_out_loss(rbm: _RBM) -> float:
            """The held-out rows' negated pseudo-log-likelihood.

            Their free-energy gap to training rows, a sign of overfitting, is logged.
            """
            gap = free_energy(rbm, held).mean() - free_energy(rbm, train_rows[: len(held)]).mean()
            logger.debug("rbm: held-out free-energy gap %.3f", float(gap))
            return -float(pseudo_log_likelihood(rbm, self.layout_, held).mean())

        self.rbm_, history = train(
            self.rbm_,
            [Update("moment_gap", optimiser, contrast)],
            plan,
            held_out=held_out_loss if len(held) else None,
            patience=max(cfg.patience, math.ceil(_MIN_PATIENCE_STEPS / plan.check_every)),
            ema_decay=cfg.ema_decay,
            # Ending at a small rate lets the persistent chains settle into the final model's equilibrium, which
            # is what sampling draws from (stopping at a high rate leaves visibly wrong marginals).
            anneal=True,
            after_step=settle,
            name="rbm",
        )
        self.chains_ = chains
        return history

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self._draw(n, generator, ())

    def _sample_conditional(self, n: int, generator: torch.Generator, fixed: tuple[Condition, ...]) -> torch.Tensor:
        return self._draw(n, generator, fixed)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """Negative free energy (with the standardisation's Jacobian): log p(x) up to the log partition function."""
        return -free_energy(self.rbm_, self._standardise(x)) - self._row_scales(x)[1].log().sum(dim=1)

    def _state(self) -> dict[str, Any]:
        return {
            **{f"rbm.{k}": t for k, t in self.rbm_.state_dict().items()},
            "scale_mean": self.scale_mean_,
            "scale_std": self.scale_std_,
            "chains": self.chains_,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.layout_ = OutputLayout(self._fitted_encoder().layout_, self.device_)
        self.scale_mean_, self.scale_std_, self.chains_ = state["scale_mean"], state["scale_std"], state["chains"]
        weights = {k.removeprefix("rbm."): t for k, t in state.items() if k.startswith("rbm.")}
        visible, hidden = weights["weight"].shape
        self.rbm_ = _RBM(visible, hidden, self.layout_.values).to(self.device_)
        self.rbm_.load_state_dict(weights)

    def _initialise(self, v: torch.Tensor, generator: torch.Generator) -> None:
        """Small random weights, with the visible biases and offset set from the data.

        Visible biases at the data's marginals (log-frequencies of slots, logits of flags, means of values), so
        the chains start from the independent model of the table; the visible offset at the data's mean (zero
        for the standardised values).
        """
        mean = v.mean(dim=0)
        frequency = mean.clamp(1e-4, 1 - 1e-4)
        bias = torch.where(self.layout_.in_group, frequency.log(), frequency.logit())
        bias[self.layout_.values] = mean[self.layout_.values]
        with torch.no_grad():
            self.rbm_.weight.copy_(0.01 * torch.randn(self.rbm_.weight.shape, generator=generator, device=v.device))
            self.rbm_.visible_bias.copy_(bias)
            self.rbm_.visible_offset.copy_(mean.index_fill(0, self.layout_.values, 0.0))

    def _draw(self, n: int, generator: torch.Generator, fixed: tuple[Condition, ...]) -> torch.Tensor:
        """Up to `sample_chains` chains from the persistent ones, burnt in, then a draw every `thinning` sweeps.

        The conditioned units are clamped throughout.
        """
        cfg = self.config
        encoder = self._fitted_encoder()
        chains = min(n, cfg.sample_chains)
        clamp = (lambda v: encoder.impose(v, fixed)) if fixed else None
        v = self.chains_[torch.arange(chains, device=self.device_) % len(self.chains_)]
        v = gibbs(self.rbm_, self.layout_, v if clamp is None else clamp(v), cfg.burn_in, generator, clamp)
        draws = [v]
        for _ in range(math.ceil(n / chains) - 1):
            draws.append(gibbs(self.rbm_, self.layout_, draws[-1], cfg.thinning, generator, clamp))
        return self._unstandardise(torch.cat(draws)[:n])

    def _fit_scales(self, x: torch.Tensor) -> None:
        """Each value's mean and spread within each of its column's modes.

        Both are width x values matrices, read off a row's mode one-hot by a product, so a mode that is a
        spike keeps its values on the spike.
        """
        encoder = self._fitted_encoder()
        values = [s for s in encoder.layout_ if s.role == "value"]
        self.scale_mean_ = x.new_zeros(x.shape[1] + 1, len(values))  # the last row: columns with one mode
        self.scale_std_ = x.new_zeros(x.shape[1] + 1, len(values))
        for j, span in enumerate(values):
            mode = next((s for s in encoder.layout_ if s.column == span.column and s.role == "mode"), None)
            slots = slice(mode.start, mode.stop) if mode else slice(x.shape[1], x.shape[1] + 1)
            member = x[:, slots] if mode else x.new_ones(len(x), 1)
            count = member.sum(dim=0).clamp_min(1)
            mean = member.T @ x[:, span.start] / count
            variance = member.T @ x[:, span.start].square() / count - mean.square()
            self.scale_mean_[slots, j] = mean
            self.scale_std_[slots, j] = variance.clamp_min(0).sqrt().clamp_min(1e-3)

    def _row_scales(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's mean and spread of every value (n x values), from its mode one-hots."""
        ones = x.new_ones(len(x), 1)
        return torch.cat([x, ones], dim=1) @ self.scale_mean_, torch.cat([x, ones], dim=1) @ self.scale_std_

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._row_scales(x)
        return x.index_copy(1, self.layout_.values, (x[:, self.layout_.values] - mean) / std)

    def _unstandardise(self, v: torch.Tensor) -> torch.Tensor:
        mean, std = self._row_scales(v)
        return v.index_copy(1, self.layout_.values, (v[:, self.layout_.values] * std + mean).clamp(-1, 1))
