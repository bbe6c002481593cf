"""The shared neural building blocks: output layout maths, condition vectors, training helpers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_mixed_frame, mixed_schema_for
from torch import nn

from generators import create
from generators.nn.layers import ConditionVector, OutputLayout, init_weights, mlp
from generators.nn.training import EarlyStopping, History, Plan, TrainingConfig, Update, batch_for, train
from generators.tabular.encoder import TabularEncoder
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema


@pytest.fixture(scope="module")
def encoded() -> tuple[TabularEncoder, torch.Tensor]:
    df = make_mixed_frame()
    encoder = TabularEncoder().fit(df, mixed_schema_for(df))
    return encoder, encoder.transform(df)


def test_losses_and_activations_match_the_per_span_definitions(encoded: tuple[TabularEncoder, torch.Tensor]) -> None:
    encoder, x = encoded
    layout = OutputLayout(encoder.layout_)
    logits = 20 * torch.randn(8, encoder.width_, generator=torch.Generator().manual_seed(0))
    log_spread = torch.linspace(-3, 0, encoder.width_)
    target, expected = x[:8], torch.zeros(8)
    active = layout.activate(logits)
    for span in encoder.layout_:
        out, want = logits[:, span.start : span.stop], target[:, span.start : span.stop]
        if span.activation == "softmax":
            expected -= (out.log_softmax(dim=1) * want).sum(dim=1)
            torch.testing.assert_close(active[:, span.start : span.stop], out.softmax(dim=1))
        elif span.activation == "sigmoid":
            expected += nn.functional.binary_cross_entropy_with_logits(out, want, reduction="none").sum(dim=1)
            torch.testing.assert_close(active[:, span.start : span.stop], out.sigmoid())
        else:
            modes = next((s for s in encoder.layout_ if s.column == span.column and s.role == "mode"), span)
            if modes is span:
                spread = log_spread[span.start].exp().expand(8)
            else:
                spread = log_spread[modes.start : modes.stop][target[:, modes.start : modes.stop].argmax(dim=1)].exp()
            expected += 0.5 * (out.tanh()[:, 0] - want[:, 0]).square() / spread.square() + spread.log()
    torch.testing.assert_close(layout.reconstruction_loss(logits, target, log_spread), expected, rtol=1e-4, atol=1e-3)


def test_samples_follow_the_output_distributions(encoded: tuple[TabularEncoder, torch.Tensor]) -> None:
    encoder, _ = encoded
    layout = OutputLayout(encoder.layout_)
    logits = torch.randn(1, encoder.width_, generator=torch.Generator().manual_seed(1)).expand(40_000, -1)
    rows = layout.sample(logits, generator=torch.Generator().manual_seed(2))
    for span in encoder.layout_:
        block = rows[:, span.start : span.stop]
        if span.activation == "softmax":
            assert (block.sum(dim=1) == 1).all()
            wanted = logits[0, span.start : span.stop].softmax(dim=0)
        else:
            wanted = logits[0, span.start : span.stop].sigmoid()
            if span.activation == "tanh":
                torch.testing.assert_close(block, logits[:, span.start : span.stop].tanh())
                continue
        torch.testing.assert_close(block.mean(dim=0), wanted, atol=0.01, rtol=0)


def test_hard_gumbel_softmax_is_one_hot_with_gradients(encoded: tuple[TabularEncoder, torch.Tensor]) -> None:
    encoder, _ = encoded
    layout = OutputLayout(encoder.layout_)
    logits = torch.randn(16, encoder.width_, generator=torch.Generator().manual_seed(3), requires_grad=True)
    out = layout.activate(logits, torch.Generator().manual_seed(4), hard=True)
    for span in (s for s in encoder.layout_ if s.activation == "softmax"):
        block = out[:, span.start : span.stop].detach()  # straight-through: one-hot up to rounding
        torch.testing.assert_close(block, block.round(), atol=1e-6, rtol=0)
        assert (block.round().sum(dim=1) == 1).all()
    (out * torch.arange(encoder.width_)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_training_by_sampling_draws_rows_holding_their_condition(encoded: tuple[TabularEncoder, torch.Tensor]) -> None:
    encoder, x = encoded
    vector = ConditionVector(encoder.layout_).fit(x)
    c, rows = vector.sample(20_000, torch.Generator().manual_seed(5))
    assert (c.sum(dim=1) == 1).all()
    assert ((vector.one_hot(vector.slots(x[rows])) * c).sum(dim=1) == 1).all()
    violet = vector.from_conditions(encoder.conditions({"colour": "violet"}), 1)[0].argmax()
    assert c[:, violet].mean() > 0.01 > 2 / len(x)  # 2 training rows, oversampled by log-frequency


def test_hide_blanks_exactly_the_conditioned_columns(encoded: tuple[TabularEncoder, torch.Tensor]) -> None:
    encoder, x = encoded
    vector = ConditionVector(encoder.layout_)
    c = vector.from_conditions(encoder.conditions({"member": True}), len(x))
    hidden = vector.hide(x, c)
    member = [i for s in encoder.layout_ if s.column == "member" for i in range(s.start, s.stop)]
    others = [i for i in range(encoder.width_) if i not in member]
    assert (hidden[:, member] == 0).all() and torch.equal(hidden[:, others], x[:, others])


def test_seeded_initialisation_repeats() -> None:
    first = init_weights(mlp([5, 8, 3]), torch.Generator().manual_seed(0))
    again = init_weights(mlp([5, 8, 3]), torch.Generator().manual_seed(0))
    other = init_weights(mlp([5, 8, 3]), torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters(), strict=True))
    assert not torch.equal(first[0].weight, other[0].weight)


def test_early_stopping_waits_then_restores_the_best_weights() -> None:
    module = nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2)
    assert not stopper.step(1.0, module)
    best = module.weight.detach().clone()
    with torch.no_grad():
        module.weight.add_(1.0)
    assert not stopper.step(1.5, module)
    assert stopper.step(1.2, module)
    assert torch.equal(stopper.restore(module).weight, best)


def test_the_budget_scales_with_the_rows() -> None:
    """Big tables run `steps`; small ones stop at `epochs` passes, but not under `min_steps`.

    The `min_steps` floor gives way only when `steps` itself is smaller.
    """
    config = TrainingConfig(steps=3000, epochs=100, min_steps=400, batch_size=500)
    small, big = (config.plan(rows, batch_for(rows, config.batch_size)) for rows in (500, 30_000))
    assert small.batch < big.batch == 500
    assert big.steps == 3000 and big.check_every == big.per_epoch == 60
    assert small.steps == 100 * small.per_epoch == 800
    assert config.plan(50, 64).steps == 400
    assert TrainingConfig(steps=150, min_steps=400).plan(50, 64).steps == 150


def _regression(seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 3, generator=g)
    layer = nn.Linear(3, 1)
    init_weights(layer, g)
    return layer, x, x @ torch.tensor([[1.0], [-2.0], [0.5]])


def _fit(steps: int = 100, **options: Any) -> tuple[nn.Linear, list[float], History]:
    model, x, y = _regression()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    rates: list[float] = []

    def loss() -> torch.Tensor:
        rates.append(optimiser.param_groups[0]["lr"])
        return (model(x) - y).square().mean()

    kept, history = train(model, [Update("mse", optimiser, loss)], Plan(steps, 32, 8, 10), name="toy", **options)
    return kept, rates, history


def test_the_loop_decays_the_rate_to_zero_and_records_every_check() -> None:
    _, rates, history = _fit()
    assert rates[0] == 0.05 and rates[-1] == pytest.approx(0.05 / 100) and rates == sorted(rates, reverse=True)
    assert [r["step"] for r in history.records] == list(range(10, 101, 10))
    assert history.records[-1]["epoch"] == 100 / 8 and history.epochs == 12.5
    assert history.records[-1]["mse"] < history.records[0]["mse"] and history.records[0]["held_out"] is None
    assert history.steps == history.planned_steps == 100 and not history.stopped_early
    assert _fit(decay=False)[1] == [0.05] * 100


def test_the_loop_stops_on_a_held_out_plateau_and_keeps_the_best_weights() -> None:
    """A held-out loss that is best at the second check: training stops `patience` checks later.

    The weights of that check come back.
    """
    snapshots: list[torch.Tensor] = []

    def held_out(module: nn.Module) -> float:
        snapshots.append(module.weight.detach().clone())
        return [3.0, 1.0, 2.0, 2.0, 2.0][len(snapshots) - 1]

    kept, _, history = _fit(held_out=held_out, patience=3)
    assert history.stopped_early and history.steps == 50 and history.best_held_out == 1.0
    assert [r["held_out"] for r in history.records] == [3.0, 1.0, 2.0, 2.0, 2.0]
    assert torch.equal(kept.weight, snapshots[1])


def test_annealing_on_a_plateau_ends_later_at_a_zero_rate_with_the_last_weights() -> None:
    model_weights: list[torch.Tensor] = []

    def held_out(module: nn.Module) -> float:
        model_weights.append(module.weight.detach().clone())
        return 1.0  # never improves after the first check

    kept, rates, history = _fit(held_out=held_out, patience=2, anneal=True)
    assert history.stopped_early and history.steps == 50  # plateau at step 30, then 2 checks of annealing
    assert rates[30] == pytest.approx(0.05 * 0.7)  # the decay goes on from where it was ...
    assert rates[-1] == pytest.approx(rates[30] / 20)  # ... to zero over the 20 steps left, not the 70 planned
    assert torch.equal(kept.weight, model_weights[-1])


def test_the_moving_average_is_what_is_evaluated_and_kept() -> None:
    kept, _, _ = _fit(steps=30, ema_decay=0.9, decay=False)
    _, x, y = _regression()
    assert not any(p.requires_grad for p in kept.parameters())
    plain, _, _ = _fit(steps=30, decay=False)
    assert not torch.equal(kept.weight, plain.weight)
    # the average trails the model: its loss is worse than the plain run's at the same step
    assert (kept(x) - y).square().mean() > (plain(x) - y).square().mean()


@pytest.mark.parametrize("name", ["vae", "autoencoder"])
def test_a_spike_of_zeros_stays_sharp(name: str) -> None:
    """A mostly-zero column (Adult's capital gains) keeps its share of exact zeros.

    Values get a spread per mode, not one per column that would smear the zeros into small counts.
    """
    rng = np.random.default_rng(0)
    n = 2000
    gain = np.where(rng.random(n) < 0.9, 0, rng.lognormal(8, 1, n).round()).astype(np.int64)
    df = pd.DataFrame({"gain": gain, "group": rng.choice(["a", "b"], n).astype(object)})
    schema = Schema(
        (
            ColumnSpec("gain", ColumnKind.NUMERICAL, "int64", bounds=(0.0, float(gain.max())), integer=True),
            ColumnSpec("group", ColumnKind.CATEGORICAL, "object", categories=("a", "b")),
        )
    )
    synthetic = create(name, {"steps": 1000}, device="cpu").fit(df, schema).sample(n)
    assert (synthetic["gain"] == 0).mean() == pytest.approx(0.9, abs=0.04)
