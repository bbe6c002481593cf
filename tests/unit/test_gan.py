"""The GAN's own behaviour: its losses, its sampling of conditions, native conditioning, early stopping."""

from __future__ import annotations

import pytest
import torch
from conftest import make_mixed_frame, make_tiered_table, mixed_schema_for

from generators import create
from generators.models.gan import FidelityProxy, GanGenerator, _Critic, conditional_loss, critic_loss, slot_frequencies
from generators.nn.layers import ConditionVector
from generators.tabular.encoder import TabularEncoder

FAST = {"batch_size": 500, "steps": 1200, "eval_every": 200}


@pytest.fixture(scope="module")
def tiered() -> GanGenerator:
    df, schema = make_tiered_table(3000)
    model = create("gan", FAST, seed=0, device="cpu").fit(df, schema)
    assert isinstance(model, GanGenerator)
    return model


def test_conditioning_on_a_rare_category_is_native_not_rejection(tiered: GanGenerator) -> None:
    """Asked for the rare kind, the generator makes it by itself, and the other columns follow it."""
    fixed = tiered.encoder_.conditions({"kind": "rare"})
    rows = tiered._sample_conditional(1000, torch.Generator().manual_seed(0), fixed)
    assert tiered.encoder_.matches(rows, fixed).float().mean() > 0.8  # before the base writes the value in
    rare = tiered.sample(1000, seed=1, conditions={"kind": "rare"})
    free = tiered.sample(1000, seed=1)
    assert (free["kind"] == "rare").mean() < 0.1
    assert (rare["tier"] == "gold").mean() > 0.5 > 0.2 > (free["tier"] == "gold").mean()
    assert rare["spend"].median() > free["spend"].median() + 200


def test_unconditional_samples_keep_the_frequencies_not_the_training_log_frequencies(tiered: GanGenerator) -> None:
    share = (tiered.sample(4000, seed=2)["kind"] == "rare").mean()
    assert 0.01 < share < 0.07  # 3 % in the data; training-by-sampling shows it ~20 % of the time


def test_slot_frequencies_pick_a_column_uniformly_then_a_value_by_its_frequency() -> None:
    df, schema = make_tiered_table(3000)
    encoder = TabularEncoder().fit(df, schema)
    x = encoder.transform(df)
    conditions = ConditionVector(encoder.layout_)
    probs = slot_frequencies(conditions, x)
    for column in ("kind", "tier"):
        for value, share in df[column].value_counts(normalize=True).items():
            slot = int(conditions.from_conditions(encoder.conditions({column: value}), 1).argmax())
            assert float(probs[slot]) == pytest.approx(share / 2, rel=1e-5)
    assert float(probs.sum()) == pytest.approx(1.0)


def test_the_gradient_penalty_is_zero_at_unit_gradient_norm_and_grows_off_it() -> None:
    """A linear critic has the same input gradient everywhere.

    A unit-norm one costs nothing, a double-norm one costs `penalty` x (2 - 1)^2.
    """
    critic = _Critic(inputs=3, dims=(4,), pac=2)
    linear = torch.nn.Sequential(torch.nn.Linear(6, 1))
    with torch.no_grad():
        linear[0].weight.copy_(torch.tensor([[1.0, 2.0, 2.0, 0.0, 0.0, 4.0]]) / 5)  # norm 1
        linear[0].bias.zero_()
    critic.net = linear
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    plain = critic_loss(critic, real, fake, 0.0, g)
    assert torch.allclose(critic_loss(critic, real, fake, 10.0, g), plain, atol=1e-5)
    with torch.no_grad():
        linear[0].weight.mul_(2)
    assert torch.allclose(critic_loss(critic, real, fake, 10.0, g), 2 * plain + 10.0, atol=1e-4)


def test_the_conditional_loss_only_judges_the_conditioned_column() -> None:
    df, schema = make_tiered_table(50)
    encoder = TabularEncoder().fit(df, schema)
    conditions = ConditionVector(encoder.layout_)
    kind, tier = (s for s in encoder.layout_ if s.role == "category")
    cond = conditions.from_conditions(encoder.conditions({"kind": "rare"}), 4)  # the 4th kind slot
    raw = torch.zeros(4, encoder.width_)
    raw[:, kind.start + 3] = 20.0  # confident in "rare"
    raw[:, tier.start] = -50.0  # whatever the unconditioned tier says
    assert conditional_loss(raw, cond, conditions) < 1e-6
    raw[:, kind.start + 3] = -20.0
    assert conditional_loss(raw, cond, conditions) > 20.0


def test_the_fidelity_proxy_sees_marginals_and_pairs() -> None:
    df, schema = make_tiered_table(3000)
    encoder = TabularEncoder().fit(df, schema)
    x = encoder.transform(df)
    proxy = FidelityProxy(encoder.layout_, x, bins=10)
    assert proxy.distance(x) == pytest.approx(0.0, abs=1e-6)
    unpaired = x.clone()
    kind = next(s for s in encoder.layout_ if s.column == "kind")
    unpaired[:, kind.start : kind.stop] = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))][
        :, kind.start : kind.stop
    ]
    shifted = x.clone()
    shifted[:, kind.start : kind.stop] = 0.0
    shifted[:, kind.start] = 1.0  # every row "a"
    assert 0.005 < proxy.distance(unpaired) < proxy.distance(shifted)


def test_training_stops_early_and_keeps_the_best_checkpoint() -> None:
    df = make_mixed_frame()
    params = {"batch_size": 200, "steps": 5000, "min_steps": 5000, "eval_every": 20, "patience": 2}
    history = create("gan", params, device="cpu").fit(df, mixed_schema_for(df)).history_
    assert history.planned_steps == 5000 and history.stopped_early and history.steps < 5000
    checks = [r["held_out"] for r in history.records]
    assert len(checks) == history.steps // 20 and all(r["critic"] is not None for r in history.records)
    assert history.best_held_out == pytest.approx(min(checks), rel=2e-3)
    assert checks.index(min(checks)) < len(checks) - 2  # the last two checks did not improve
