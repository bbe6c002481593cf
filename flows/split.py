"""The seeded train/holdout split, and the bounded samples a run draws from its sides.

The holdout is never seen by a generator, so privacy tests can use it as the population's fresh rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from generators.tabular.errors import BadInputError

MIN_ROWS_PER_PART = 10
DEFAULT_CHUNK_ROWS = 1_000_000
# Where quality stops improving on Adult-like tables (BENCHMARKS.md, "How many rows a generator needs"): 0.9899
# at 50,000 rows, 0.9905 at 100,000, 0.9900 at 200,000, the C2ST at its ceiling from 25,000.
DEFAULT_TRAIN_ROWS = 50_000
# Each sampled check reads at most this many rows of each table: as many as the model saw by default, so the
# distance checks compare the synthetic rows with every row a model could have memorised.
DEFAULT_CHECK_ROWS = 50_000


@dataclass(frozen=True)
class Limits:
    """How much of a table a run holds at once, whatever the table's size.

    `chunk_rows`: rows read at a time; the first chunk decides the columns' kinds, and a table no longer than
    one chunk is held whole. `train_rows`: the most rows a generator is fitted on. `check_rows`: the most rows
    of each table (training, holdout, synthetic) a sampled check reads.
    """

    chunk_rows: int = DEFAULT_CHUNK_ROWS
    train_rows: int = DEFAULT_TRAIN_ROWS
    check_rows: int = DEFAULT_CHECK_ROWS

    def __post_init__(self) -> None:
        for name in ("chunk_rows", "train_rows", "check_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def split_holdout(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): a seeded random `fraction` of the rows held out, both with a fresh index."""
    train, holdout = holdout_positions(len(frame), fraction, seed)
    return frame.iloc[train].reset_index(drop=True), frame.iloc[holdout].reset_index(drop=True)


def holdout_positions(rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, holdout): the sorted positions of a table's rows on each side of the seeded split.

    Positions, not rows, so a table too big for memory is split the same way as a frame: by position in its
    staged parts.
    """
    if not 0 < fraction < 1:
        raise BadInputError(f"holdout fraction must be between 0 and 1, got {fraction}")
    n_holdout = round(rows * fraction)
    if n_holdout < MIN_ROWS_PER_PART or rows - n_holdout < MIN_ROWS_PER_PART:
        raise BadInputError(
            f"the table has {rows} rows: too few to hold out {fraction:.0%} and keep "
            f"{MIN_ROWS_PER_PART} rows on each side"
        )
    order = np.random.default_rng(seed).permutation(rows)
    return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])


class Stream:
    """The seed streams of a run's samples: each draws from its own stream of the run's seed, apart from the split's."""

    TRAIN = 1  # the rows a generator is fitted on
    HOLDOUT = 2  # the holdout rows the checks read
    CHECKED_TRAIN = 3  # the training rows the checks read
    CHECKED_SYNTHETIC = 4  # the synthetic rows the checks read
    # (each shard's sampling seed comes from the generator's own: `generators.base.sample_seed`)


def stream_seed(seed: int, stream: int, *index: int) -> int:
    """The seed of one stream (and index within it) of the run's `seed`."""
    return int(np.random.SeedSequence([seed, stream, *index]).generate_state(1)[0])


def bounded_rows(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """At most `limit` of the frame's rows, a seeded sample kept in order (the frame itself when it is no longer)."""
    if len(frame) <= limit:
        return frame
    return frame.iloc[seeded_subset(np.arange(len(frame)), limit, seed)].reset_index(drop=True)


def seeded_subset(positions: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most `limit` of `positions`, drawn with `seed` and kept in order: all of them when there are no more.

    The bounded samples a run trains and checks on; the same positions and seed give the same subset.
    """
    if len(positions) <= limit:
        return positions
    return np.sort(np.random.default_rng(seed).choice(positions, size=limit, replace=False))
