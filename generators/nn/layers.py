"""Network pieces shared by every neural generator, so a fix to one helps all of them.

- `OutputLayout`: the encoder's spans as index tensors and masks, so per-span activations, sampling and
  reconstruction losses are a handful of vectorised ops however many columns the table has;
- `mlp` and `init_weights`: networks whose initial weights come from a seeded `torch.Generator`;
- `ConditionVector`: CTGAN's conditional vector and training-by-sampling, for native conditioning;
- `SpreadDecoder`: a decoder that also learns the spread of each value within its mode.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from generators.tabular.encoder import Condition, Span

logger = logging.getLogger(__name__)


class OutputLayout:
    """Where each kind of output lives in the encoded matrix, as index tensors and masks.

    `values`: the tanh columns (mode-normalised numbers); `flags`: the sigmoid columns (booleans and null
    flags); `groups` (G x W, padded, with `mask`), `starts` and `widths`: the softmax groups (modes and
    categories); `members`: width x G, which group each column is in (`in_group`: whether it is in one).
    Softmax and cross-entropy run on the full-width matrix through `members`, so they cost a couple of
    matrix products and no indexing in the backward pass.
    """

    def __init__(self, layout: Sequence[Span], device: torch.device | str = "cpu") -> None:
        def columns(activation: str) -> torch.Tensor:
            index = [i for s in layout if s.activation == activation for i in range(s.start, s.stop)]
            return torch.tensor(index, dtype=torch.long, device=device)

        self.width = max((s.stop for s in layout), default=0)
        self.values = columns("tanh")
        self.flags = columns("sigmoid")
        softmax = [s for s in layout if s.activation == "softmax"]
        widest = max((s.width for s in softmax), default=0)
        offsets = torch.arange(widest, device=device)
        starts = torch.tensor([s.start for s in softmax], dtype=torch.long, device=device)
        widths = torch.tensor([s.width for s in softmax], dtype=torch.long, device=device)
        self.mask = offsets < widths[:, None]
        self.groups = torch.where(self.mask, starts[:, None] + offsets, 0)
        self.starts, self.widths = starts, widths
        self._spans = [(s.start, s.width) for s in softmax]
        self._grouped, self._group_of = self.groups[self.mask], torch.nonzero(self.mask)[:, 0]
        self.members = torch.zeros(self.width, len(softmax), device=device)
        self.members[self._grouped, self._group_of] = 1.0
        self.in_group = self.members.sum(dim=1) > 0
        # Which mode columns belong to which value column (width x values); values without modes have none.
        self.value_modes = torch.zeros(self.width, len(self.values), device=device)
        for i, value in enumerate(s for s in layout if s.role == "value"):
            for mode in (s for s in layout if s.column == value.column and s.role == "mode"):
                self.value_modes[mode.start : mode.stop, i] = 1.0
        self.single_mode = (self.value_modes.sum(dim=0) == 0).float()

    def activate(
        self, logits: torch.Tensor, generator: torch.Generator | None = None, tau: float = 0.2, hard: bool = False
    ) -> torch.Tensor:
        """Raw network outputs to encoded rows: tanh values, sigmoid flags, softmax groups.

        With a `generator`, groups get a Gumbel-softmax at temperature `tau` (straight-through one-hot
        if `hard`), the differentiable relaxation a GAN's generator needs.
        """
        if generator is None:
            groups = self._softmax(logits)
        else:
            groups = self._softmax((logits + _gumbel(logits, generator)) / tau)
            if hard:
                groups = self._one_hot_max(groups.detach()) + groups - groups.detach()
        out = torch.where(self.in_group, groups, logits.sigmoid())
        return out.index_copy(1, self.values, logits[:, self.values].tanh())

    def sample(
        self, logits: torch.Tensor, log_spread: torch.Tensor | None = None, *, generator: torch.Generator
    ) -> torch.Tensor:
        """Encoded rows drawn from the distributions the outputs parameterise.

        That is a category per group (by inverse CDF, one uniform per group), a 0/1 per flag (Bernoulli), and
        tanh values, plus Gaussian noise with the spread of the drawn mode when `log_spread` is given (see
        `reconstruction_loss`).

        Works column by column: pass column-major logits (see `column_major`) to spare a transposing copy;
        the rows come back column-major, which the encoder's column-by-column decoding likes too.
        """
        columns = logits.T.contiguous()
        out = torch.zeros_like(columns)
        uniform = torch.rand(len(self._spans), len(logits), generator=generator, device=logits.device)
        for g, (start, width) in enumerate(self._spans):
            block = columns[start : start + width]
            cumulative = (block - block.amax(dim=0)).exp().cumsum(dim=0)
            index = (cumulative < uniform[g].to(logits.dtype) * cumulative[-1]).sum(dim=0).clamp_max(width - 1)
            out[start : start + width].scatter_(0, index[None], 1.0)
        out[self.flags] = torch.bernoulli(columns[self.flags].sigmoid(), generator=generator)
        values = columns[self.values].tanh()
        if log_spread is not None:
            spread = self._spreads(out.T, log_spread).T
            values = values + spread * torch.randn(values.shape, generator=generator, device=values.device)
        out[self.values] = values.clamp(-1, 1)
        return out.T

    def reconstruction_loss(
        self, logits: torch.Tensor, target: torch.Tensor, log_spread: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-row negative log-likelihood of `target` under the outputs, summed over columns.

        Values: squared error of tanh(output), or with `log_spread` (one log-spread per encoded column, read
        at each mode column, and at the value column of a column with a single mode) the Gaussian NLL with
        the spread of the row's mode. A spread per mode rather than TVAE's one per column keeps spikes sharp:
        the zeros of a mostly-zero column are a mode whose values hardly vary, unlike the column's others.
        Groups: cross-entropy; flags: binary cross-entropy. An all-zero group (an unseen category) costs nothing.
        """
        error = (logits[:, self.values].tanh() - target[:, self.values]).square()
        if log_spread is None:
            values = error.sum(dim=1)
        else:
            spread = self._spreads(target, log_spread)
            values = (0.5 * error / spread.square() + spread.log()).sum(dim=1)
        picked = (target @ self.members) * self._log_normaliser(logits)
        groups = picked.sum(dim=1) - (logits * target * self.in_group).sum(dim=1)
        flags = nn.functional.binary_cross_entropy_with_logits(
            logits[:, self.flags], target[:, self.flags], reduction="none"
        ).sum(dim=1)
        return values + groups + flags

    def _spreads(self, rows: torch.Tensor, log_spread: torch.Tensor) -> torch.Tensor:
        """B x values: the spread of each value in the mode its row is in."""
        per_mode = rows @ (self.value_modes * log_spread[:, None])
        return (per_mode + self.single_mode * log_spread[self.values]).exp()

    def _log_normaliser(self, logits: torch.Tensor) -> torch.Tensor:
        """The log-normaliser log sum exp(logits) within every group, B x G (stabilised by each group's max)."""
        top = self._group_max(logits.detach())
        shifted = torch.where(self.in_group, logits - top @ self.members.T, -math.inf)
        return (shifted.exp() @ self.members).log() + top

    def _softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax within every group, B x width (zero outside the groups)."""
        log_norm = self._log_normaliser(logits) @ self.members.T
        return torch.where(self.in_group, logits - log_norm, -math.inf).exp()

    def _one_hot_max(self, scores: torch.Tensor) -> torch.Tensor:
        """B x width with a 1 at each group's largest score (zero outside the groups)."""
        return ((scores == self._group_max(scores) @ self.members.T) & self.in_group).to(scores.dtype)

    def _group_max(self, scores: torch.Tensor) -> torch.Tensor:
        """B x G: the largest score within every group."""
        top = torch.full((len(scores), len(self.starts)), -math.inf, device=scores.device, dtype=scores.dtype)
        index = self._group_of.expand(len(scores), -1)
        return top.scatter_reduce(1, index, scores[:, self._grouped], "amax")


def _gumbel(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return -(-uniform.clamp_min(1e-20).log()).log()


def mlp(sizes: Sequence[int], *, activation: Callable[[], nn.Module] = nn.ReLU, norm: bool = False) -> nn.Sequential:
    """Linear layers through `sizes` (input, hidden..., output) with `activation` after each hidden one.

    LayerNorm optionally comes before each activation; the last layer is linear, so outputs are logits. (No
    dropout: nn.Dropout draws from the global RNG, which would break seeded reproducibility.)
    """
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.extend([nn.LayerNorm(fan_out), activation()] if norm else [activation()])
    return nn.Sequential(*layers)


def column_major(last: nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
    """`last(hidden)` computed as the transpose of its transpose, so the result is column-major at no extra cost.

    Column-major is what `OutputLayout.sample` reads fastest.
    """
    return torch.addmm(last.bias[:, None], last.weight, hidden.T).T


def init_weights(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every Linear layer's weights with PyTorch's default scheme, from `generator`.

    Call it after moving the module to the generator's device; other layers (norms) start deterministic.
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                if layer.bias is not None:
                    bound = 1 / math.sqrt(layer.in_features) if layer.in_features else 0.0
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return module


class ConditionVector:
    """CTGAN's conditional vector: a one-hot slot for every value of every discrete column.

    The values are each category of a categorical column and false/true of a boolean; columns not
    conditioned on stay all zero.

    After `fit` on the encoded training rows it also does CTGAN's training-by-sampling (`sample`): pick a
    column uniformly, one of its values by (log-)frequency, then a training row holding that value, so rare
    values are trained on as often as a model needs to produce them on request.
    """

    def __init__(self, layout: Sequence[Span], device: torch.device | str = "cpu") -> None:
        self.spans = tuple(s for s in layout if s.role in ("category", "flag"))
        widths = torch.tensor([s.width if s.role == "category" else 2 for s in self.spans], dtype=torch.long)
        self.width = int(widths.sum())
        self.offsets = (widths.cumsum(0) - widths).to(device)
        self.widths = widths.to(device)
        # Which encoded columns (its span, and a boolean's null flag) each slot's column covers: width x encoded.
        self._covers = torch.zeros(self.width, max((s.stop for s in layout), default=0), device=device)
        for span, offset, slots in zip(self.spans, self.offsets.tolist(), widths.tolist(), strict=True):
            for covered in (s for s in layout if s.column == span.column):
                self._covers[offset : offset + slots, covered.start : covered.stop] = 1.0

    @property
    def columns(self) -> int:
        """How many discrete columns a condition can name."""
        return len(self.spans)

    def hide(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """`x` with the encoded columns of every column that `c` conditions on set to zero.

        An encoder fed this cannot pass the conditioned values on, so a decoder has to take them from `c`.
        """
        return x * (1 - (c @ self._covers).clamp_max(1))

    def slots(self, x: torch.Tensor) -> torch.Tensor:
        """The slot of each row's value in each discrete column, n x columns (-1 when a group is all zero)."""
        found = torch.empty(len(x), self.columns, dtype=torch.long, device=x.device)
        for j, (span, offset) in enumerate(zip(self.spans, self.offsets, strict=True)):
            block = x[:, span.start : span.stop]
            if span.role == "flag":
                found[:, j] = offset + (block[:, 0] > 0.5).long()
            else:
                found[:, j] = torch.where(block.amax(dim=1) > 0.5, offset + block.argmax(dim=1), -1)
        return found

    def one_hot(self, slots: torch.Tensor) -> torch.Tensor:
        """Vectors (n x width) with a 1 at each slot of every row (`slots` n x k; negative slots are left out)."""
        out = torch.zeros(len(slots), self.width + 1, device=slots.device)
        return out.scatter_(1, torch.where(slots >= 0, slots, self.width), 1.0)[:, : self.width]

    def own_values(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """For each row, the one-hot of its own value in a discrete column picked uniformly.

        This is a condition that depends on that row alone (DP-SGD's unit), where training-by-sampling's is
        drawn from all rows' counts.
        """
        if not self.columns:
            return torch.zeros(len(x), 0, device=x.device)
        column = torch.randint(self.columns, (len(x), 1), generator=generator, device=x.device)
        return self.one_hot(self.slots(x).gather(1, column))

    def from_conditions(self, fixed: Sequence[Condition], n: int) -> torch.Tensor:
        """Copies, `n` of them, of the condition vector asking for every `fixed` value at once."""
        slots = [int(self.offsets[self.spans.index(c.span)]) + c.index for c in fixed]
        return self.one_hot(torch.tensor([slots], device=self.offsets.device).expand(n, -1))

    def fit(self, x: torch.Tensor) -> ConditionVector:
        """Index the training rows by value of every discrete column, for `sample`."""
        slots = self.slots(x)
        counts = torch.bincount(slots[slots >= 0], minlength=self.width)
        widest = int(self.widths.max()) if self.columns else 0
        within = torch.arange(widest, device=x.device)
        self._slot_grid = self.offsets[:, None] + within
        self._counts = torch.where(within < self.widths[:, None], counts[self._slot_grid.clamp_max(self.width - 1)], 0)
        self._rows_by_value = slots.argsort(dim=0, stable=True)  # per column: row indices grouped by value
        unseen = (slots < 0).sum(dim=0, keepdim=True)  # rows without a value sort first, so skip them
        self._first = unseen.T + self._counts.cumsum(dim=1) - self._counts
        self._rows = len(x)
        return self

    def sample(
        self, n: int, generator: torch.Generator, log_frequency: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-by-sampling: (n x width condition vectors, n training-row indices that satisfy them).

        Without discrete columns: empty vectors and rows drawn uniformly.
        """
        device = self.offsets.device
        if not self.columns:
            rows = torch.randint(self._rows, (n,), generator=generator, device=device)
            return torch.zeros(n, 0, device=device), rows
        column = torch.randint(self.columns, (n,), generator=generator, device=device)
        weights = self._counts.float()
        weights = weights.log1p() if log_frequency else weights
        value = torch.multinomial(weights[column], 1, generator=generator)[:, 0]
        count = self._counts[column, value]
        offset = (torch.rand(n, generator=generator, device=device) * count).long().clamp_max(count - 1)
        rows = self._rows_by_value[self._first[column, value] + offset, column]
        return self.one_hot(self._slot_grid[column, value][:, None]), rows


_LOG_SPREAD_RANGE = (math.log(1e-3), 0.0)  # of a value's spread within its mode, on the tanh scale


class SpreadDecoder(nn.Module):
    """Base of the latent-code networks: the learned log-spread of the values in every mode.

    `OutputLayout`'s losses and sampling read it (clamped so that no mode collapses to a point).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.log_spread = nn.Parameter(torch.full((width,), math.log(0.1)))

    def spread(self) -> torch.Tensor:
        """The log-spread of every mode, clamped so that no mode collapses to a point."""
        return self.log_spread.clamp(*_LOG_SPREAD_RANGE)


