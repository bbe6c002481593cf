"""The VAE's own behaviour: native conditioning, early stopping."""

from __future__ import annotations

import logging

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


def test_training_stops_early_on_the_held_out_elbo(caplog: pytest.LogCaptureFixture) -> None:
    df = make_mixed_frame()
    with caplog.at_level(logging.INFO, logger="generators.nn"):
        create("vae", {"steps": 100_000, "patience": 3}, device="cpu").fit(df, mixed_schema_for(df))
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("vae: epoch")]
    planned = int(epochs[0].split("/")[1].split(",")[0])
    assert len(epochs) < planned
