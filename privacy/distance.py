"""Privacy by distance: do synthetic rows sit closer to the training records than to fresh ones?

Distances are Gower-style over the learned columns: a numerical or datetime column adds
|a - b| / (the real column's range), a categorical or boolean column adds 1 on a mismatch, and the
sum is divided by the number of columns, so a distance lies in [0, 1] (a value outside the real
range counts as the range's nearer end). A null is a value of its own: null to null is 0, null to a
value 1. Id, PII and text columns are left out: they are regenerated from their format, so a match
there says nothing about training.

Distances are computed on the full tables, a chunk of query rows at a time, in torch on the CPU:
the numerical part by `torch.cdist(p=1)`, the categorical part by a one-hot product (matches
counted as `A @ B.T`), so nothing loops over rows in Python.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from generators.schema import BadInputError, ColumnKind, Schema

logger = logging.getLogger(__name__)

_NUMERIC = (ColumnKind.NUMERICAL, ColumnKind.DATETIME)
_DISCRETE = (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True)
class DcrShare:
    """`share`: 0.5 for a generator that learned the population, 1 for one that copies training rows.

    `p_value`: one-sided binomial test that synthetic rows find their nearest record in train more
    often than the train/holdout sizes alone explain (tie fractions are summed and rounded, which
    errs towards larger p-values). `chunk_seconds`: time per chunk of synthetic rows, the first
    including the encoding.
    """

    share: float
    p_value: float
    chunk_seconds: tuple[float, ...]


@dataclass(frozen=True)
class PrivacyResult:
    """The distance-based privacy numbers the gate reads.

    `exact_match_rate`: share of synthetic rows equal to some training row on the learned columns.
    `holdout_exact_match_rate`: the same for holdout rows, the baseline a real table sets by itself
    (real tables hold duplicate rows, so a faithful generator reproduces some too).
    """

    dcr_share: float
    dcr_p_value: float
    exact_match_rate: float
    holdout_exact_match_rate: float
    chunk_seconds: tuple[float, ...]
    elapsed_s: float


def evaluate_privacy(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *, chunk_rows: int = 512
) -> PrivacyResult:
    """Distance-to-closest-record share and exact-match rates of `synthetic` against the real split."""
    start = time.perf_counter()
    dcr = dcr_share(train, holdout, synthetic, schema, chunk_rows=chunk_rows)
    result = PrivacyResult(
        dcr_share=dcr.share,
        dcr_p_value=dcr.p_value,
        exact_match_rate=exact_match_rate(synthetic, train, schema),
        holdout_exact_match_rate=exact_match_rate(holdout, train, schema),
        chunk_seconds=dcr.chunk_seconds,
        elapsed_s=time.perf_counter() - start,
    )
    logger.info(
        "privacy: dcr share %.4f (p=%.3g), exact matches %.4f vs holdout %.4f, in %.1f s",
        result.dcr_share,
        result.dcr_p_value,
        result.exact_match_rate,
        result.holdout_exact_match_rate,
        result.elapsed_s,
    )
    return result


def dcr_share(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *, chunk_rows: int = 512
) -> DcrShare:
    """How often a synthetic row's nearest real record is a training one, weighed for the split sizes.

    Each synthetic row scores 1 if its nearest record is in train, 0 if in holdout, and on a tie the
    train share of the records at that distance. If the generator's output does not depend on which
    rows it trained on, the nearest record is in train with probability p0 = |train| / (|train| +
    |holdout|), exactly, since the split was random. The mean score s is therefore reported as
    s(1-p0) / (s(1-p0) + (1-s)p0): each side weighed by its size, 0.5 for an honest generator and 1
    for one that copies training rows. Using all of train, rather than a subsample the size of the
    holdout, keeps every memorised record visible: with an 80/20 split a subsample would show only a
    quarter of the copies.
    """
    if train.empty or holdout.empty:
        raise BadInputError("privacy: the train and holdout frames must both have rows")
    names = [spec.name for spec in schema.learned]
    reference = pd.concat([train[names], holdout[names]], ignore_index=True)
    n_train = len(train)
    scores = np.empty(len(synthetic))
    chunk_seconds = []
    tick = time.perf_counter()
    for start, distances in gower_distance_chunks(synthetic, reference, schema, chunk_rows=chunk_rows):
        to_train, to_holdout = distances[:, :n_train], distances[:, n_train:]
        nearest_train, nearest_holdout = to_train.min(dim=1).values, to_holdout.min(dim=1).values
        score = (nearest_train < nearest_holdout).float()
        tied = nearest_train == nearest_holdout
        at_train = (to_train[tied] == nearest_train[tied, None]).sum(dim=1)
        at_holdout = (to_holdout[tied] == nearest_holdout[tied, None]).sum(dim=1)
        score[tied] = at_train / (at_train + at_holdout)
        scores[start : start + len(score)] = score.numpy()
        now = time.perf_counter()
        chunk_seconds.append(now - tick)
        tick = now
    p0 = n_train / len(reference)
    mean = float(scores.mean())
    test = binomtest(round(float(scores.sum())), len(scores), p0, alternative="greater")
    return DcrShare(
        share=mean * (1 - p0) / (mean * (1 - p0) + (1 - mean) * p0),
        p_value=float(test.pvalue),
        chunk_seconds=tuple(chunk_seconds),
    )


def exact_match_rate(query: pd.DataFrame, reference: pd.DataFrame, schema: Schema) -> float:
    """Share of `query` rows equal to some `reference` row on the learned columns.

    Numerical values are compared at float32 precision (about 7 significant digits), so a copied
    value that went through a generator's float decoding still counts as copied; datetimes are
    compared to the microsecond and nulls equal nulls.
    """
    numeric, codes = _learned_arrays([reference, query], schema)
    is_datetime = np.array([spec.kind is ColumnKind.DATETIME for spec in schema.of_kind(*_NUMERIC)], dtype=bool)
    rounded = np.where(is_datetime, numeric, numeric.astype(np.float32).astype(np.float64))
    canonical = np.where(np.isnan(rounded), np.nan, rounded + 0.0)  # one NaN bit pattern, no -0.0
    keys = pd.util.hash_pandas_object(pd.DataFrame(np.column_stack([canonical, codes])), index=False).to_numpy()
    return float(np.isin(keys[len(reference) :], keys[: len(reference)]).mean())


def gower_distance_chunks(
    query: pd.DataFrame,
    reference: pd.DataFrame,
    schema: Schema,
    *,
    chunk_rows: int = 512,
    onehot_max_levels: int = 512,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Gower distances from each chunk of `query` rows to every `reference` row, as (first row, matrix).

    Numerical ranges come from `reference`. A categorical column with more than `onehot_max_levels`
    distinct values is compared code to code instead of through the one-hot product, so the one-hot
    matrix stays small (|reference| x levels floats) whatever the cardinality.
    """
    if query.empty or reference.empty:
        raise BadInputError("privacy: cannot measure distances to or from an empty frame")
    if chunk_rows < 1:
        raise BadInputError(f"privacy: chunk_rows must be positive, got {chunk_rows}")
    numeric, codes = _learned_arrays([reference, query], schema)
    n_features = numeric.shape[1] + codes.shape[1]
    if n_features == 0:
        raise BadInputError("privacy: the schema has no learned columns to compare")
    n_ref = len(reference)
    embedded = torch.from_numpy(_embed(numeric, n_ref)).float()
    levels = codes.max(axis=0) + 1
    narrow = levels <= onehot_max_levels
    onehot = _one_hot(codes[:, narrow], levels[narrow])
    wide = torch.from_numpy(codes[:, ~narrow])
    logger.debug("privacy: %d one-hot levels, %d code-compared columns", onehot.shape[1], wide.shape[1])
    for start in range(0, len(query), chunk_rows):
        rows = slice(n_ref + start, n_ref + min(start + chunk_rows, len(query)))
        distances = torch.cdist(embedded[rows], embedded[:n_ref], p=1)
        distances.addmm_(onehot[rows], onehot[:n_ref].T, alpha=-1)  # minus the categorical matches
        for column in range(wide.shape[1]):
            distances.sub_((wide[rows, column, None] == wide[None, :n_ref, column]).float())
        yield start, distances.add_(codes.shape[1]).div_(n_features)


def _learned_arrays(frames: Sequence[pd.DataFrame], schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """The frames' learned columns, stacked: numbers (float64, NaN for null) and category codes.

    Datetimes become UTC epoch seconds (naive ones read as UTC). Codes are shared across the frames,
    one per distinct value, with null as a code of its own.
    """
    names = [spec.name for spec in schema.learned]
    stacked = pd.concat([frame[names] for frame in frames], ignore_index=True)
    n = len(stacked)
    numeric = np.column_stack(
        [np.empty((n, 0)), *(_as_number(stacked[spec.name], spec.kind) for spec in schema.of_kind(*_NUMERIC))]
    )
    codes = np.column_stack(
        [np.empty((n, 0), dtype=np.int64), *(_codes(stacked[spec.name]) for spec in schema.of_kind(*_DISCRETE))]
    )
    return numeric, codes


def _as_number(column: pd.Series, kind: ColumnKind) -> np.ndarray:
    if kind is ColumnKind.DATETIME:
        column = (pd.to_datetime(column, utc=True) - _EPOCH) / pd.Timedelta(seconds=1)
    return pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan)


def _codes(column: pd.Series) -> np.ndarray:
    codes, uniques = pd.factorize(column)
    return np.where(codes < 0, len(uniques), codes)


def _embed(numeric: np.ndarray, n_ref: int) -> np.ndarray:
    """Range-scaled values laid out so that L1 distance is Gower's, nulls included.

    A value v, scaled to [0, 1] by the reference range (a value outside it counts as the nearer
    end), becomes (v/2, -v/2) and a null (1/2, 1/2): two values are |a - b| apart, a null is exactly
    1 from any value and 0 from another null.
    """
    reference = pd.DataFrame(numeric[:n_ref])
    low, span = reference.min().to_numpy(), (reference.max() - reference.min()).to_numpy()
    scaled = np.clip((numeric - np.nan_to_num(low)) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    null = np.isnan(scaled)
    return np.concatenate([np.where(null, 0.5, scaled / 2), np.where(null, 0.5, -scaled / 2)], axis=1)


def _one_hot(codes: np.ndarray, levels: np.ndarray) -> torch.Tensor:
    offsets = np.cumsum(levels) - levels
    onehot = torch.zeros(len(codes), int(levels.sum()))
    onehot[torch.arange(len(codes))[:, None], torch.from_numpy(codes + offsets)] = 1.0
    return onehot
