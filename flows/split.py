"""The seeded train/holdout split: the holdout is never seen by a generator.

So privacy tests can use it as the population's fresh rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from generators.tabular.errors import BadInputError

MIN_ROWS_PER_PART = 10


def split_holdout(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): a seeded random `fraction` of the rows held out, both with a fresh index."""
    if not 0 < fraction < 1:
        raise BadInputError(f"holdout fraction must be between 0 and 1, got {fraction}")
    n_holdout = round(len(frame) * fraction)
    if n_holdout < MIN_ROWS_PER_PART or len(frame) - n_holdout < MIN_ROWS_PER_PART:
        raise BadInputError(
            f"the table has {len(frame)} rows: too few to hold out {fraction:.0%} and keep "
            f"{MIN_ROWS_PER_PART} rows on each side"
        )
    order = np.random.default_rng(seed).permutation(len(frame))
    holdout = frame.iloc[np.sort(order[:n_holdout])].reset_index(drop=True)
    train = frame.iloc[np.sort(order[n_holdout:])].reset_index(drop=True)
    return train, holdout
