"""Privacy checks on samples of big tables: what a sample would miss is looked for in every row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from generators.tabular.inference import infer_schema
from privacy.distance import PrivacyConfig, distance_evidence, evaluate_privacy


def _people(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.normal(40, 10, rows).round(),
        "income": rng.lognormal(10, 0.8, rows).round(),
        "city": rng.choice(["a", "b", "c", "d"], rows, p=[0.4, 0.3, 0.2, 0.1]),
    })


def test_reproduced_outliers_outside_the_sample_are_found_in_every_part() -> None:
    _, schema = infer_schema(_people(100, 0))
    train, holdout, sample = _people(2_000, 1), _people(2_000, 2), _people(2_000, 3)
    config = PrivacyConfig(alpha=0.001)
    outliers = train.iloc[distance_evidence(train, holdout, sample, schema, config=config).isolated_rows[:20]]
    leaky_part = pd.concat([_people(5_000, 4), outliers.assign(income=outliers["income"] * 1.001)],
                           ignore_index=True)
    honest_part = _people(5_000, 5)

    on_sample = evaluate_privacy(train, holdout, sample, schema, config=config)
    everywhere = evaluate_privacy(train, holdout, sample, schema, config=config,
                                  every_synthetic=lambda: iter([honest_part, leaky_part]))
    honest = evaluate_privacy(train, holdout, sample, schema, config=config,
                              every_synthetic=lambda: iter([honest_part, _people(5_000, 6)]))

    assert on_sample.isolated_excess_ci[0] <= 0  # the sample holds none of the reproduced outliers
    assert everywhere.isolated_reproduced >= 20 and everywhere.isolated_excess_ci[0] > 0
    assert honest.isolated_excess_ci[0] <= 0  # more honest rows near outliers by chance: no false alarm
    assert everywhere.dcr_share == on_sample.dcr_share  # the other checks read the sample alone
