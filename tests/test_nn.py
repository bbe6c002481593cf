"""The shared neural building blocks: output layout maths, condition vectors, training helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_mixed_frame, mixed_schema_for
from torch import nn

from generators import create
from generators.nn.layers import ConditionVector, OutputLayout, init_weights, mlp
from generators.nn.training import EarlyStopping, schedule
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


def test_the_schedule_scales_with_the_rows() -> None:
    small_batch, small_epochs = schedule(500, steps=3000, max_batch=500)
    big_batch, big_epochs = schedule(30_000, steps=3000, max_batch=500)
    assert small_batch < big_batch == 500
    assert small_epochs > big_epochs
    assert big_epochs * 30_000 / big_batch == pytest.approx(3000, rel=0.05)


@pytest.mark.parametrize("name", ["vae", "autoencoder"])
def test_a_spike_of_zeros_stays_sharp(name: str) -> None:
    """A mostly-zero column (Adult's capital gains) keeps its share of exact zeros: values get a spread
    per mode, not one per column that would smear the zeros into small counts."""
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
