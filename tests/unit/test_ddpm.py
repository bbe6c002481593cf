"""The diffusion generator's own maths and its native conditioning."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_mixed_frame, mixed_schema_for

from generators import ColumnKind, ColumnSpec, Schema, create
from generators.models.ddpm import (
    TabularDiffusion,
    _Groups,
    cosine_alpha_bars,
    multinomial_kl,
    multinomial_posterior,
)

FAST = {"timesteps": 20, "steps": 150, "eval_every": 50}


@pytest.fixture(scope="module")
def fitted() -> TabularDiffusion:
    df = make_mixed_frame()
    model = create("ddpm", FAST, seed=0, device="cpu").fit(df, mixed_schema_for(df))
    assert isinstance(model, TabularDiffusion)
    return model


def test_the_reverse_chain_undoes_the_forward_one() -> None:
    """A strided reverse chain started from q(x_T) keeps q(x_s)'s marginal at every step and ends on the prior.

    That is with the x_0 that makes the reverse step exact for one group (the prior itself).
    """
    prior = torch.tensor([0.7, 0.2, 0.06, 0.04])
    groups = _Groups([len(prior)], torch.device("cpu"))
    bars = cosine_alpha_bars(50).float()
    generator = torch.Generator().manual_seed(0)
    n = 200_000

    def marginal(bar: torch.Tensor) -> torch.Tensor:
        return bar * prior + (1 - bar) / len(prior)

    onehot = groups.sample(marginal(bars[50]).log().expand(n, -1), generator)
    for t, s in itertools.pairwise([50, 40, 25, 10, 3, 1, 0]):
        log_p = multinomial_posterior(prior.log().expand(n, -1), onehot, bars[t], bars[s], groups)
        onehot = groups.sample(log_p, generator)
        assert torch.allclose(onehot.sum(dim=1), torch.ones(n))
        torch.testing.assert_close(onehot.mean(dim=0), marginal(bars[s]), atol=4e-3, rtol=0)


def test_the_last_step_kl_is_the_decoders_negative_log_likelihood() -> None:
    groups = _Groups([3, 2], torch.device("cpu"))
    x0 = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0]])
    xt = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0]])
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.5, 0.1]])
    bar_t, bar_s = torch.tensor(0.9), torch.tensor(1.0)
    log_q = multinomial_posterior(x0.clamp_min(1e-30).log(), xt, bar_t, bar_s, groups)
    log_p = multinomial_posterior(groups.log_normalise(logits), xt, bar_t, bar_s, groups)
    # p(x_0 | x_1) ∝ (α x_1 + (1 - α)/K) ⊙ softmax(logits), in each group
    expected = []
    for (a, b), k in zip([(0, 3), (3, 5)], (1, 3), strict=True):
        weights = (bar_t * xt[0, a:b] + (1 - bar_t) / (b - a)) * logits[0, a:b].softmax(dim=0)
        expected.append(-(weights[k - a] / weights.sum()).log())
    torch.testing.assert_close(multinomial_kl(log_q, log_p, groups), torch.stack(expected)[None])


def test_conditioning_on_a_rare_category_needs_no_rejection(
    fitted: TabularDiffusion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fitted, "_sample", lambda *args: pytest.fail("fell back to rejection sampling"))
    fixed = fitted.encoder_.conditions({"colour": "violet", "member": False})
    rows = fitted._sample_conditional(500, torch.Generator().manual_seed(0), fixed)
    assert fitted.encoder_.matches(rows, fixed).all()
    decoded = fitted.sample(500, seed=1, conditions={"colour": "violet"})
    assert (decoded["colour"] == "violet").all() and decoded["age"].nunique() > 10


def test_conditioning_carries_over_to_the_columns_that_depend_on_it() -> None:
    """Asked for the rarest kind, the twisted sampler must bring its twin and sizes along, not just write it in.

    `twin` copies `kind`, and `size` follows it.
    """
    rng = np.random.default_rng(0)
    kind = rng.choice(["a", "b", "c"], 2000, p=[0.6, 0.3, 0.1])
    frame = pd.DataFrame({"kind": kind, "twin": kind, "size": rng.normal(0, 1, 2000) + 4 * (kind == "c")})
    schema = Schema(
        (
            ColumnSpec("kind", ColumnKind.CATEGORICAL, "object"),
            ColumnSpec("twin", ColumnKind.CATEGORICAL, "object"),
            ColumnSpec("size", ColumnKind.NUMERICAL, "float64"),
        )
    )
    model = create("ddpm", {"timesteps": 20, "steps": 1500}, seed=0, device="cpu")
    rows = model.fit(frame, schema).sample(1000, seed=0, conditions={"kind": "c"})
    assert (rows["kind"] == "c").all()
    assert (rows["twin"] == "c").mean() > 0.85
    assert rows["size"].median() > 3


def test_the_untrained_network_already_samples_every_categorys_frequency() -> None:
    """The output layer starts at the log frequencies, which makes each group's reverse chain exact."""
    real = make_mixed_frame()
    params = {"timesteps": 20, "steps": 1, "learning_rate": 1e-12}
    rows = create("ddpm", params, seed=0, device="cpu").fit(real, mixed_schema_for(real)).sample(4000, seed=2)
    for column in ("colour", "member"):
        real_shares = real[column].value_counts(normalize=True, dropna=False)
        shares = rows[column].value_counts(normalize=True, dropna=False).reindex(real_shares.index, fill_value=0)
        assert (shares - real_shares).abs().max() < 0.03, column


def test_a_busy_machine_does_not_change_the_model() -> None:
    """The budget is in steps, never in seconds.

    Fitted again with the same seed while other processes keep every core busy, the model runs the same steps and
    samples the same rows.
    """
    real, schema = make_mixed_frame(), mixed_schema_for(make_mixed_frame())

    def fit() -> TabularDiffusion:
        model = create("ddpm", {**FAST, "steps": 400}, seed=0, device="cpu").fit(real, schema)
        assert isinstance(model, TabularDiffusion)
        return model

    quiet = fit()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        busy = fit()
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert busy.history_ == quiet.history_  # every check's losses, to the last bit
    pd.testing.assert_frame_equal(busy.sample(300, seed=1), quiet.sample(300, seed=1))
