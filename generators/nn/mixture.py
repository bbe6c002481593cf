"""Full-covariance Gaussian mixtures in torch, fitted by EM.

They are the gmm model's maths and the latent-code generators' prior (`LatentMixture`), so neither imports
the other.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import torch

from generators.nn.training import History
from generators.tabular.errors import BadInputError

logger = logging.getLogger(__name__)


_SEEDING_POOL = 20_000  # rows k-means++ picks its centres from


@dataclass(frozen=True)
class GaussianMixtureConfig:
    """Hyper-parameters of the mixture and of the choice of its size.

    The `components` counts are tried in increasing order, each fitted on the rows outside a
    `held_out` share, until the held-out log-likelihood stops improving; the best is then refined on
    all rows. EM sees at most `max_rows` rows (a seeded subsample) and stops when the log-likelihood
    per row and encoded column gains less than `tolerance`. `reg_covar` is added to every
    covariance's diagonal, which keeps one-hot columns from collapsing components.
    """

    components: tuple[int, ...] = (8, 16, 32)
    held_out: float = 0.2
    max_rows: int = 50_000
    max_iterations: int = 100
    tolerance: float = 1e-3
    reg_covar: float = 1e-3

    def __post_init__(self) -> None:
        if not self.components or min(self.components) < 1:
            raise BadInputError("gmm: components must be a non-empty list of positive integers")
        if not 0.0 < self.held_out < 1.0:
            raise BadInputError("gmm: held_out must be between 0 and 1")
        if min(self.max_rows, self.max_iterations) < 1:
            raise BadInputError("gmm: max_rows and max_iterations must be ≥ 1")
        if self.tolerance < 0 or self.reg_covar <= 0:
            raise BadInputError("gmm: tolerance must be ≥ 0 and reg_covar > 0")


@dataclass(frozen=True)
class Mixture:
    """Mixture parameters: weights (k), means (k x d) and Cholesky factors of the covariances (k x d x d)."""

    weights: torch.Tensor
    means: torch.Tensor
    chol: torch.Tensor

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log(weight_j * N(x | mean_j, cov_j)) for every row and component, n x k."""
        d = x.shape[1]
        eye = torch.eye(d, dtype=x.dtype, device=x.device).expand_as(self.chol)
        whiten = torch.linalg.solve_triangular(self.chol, eye, upper=False).transpose(1, 2)  # L_j^-T
        distance = torch.stack([((x - m) @ w).square().sum(dim=1) for m, w in zip(self.means, whiten, strict=True)])
        half_log_det = self.chol.diagonal(dim1=1, dim2=2).log().sum(dim=1)
        return self.weights.log() - half_log_det - 0.5 * (d * math.log(2 * math.pi) + distance.T)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The mixture's log-density at every row of `x`."""
        return self.log_joint(x).logsumexp(dim=1)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Rows drawn component by component: contiguous blocks of noise, scattered to the rows of each."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype, device=self.means.device)
        out = torch.empty_like(z)
        counts = torch.bincount(component, minlength=len(self.weights)).tolist()
        for rows, noise, mean, chol in zip(
            component.argsort(stable=True).split(counts), z.split(counts), self.means, self.chol, strict=True
        ):
            out[rows] = torch.addmm(mean, noise, chol.T)
        return out


def fit_mixture(
    x: torch.Tensor, config: GaussianMixtureConfig, generator: torch.Generator
) -> tuple[Mixture, History]:
    """The mixture of `x`'s rows, its size chosen on held-out rows, and the `History` of its final EM run.

    The rows are a seeded subsample of at most `max_rows`. The history holds each iteration's negated
    log-likelihood per row and column, and the chosen size's on the held-out rows when sizes were compared.
    """
    if len(x) > config.max_rows:
        x = x[torch.randperm(len(x), generator=generator, device=x.device)[: config.max_rows]]
    candidates = sorted({min(k, len(x)) for k in config.components})
    if len(candidates) == 1:
        return _em(x, _initial_mixture(x, candidates[0], config.reg_covar, generator), config)
    start, held_out = _select(x, candidates, config, generator)
    mixture, history = _em(x, start, config)
    return mixture, dataclasses.replace(history, best_held_out=held_out)


def _select(
    x: torch.Tensor, candidates: list[int], config: GaussianMixtureConfig, generator: torch.Generator
) -> tuple[Mixture, float | None]:
    """The mixture after which more components stop helping, and its held-out loss.

    Candidates are fitted on the non-held-out rows. The loss is the negated log-likelihood per row and column;
    None without held-out rows.
    """
    order = torch.randperm(len(x), generator=generator, device=x.device)
    cut = len(x) - int(config.held_out * len(x))
    train, held_out = x[order[:cut]], x[order[cut:]]
    # Fitted lazily, so that the loop stops fitting once more components stop helping.
    fits = (_em(train, _initial_mixture(train, k, config.reg_covar, generator), config)[0] for k in candidates)
    best = next(fits)
    best_score = _held_out_score(best, held_out)
    for mixture in fits:
        score = _held_out_score(mixture, held_out)
        if score <= best_score:
            break
        best, best_score = mixture, score
    return best, -best_score / x.shape[1] if math.isfinite(best_score) else None


def _held_out_score(mixture: Mixture, held_out: torch.Tensor) -> float:
    score = float(mixture.log_prob(held_out).mean()) if len(held_out) else -math.inf
    logger.debug("gmm: %d components, held-out log-likelihood %.3f", len(mixture.weights), score)
    return score


def _em(x: torch.Tensor, mixture: Mixture, config: GaussianMixtureConfig) -> tuple[Mixture, History]:
    """EM from `mixture` until the log-likelihood per row and column gains less than `tolerance`."""
    history = [-math.inf]
    for _ in range(config.max_iterations):
        log_joint = mixture.log_joint(x)
        log_total = log_joint.logsumexp(dim=1, keepdim=True)
        history.append(float(log_total.mean()) / x.shape[1])
        if history[-1] - history[-2] < config.tolerance:
            break
        mixture = _m_step(x, (log_joint - log_total).exp(), config.reg_covar)
    iterations = len(history) - 1
    logger.debug("gmm: %d rows, %d iterations, log-likelihood %.4f", len(x), iterations, history[-1])
    records = tuple({"step": i + 1, "epoch": float(i + 1), "loss": -ll} for i, ll in enumerate(history[1:]))
    converged = history[-1] - history[-2] < config.tolerance
    return mixture, History(records, iterations, config.max_iterations, float(iterations), converged)


def _m_step(x: torch.Tensor, resp: torch.Tensor, reg_covar: float) -> Mixture:
    """Weights, means and regularised covariances from responsibilities (n x k)."""
    mass = resp.sum(dim=0) + 10 * torch.finfo(x.dtype).eps
    means = (resp.T @ x) / mass[:, None]
    covariances = torch.stack(
        [((x - m) * r[:, None]).T @ (x - m) / w for m, r, w in zip(means, resp.T, mass, strict=True)]
    )
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    chol, info = torch.linalg.cholesky_ex(covariances + reg_covar * eye)
    if bool(info.any()):  # rounding made a covariance indefinite: fall back to its diagonal
        failed = info > 0
        diagonal = covariances[failed].diagonal(dim1=1, dim2=2).clamp_min(0) + reg_covar
        chol[failed] = torch.diag_embed(diagonal.sqrt())
    return Mixture(mass / mass.sum(), means, chol)


def _initial_mixture(x: torch.Tensor, k: int, reg_covar: float, generator: torch.Generator) -> Mixture:
    """k-means++ seeding (spread-out centres, each row given to its nearest), then one M-step."""
    pool = x[torch.randperm(len(x), generator=generator, device=x.device)[:_SEEDING_POOL]]
    centres = pool[:1]
    nearest = (pool - centres[0]).square().sum(dim=1)
    for _ in range(1, k):
        pick = torch.multinomial(nearest + 1e-12, 1, generator=generator)
        centres = torch.cat([centres, pool[pick]])
        nearest = torch.minimum(nearest, (pool - pool[pick]).square().sum(dim=1))
    assignment = torch.cdist(x, centres).argmin(dim=1)
    return _m_step(x, torch.nn.functional.one_hot(assignment, k).to(x.dtype), reg_covar)


class LatentMixture:
    """A density over latent codes to sample from, fitted to the codes of the training rows.

    It is the gmm generator's full-covariance mixture, its number of components chosen on held-out codes.

    Decoding codes drawn from the mixture rather than from N(0, I) avoids the prior's holes, where a decoder
    blends neighbouring rows (Adult's education drifts to the grades between the common ones). The mixture
    also keeps P(value | component) of every discrete value, so a conditioned draw picks components in
    proportion to how often they hold the requested values.
    """

    def __init__(self, mixture: Mixture, value_share: torch.Tensor) -> None:
        self.mixture = mixture
        self.value_share = value_share  # components x condition-vector width

    @classmethod
    def fit(
        cls,
        codes: torch.Tensor,
        generator: torch.Generator,
        components: tuple[int, ...],
        values: torch.Tensor | None = None,
        rows_per_component: int = 500,
    ) -> LatentMixture:
        """Fit on `codes` (n x latent) of rows whose discrete values are `values` (n x condition width).

        `values` is None by default, and then conditioned draws are plain ones.

        The counts of `components` tried are capped at one per `rows_per_component` codes: on a small
        table, more components each hug a handful of training rows, which sampling would then reproduce
        (Adult, 500 rows, codes at posterior means: DCR share 0.61 with 8 components, 0.54 with one).
        """
        cap = max(1, len(codes) // rows_per_component)
        config = GaussianMixtureConfig(components=tuple({min(k, cap) for k in components}))
        mixture, _ = fit_mixture(codes, config, generator)
        joint = mixture.log_joint(codes)
        responsibilities = (joint - joint.logsumexp(dim=1, keepdim=True)).exp()
        mass = responsibilities.sum(dim=0).clamp_min(1e-12)
        values = values if values is not None else codes.new_zeros(len(codes), 0)
        return cls(mixture, (responsibilities.T @ values) / mass[:, None])

    @classmethod
    def standard(cls, latent: int, condition_width: int, device: torch.device) -> LatentMixture:
        """N(0, I), the prior itself: what a differentially private fit samples from.

        A mixture fitted to the training rows' codes would spend budget of its own.
        """
        mixture = Mixture(
            torch.ones(1, device=device), torch.zeros(1, latent, device=device), torch.eye(latent, device=device)[None]
        )
        return cls(mixture, torch.ones(1, condition_width, device=device))

    def sample(self, n: int, generator: torch.Generator, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Codes, `n` of them; given a `condition` vector, from components likely to hold its values.

        The `condition` vector has a 1 at every requested value; components are reweighted by the chance that
        they hold all the requested values.
        """
        mixture = self.mixture
        if condition is not None and bool(condition.any()):
            weights = mixture.weights * self.value_share[:, condition > 0].prod(dim=1) + 1e-12
            mixture = Mixture(weights / weights.sum(), mixture.means, mixture.chol)
        return mixture.sample(n, generator)

    def state(self) -> dict[str, torch.Tensor]:
        """The tensors `from_state` rebuilds this mixture from, for a generator's saved file."""
        m = self.mixture
        return {"weights": m.weights, "means": m.means, "chol": m.chol, "value_share": self.value_share}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> LatentMixture:
        """The mixture `state` wrote."""
        return cls(Mixture(state["weights"], state["means"], state["chol"]), state["value_share"])


