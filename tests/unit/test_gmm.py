"""gmm's sampling: every one-hot level gets its training share, rare ones included."""

from __future__ import annotations

import torch

from generators.models.gmm import assign_by_quota
from generators.tabular.encoder import Span


def test_quotas_keep_a_level_that_argmax_would_never_pick_and_give_it_the_rows_that_favour_it() -> None:
    generator = torch.Generator().manual_seed(0)
    n = 10_000
    x = torch.randn(n, 4, generator=generator) * 0.03 + torch.tensor([0.0, 0.7, 0.3, 0.01])
    x[:, 3] += torch.linspace(0, 0.2, n)  # later rows favour the rare level more, never above the commonest
    assert (x[:, 1:].argmax(dim=1) == 2).sum() == 0  # argmax: the 1% level vanishes
    shares = torch.tensor([0.69, 0.30, 0.01])
    out = assign_by_quota(x, [Span("c", "category", 1, 3, "softmax")], shares)
    level = out[:, 1:].argmax(dim=1)
    assert torch.equal(out[:, 0], x[:, 0])  # columns outside the groups are left alone
    assert torch.equal(out[:, 1:].sum(dim=1), torch.ones(n))  # one-hot rows
    counts = torch.bincount(level, minlength=3)
    assert counts.tolist() == [6_900, 3_000, 100]
    assert level[-2_000:].eq(2).sum() > 80  # the rows that favour it most (at random: about 20 of 100)
