"""The RBM's own promises: exact gradients, a structure-aware free energy, early stopping, clamped conditions.

Exact closed-form gradients and pseudo-likelihoods, a free energy that knows the table's structure, early
stopping, and conditions that are clamped rather than rejected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from generators import ColumnKind, ColumnSpec, Schema, create
from generators.base import Generator
from generators.models.rbm import _RBM, contrastive_gradients, free_energy, pseudo_log_likelihood
from generators.nn.layers import OutputLayout
from generators.tabular.encoder import Span

FAST = {"steps": 400, "hidden": [24], "learning_rate": 0.01, "burn_in": 20, "thinning": 2}


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, Schema]:
    """`kind` decides `tier` (one level each) and shifts `score`; `noise` is independent of both."""
    n, seed = 1000, 0
    rng = np.random.default_rng(seed)
    kind = rng.choice(list("abc"), n, p=[0.5, 0.3, 0.2])
    tier = np.array([{"a": "low", "b": "mid", "c": "high"}[k] for k in kind], dtype=object)
    score = np.array([{"a": -2.0, "b": 0.0, "c": 2.0}[k] for k in kind]) + 0.3 * rng.normal(size=n)
    frame = pd.DataFrame({"kind": kind.astype(object), "tier": tier, "score": score, "noise": rng.normal(size=n)})
    schema = Schema(
        (
            ColumnSpec("kind", ColumnKind.CATEGORICAL, "object", categories=tuple("abc")),
            ColumnSpec("tier", ColumnKind.CATEGORICAL, "object", categories=("high", "low", "mid")),
            ColumnSpec("score", ColumnKind.NUMERICAL, "float64"),
            ColumnSpec("noise", ColumnKind.NUMERICAL, "float64"),
        )
    )
    return frame, schema


@pytest.fixture(scope="module")
def model(table: tuple[pd.DataFrame, Schema]) -> Generator:
    return create("rbm", FAST, seed=0, device="cpu").fit(*table)


def _toy(seed: int = 0) -> tuple[_RBM, OutputLayout, torch.Tensor]:
    """A small random centred RBM over a value, a 3-slot group and a flag, with some valid rows."""
    layout = OutputLayout(
        [Span("x", "value", 0, 1, "tanh"), Span("c", "category", 1, 3, "softmax"), Span("f", "flag", 4, 1, "sigmoid")]
    )
    g = torch.Generator().manual_seed(seed)
    rbm = _RBM(5, 4, layout.values)
    with torch.no_grad():
        for tensor in (rbm.weight, rbm.visible_bias, rbm.hidden_bias, rbm.log_variance, rbm.visible_offset):
            tensor.copy_(0.5 * torch.randn(tensor.shape, generator=g))
        rbm.hidden_offset.copy_(torch.rand(4, generator=g))
    slots = torch.randint(0, 3, (6,), generator=g)
    rows = torch.cat(
        [
            torch.randn(6, 1, generator=g),
            torch.nn.functional.one_hot(slots, 3).float(),
            torch.randint(0, 2, (6, 1), generator=g).float(),
        ],
        dim=1,
    )
    return rbm, layout, rows


def test_closed_form_gradients_equal_autograd_of_the_free_energy() -> None:
    rbm, _, rows = _toy()
    positive, negative = rows[:3], rows[3:]
    with torch.no_grad():
        contrastive_gradients(rbm, positive, negative)
    closed = {name: p.grad.clone() for name, p in rbm.named_parameters() if p.grad is not None}
    rbm.zero_grad(set_to_none=True)
    (free_energy(rbm, positive).mean() - free_energy(rbm, negative).mean()).backward()
    assert set(closed) == {name for name, _ in rbm.named_parameters()}
    for name, p in rbm.named_parameters():
        torch.testing.assert_close(closed[name], p.grad, msg=name)


def test_pseudo_log_likelihood_is_the_free_energy_softmax_over_each_unit() -> None:
    rbm, layout, rows = _toy(1)

    def log_conditional(row: torch.Tensor, alternatives: list[torch.Tensor]) -> torch.Tensor:
        energies = -torch.stack([free_energy(rbm, a[None])[0] for a in alternatives])
        return energies.log_softmax(dim=0)[next(i for i, a in enumerate(alternatives) if torch.equal(a, row))]

    expected = []
    for row in rows:
        slots = [row.clone().index_copy(0, torch.arange(1, 4), torch.eye(3)[k]) for k in range(3)]
        flags = [row.clone().index_fill(0, torch.tensor([4]), float(bit)) for bit in (0, 1)]
        expected.append(log_conditional(row, slots) + log_conditional(row, flags))
    with torch.no_grad():
        torch.testing.assert_close(pseudo_log_likelihood(rbm, layout, rows), torch.stack(expected).detach())


def test_free_energy_is_lower_for_rows_that_keep_the_structure(
    model: Generator, table: tuple[pd.DataFrame, Schema]
) -> None:
    real = table[0]
    shuffled = real.assign(tier=real["tier"].sample(frac=1.0, random_state=0).to_numpy())
    assert np.mean(model.score(real)) > np.mean(model.score(shuffled)) + 1.0


def test_samples_keep_the_structure(model: Generator) -> None:
    synthetic = model.sample(3000, seed=1)
    expected = {"a": "low", "b": "mid", "c": "high"}
    for kind, rows in synthetic.groupby("kind"):
        assert (rows["tier"] == expected[str(kind)]).mean() > 0.8, kind
        assert rows["score"].median() == pytest.approx({"a": -2.0, "b": 0.0, "c": 2.0}[str(kind)], abs=0.5)


def test_conditions_are_clamped_not_rejected(model: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "_sample", lambda *_: pytest.fail("conditioning fell back to rejection"))
    rows = model.sample(1000, seed=2, conditions={"kind": "c"})
    assert (rows["kind"] == "c").all()
    assert (rows["tier"] == "high").mean() > 0.8
    assert rows["score"].median() > 1.0


def test_training_stops_and_anneals_on_a_held_out_plateau(table: tuple[pd.DataFrame, Schema]) -> None:
    """A budget of 300 epochs on a table whose few dependencies are learnt in a few: training stops early.

    Before it stops, the learning rate is annealed to zero over the last checks.
    """
    frame, schema = table
    model = create("rbm", {**FAST, "steps": 100_000, "hidden": [8]}, seed=0, device="cpu").fit(frame, schema)
    history = model.history_
    assert history.planned_steps == 300 * 14  # 900 training rows: 14 batches of 64 an epoch
    assert history.stopped_early and history.epochs < 200
    assert history.records[-1]["learning_rate"] == 0.0 < history.records[-2]["learning_rate"]
    assert history.best_held_out == pytest.approx(min(r["held_out"] for r in history.records), rel=2e-3)
