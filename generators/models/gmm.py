"""A full-covariance Gaussian mixture on the encoded table, fitted by EM in torch.

The cheap, dependable baseline of the zoo: each component is one "kind of row", and its full
covariance keeps the correlations between columns inside it. Fits in seconds on CPU, samples
hundreds of thousands of rows a second, and its log-likelihood is a natural per-row score.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch

from generators.base import Generator
from generators.nn.mixture import GaussianMixtureConfig, Mixture, fit_mixture
from generators.nn.training import History
from generators.registry import register
from generators.tabular.encoder import Span

logger = logging.getLogger(__name__)


@register
class GaussianMixtureGenerator(Generator):
    """Full-covariance Gaussian mixture fitted by EM: fast, stable baseline with exact log-likelihoods."""

    name: ClassVar[str] = "gmm"
    config_class: ClassVar[type[Any]] = GaussianMixtureConfig
    config: GaussianMixtureConfig

    def _fit(self, x: torch.Tensor, generator: torch.Generator) -> History:
        """EM, its number of components chosen on held-out rows; the history is the final EM run's."""
        self.mixture_, history = fit_mixture(x, self.config, generator)
        self.shares_ = torch.cat([x[:, span.start : span.start + span.width].mean(dim=0) for span in self._groups()])
        logger.info("gmm: %d components, %d EM iterations", len(self.mixture_.weights), history.steps)
        return history

    def _groups(self) -> list[Span]:
        """The one-hot groups (categories, numbers' modes) whose level `_sample` assigns by quota."""
        return [span for span in self.encoder_.layout_ if span.role in ("category", "mode")]

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return assign_by_quota(self.mixture_.sample(n, generator), self._groups(), self.shares_)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixture_.log_prob(x.to(self.mixture_.means.dtype))

    def _state(self) -> dict[str, Any]:
        return {"weights": self.mixture_.weights, "means": self.mixture_.means, "chol": self.mixture_.chol,
                "shares": self.shares_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.mixture_ = Mixture(state["weights"], state["means"], state["chol"])
        self.shares_ = state["shares"]


def assign_by_quota(x: torch.Tensor, groups: list[Span], shares: torch.Tensor) -> torch.Tensor:
    """Each one-hot group's level chosen so that every level gets its training share of the rows.

    Levels are assigned rarest first, each taking the rows that favour it most over their best other level.

    A mixture's one-hot outputs are Gaussian: argmax hands a level held by 14 rows in 32,561 to almost
    nobody, so rare categories vanished. Quotas keep every level (Adult, 12,000 rows: quality 0.961 ->
    0.972, no category lost) while each row still gets a level its component favours.
    """
    out = x.clone()
    rows = torch.arange(len(x), device=x.device)
    offset = 0
    for span in groups:
        block = x[:, span.start : span.start + span.width]
        share = shares[offset : offset + span.width].to(x.device)
        offset += span.width
        choice = block.argmax(dim=1)
        free = torch.ones(len(x), dtype=torch.bool, device=x.device)
        commonest = int(share.argmax())
        for level in share.argsort().tolist():
            quota = int(share[level] * len(x))
            if level == commonest or quota == 0:
                continue
            others = block.clone()
            others[:, level] = -torch.inf
            margin = (block[:, level] - others.max(dim=1).values).masked_fill(~free, -torch.inf)
            taken = margin.topk(min(quota, int(free.sum()))).indices
            choice[taken], free[taken] = level, False
        choice[free] = commonest
        out[:, span.start : span.start + span.width] = 0.0
        out[rows, span.start + choice] = 1.0
    return out
