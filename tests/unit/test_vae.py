"""The VAE's own behaviour: native conditioning, early stopping."""

from __future__ import annotations

import pytest
import torch
from conftest import make_mixed_frame, make_tiered_table, mixed_schema_for

from generators import create
from generators.models.vae import VAEGenerator


def test_conditioning_is_native_not_rejection() -> None:
    """Asked for the rare kind, the decoder makes it by itself, and the other columns follow it."""
    df, schema = make_tiered_table(2000)
    model = create("vae", {"steps": 1000}, seed=0, device="cpu").fit(df, schema)
    assert isinstance(model, VAEGenerator)
    fixed = model.encoder_.conditions({"kind": "rare"})
    with torch.no_grad():
        rows = model._sample_conditional(1000, torch.Generator().manual_seed(0), fixed)
    assert model.encoder_.matches(rows, fixed).float().mean() > 0.6  # before the base writes the value in
    rare = model.sample(1000, seed=1, conditions={"kind": "rare"})
    free = model.sample(1000, seed=1)
    assert (rare["tier"] == "gold").mean() > 0.6 > 0.2 > (free["tier"] == "gold").mean()
    assert rare["spend"].median() > free["spend"].median() + 200


def test_training_stops_early_on_the_held_out_elbo() -> None:
    """300 epochs planned on 360 training rows; the held-out ELBO stops improving long before.

    The checks are once an epoch.
    """
    df = make_mixed_frame()
    history = create("vae", {"steps": 100_000, "patience": 3}, device="cpu").fit(df, mixed_schema_for(df)).history_
    assert history.planned_steps == 300 * 6 and history.stopped_early and history.epochs < 300
    assert [r["epoch"] for r in history.records] == list(range(1, len(history.records) + 1))
    held_out = [r["held_out"] for r in history.records]
    assert history.best_held_out == pytest.approx(min(held_out), rel=2e-3)
    assert min(held_out) < held_out[0]
