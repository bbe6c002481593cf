"""Differential privacy of gan and vae.

The budget is spent and accounted for, noise and clipping are applied, and no training-row statistic reaches the
encoder outside the budget.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from generators import registry
from generators.base import Generator
from generators.models.gan import GanConfig, GanGenerator, _Critic, critic_pair_loss
from generators.models.vae import VAEConfig, VAEGenerator
from generators.nn.dp import DPConfig, SgdPlan, per_row_gradients, private_update
from generators.nn.training import Plan, train
from generators.tabular.encoder import EncoderPrivacy, TabularEncoder
from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema

EPSILON = 8.0
ROWS = 1500


def _frame(n: int = ROWS, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    """Common values plus one planted outlier row: a category seen once and an extreme number."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(20, 70, n),
            "income": rng.normal(50_000, 8_000, n).round(2),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]).astype(object),
            "member": rng.random(n) < 0.4,
        }
    )
    frame.loc[0, ["income", "colour"]] = [9.9e8, "ultraviolet"]
    schema = Schema(
        (
            ColumnSpec("age", ColumnKind.NUMERICAL, "int64", bounds=(20.0, 69.0), integer=True),
            ColumnSpec("income", ColumnKind.NUMERICAL, "float64", bounds=(float(frame.income.min()), 9.9e8)),
            ColumnSpec("colour", ColumnKind.CATEGORICAL, "object", categories=("blue", "green", "red", "ultraviolet")),
            ColumnSpec("member", ColumnKind.BOOLEAN, "bool"),
        )
    )
    return frame, schema


_CONFIGS: dict[str, Any] = {
    "gan": GanConfig(dp_epsilon=EPSILON, batch_size=150, steps=30, min_steps=30, critic_hidden=(32, 32)),
    "vae": VAEConfig(dp_epsilon=EPSILON, steps=30, hidden=(32, 32), latent=4),
}
_CLASSES: dict[str, type[Generator]] = {"gan": GanGenerator, "vae": VAEGenerator}


def _fit(name: str, seed: int = 3, rows: int = ROWS, **changes: Any) -> Generator:
    frame, schema = _frame(rows)
    config = dataclasses.replace(_CONFIGS[name], **changes)
    return _CLASSES[name](config, seed=seed, device="cpu").fit(frame, schema)


@pytest.fixture(scope="module", params=["gan", "vae"])
def fitted(request: pytest.FixtureRequest) -> Generator:
    return _fit(request.param)


def test_dp_fit_spends_close_to_the_budget_and_no_more(fitted: Generator) -> None:
    spent = fitted.privacy_spent_
    assert spent is not None
    assert 0.97 * EPSILON <= spent["epsilon"] <= EPSILON
    assert spent["delta"] <= 1e-5
    assert spent["noise_multiplier"] > 0.1
    assert math.isclose(spent["encoder_epsilon"] + spent["sgd_epsilon"], spent["epsilon"])
    assert spent["steps"] == 30 and 0 < spent["sample_rate"] < 1


def test_dp_fit_runs_its_planned_steps_and_records_no_loss_on_private_rows(fitted: Generator) -> None:
    """No early stopping (it would choose by held-out rows' loss), and no un-noised loss in the history.

    The history keeps no un-noised loss of the rows DP-SGD reads: the vae's loss, the gan's critic's (its
    generator's loss is post-processing).
    """
    history = fitted.history_
    assert history.steps == history.planned_steps == 30 and not history.stopped_early
    assert history.best_held_out is None and all(r["held_out"] is None for r in history.records)
    private = "critic" if fitted.name == "gan" else "loss"
    assert all(r[private] is None for r in history.records)


def test_dp_fit_samples_rows_of_the_table(fitted: Generator) -> None:
    rows = fitted.sample(300, seed=1)
    assert list(rows.columns) == ["age", "income", "colour", "member"] and len(rows) == 300
    assert set(rows.colour.dropna()) <= {"red", "green", "blue"}


def test_no_rare_value_reaches_the_model_or_the_samples(fitted: Generator, tmp_path: Path) -> None:
    """The category seen once and the extreme income are below the noise.

    They must appear neither in the saved model (encoder state and schema) nor in samples.
    """
    path = tmp_path / "model.pt"
    fitted.save(path)
    text = repr(torch.load(path, weights_only=True))
    assert "ultraviolet" not in text and "990000000" not in text and "9.9e+08" not in text
    rows = fitted.sample(2000, seed=2)
    assert "ultraviolet" not in set(rows.colour.dropna())
    assert rows.income.max() < 2e5


def test_save_and_load_keep_the_spent_budget(fitted: Generator, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    fitted.save(path)
    loaded = registry.load(path, device="cpu")
    assert loaded.privacy_spent_ == fitted.privacy_spent_
    pd.testing.assert_frame_equal(loaded.sample(50, seed=4), fitted.sample(50, seed=4))


@pytest.mark.parametrize("name", ["gan", "vae"])
def test_dp_fits_repeat_with_a_seed_and_noise_changes_them(name: str) -> None:
    # a small sample rate: the RDP accountant is slow at large ones
    short: dict[str, Any] = {"steps": 5, "min_steps": 5, "batch_size": 60} if name == "gan" else {"steps": 5}
    first, again = _fit(name, rows=600, **short), _fit(name, rows=600, **short)
    pd.testing.assert_frame_equal(first.sample(100, seed=0), again.sample(100, seed=0))
    other = _fit(name, seed=4, rows=600, **short)
    assert not first.sample(100, seed=0).equals(other.sample(100, seed=0))


def test_non_dp_fit_spends_nothing() -> None:
    frame, schema = _frame(300)
    model = VAEGenerator(VAEConfig(steps=5, hidden=(16,), latent=2), device="cpu").fit(frame, schema)
    assert model.privacy_spent_ is None


@pytest.mark.parametrize(
    "changes", [{"dp_epsilon": 0.0}, {"dp_epsilon": -1.0}, {"dp_epsilon": math.inf}, {"dp_delta": 1.0}]
)
def test_bad_privacy_settings_are_refused(changes: dict[str, Any]) -> None:
    for config in (GanConfig, VAEConfig):
        with pytest.raises(BadInputError):
            config(**changes)


def test_plan_meets_the_sgd_share_of_the_budget() -> None:
    plan = SgdPlan.plan(DPConfig(dp_epsilon=1.0, dp_delta=1e-5), rows=10_000, batch=100, steps=2000, trains="test")
    assert plan.noise_multiplier > 0.5
    assert 0.88 <= plan.epsilon() <= 0.9  # the encoder keeps 10%
    assert plan.epsilon(100) < plan.epsilon()
    with pytest.raises(BadInputError):
        SgdPlan.plan(DPConfig(dp_epsilon=1e-7), rows=100, batch=100, steps=10_000, trains="test")


def test_private_encoder_keeps_only_values_above_the_noise() -> None:
    frame, schema = _frame(5000)
    encoder = TabularEncoder().fit(frame, schema, seed=0, privacy=EncoderPrivacy(2.0, 1e-6))
    state = encoder.to_state()
    assert set(state["codecs"]["colour"]["categories"]) == {"red", "green", "blue"}
    low, high = state["codecs"]["income"]["bounds"]
    assert 10_000 < low < 40_000 and 60_000 < high < 1e5  # the tails of the normal fade into the noise
    assert state["schema"]["columns"]["income"].get("bounds") is None
    assert "categories" not in state["schema"]["columns"]["colour"]
    counts = encoder.noisy_counts_["colour"]
    assert counts.sum() == pytest.approx(5000, rel=0.05)
    seeded = TabularEncoder().fit(frame, schema, seed=0, privacy=EncoderPrivacy(2.0, 1e-6))
    assert seeded.to_state() == state


def test_per_row_gradients_match_one_backward_per_row_penalty_included() -> None:
    torch.manual_seed(0)
    critic = _Critic(5, (8,), 1)
    real, fake, alpha = torch.randn(4, 5), torch.randn(4, 5), torch.rand(4, 1)

    def loss(module: nn.Module, r: torch.Tensor, f: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return critic_pair_loss(module, r, f, a, 10.0)  # type: ignore[arg-type]

    batched = per_row_gradients(critic, loss, real, fake, alpha)
    for i in range(4):
        critic.zero_grad()
        mixed = torch.lerp(fake[i : i + 1], real[i : i + 1], alpha[i : i + 1]).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
        one = critic(fake[i : i + 1]).sum() - critic(real[i : i + 1]).sum() + 10.0 * (grad.norm() - 1).square()
        one.backward()
        for p, g in zip(critic.parameters(), batched, strict=True):
            torch.testing.assert_close(g[i], p.grad, rtol=1e-4, atol=1e-5)


def test_a_private_update_clips_every_row_and_adds_noise() -> None:
    """One row with a huge gradient moves the weights no more than the clipping norm allows.

    With noise the same step lands elsewhere.
    """

    def step(noise: float) -> torch.Tensor:
        layer = nn.Linear(3, 1, bias=False)
        nn.init.zeros_(layer.weight)
        plan = SgdPlan(noise, 0.5, batch=2, steps=1, delta=1e-5, max_grad_norm=1.0, encoder=EncoderPrivacy(1, 1e-6))
        rows = torch.tensor([[1e6, 0.0, 0.0], [0.0, 1.0, 0.0]])
        optimiser = torch.optim.SGD(layer.parameters(), lr=1.0)
        update = private_update(
            "loss", plan, optimiser, layer, lambda m, x: m(x).sum(), lambda: (rows,), torch.Generator().manual_seed(0)
        )
        train(layer, [update], Plan(steps=1, batch=2, per_epoch=1, check_every=1), decay=False, name="test")
        return layer.weight.detach().clone()

    clipped = step(0.0)
    torch.testing.assert_close(clipped, torch.tensor([[-0.5, -0.5, 0.0]]))  # each row clipped to 1, mean of 2
    assert not torch.equal(step(1.0), clipped)
