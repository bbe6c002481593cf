"""Attacks on a synthetic table: singling out, linkability and attribute inference.

The method is Giomi et al. 2022, "A Unified Framework for Quantifying Privacy Risk in Synthetic Data"
(PETS 2023), as implemented by anonymeter (github.com/statice/anonymeter, `evaluators/` and
`stats/confidence.py`) and reviewed by the CNIL. Each attack is run twice with the synthetic table as
the attacker's knowledge: against records the generator trained on (the attacked set) and against
real records it never saw (the control set). A generator that learned the population, not its rows,
helps the attacker equally on both, so the risk is the attack's excess success over the control's,
scaled to the room the control left: (attack - control) / (1 - control).

Unlike anonymeter, which fits a size correction for singling out, the training rows are subsampled to
the control set's size (and the control to the training set's, if that is smaller), so both sets are
attacked on equal terms. A planted copy of a training row is therefore seen only if that row was drawn:
the risk of a generator that copies a share s of its training rows is about s, not 1.

Nearest neighbours use the Gower distance of `privacy.distance` (nulls equal nulls; anonymeter's
counts two nulls as 1 apart). Ties go to the synthetic row `torch.topk` returns first.

Every interval is anonymeter's Wilson interval at the confidence level 1 - 2 alpha, so that each side
errs with probability `alpha` (the gate reads the lower bound of the risk); the inference risk, the
worst of one attack per column, has its columns' intervals at alpha / (number of columns).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from generators.tabular.checks import CheckSpec, Context, Reading, Rule, Setting, declare
from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from privacy.distance import gower_distance_chunks
from privacy.membership import DEFAULT_ALPHA

if TYPE_CHECKING:
    from privacy.audit import PrivacyAudit

logger = logging.getLogger(__name__)

_NUMERIC = (ColumnKind.NUMERICAL, ColumnKind.DATETIME)
_EPOCH = pd.Timestamp(0, tz="UTC")
_CHUNK_ELEMENTS = 2**22  # distance entries per chunk (16 MiB of float32), per column stream
_SCREEN_ROWS = (256, 2048, 8192)  # sample sizes that screen singling-out candidates before a full count


@dataclass(frozen=True)
class AttackResult:
    """One attack's success rates and the privacy risk they imply, each with its interval at alpha.

    Rates are Wilson score estimates (anonymeter's `success_rate`: the interval's centre, which for
    hundreds of attacks is near the plain share), intervals the centre plus or minus the Wilson error,
    clipped to [0, 1]. `baseline_rate` is a random-guessing attacker's: an attack no better than it
    finds nothing to exploit. `risk` is (attack - control) / (1 - control) with the error propagated
    to first order, clipped to [0, 1] like anonymeter's `bind_value`. `n_attacks`: attacks run on each
    set (queries for singling out, target records otherwise); a NaN rate means none could be run.
    """

    name: str
    attack_rate: float
    attack_ci: tuple[float, float]
    control_rate: float
    control_ci: tuple[float, float]
    baseline_rate: float
    risk: float
    risk_ci: tuple[float, float]
    n_attacks: int

    @classmethod
    def from_counts(
        cls, name: str, n_attacks: int, n_success: int, n_control: int, n_baseline: int, alpha: float = DEFAULT_ALPHA,
        difference_sd: float = 0.0,
    ) -> AttackResult:
        """The risk as anonymeter's `EvaluationResults.risk` gives it, at confidence 1 - 2 alpha.

        Wilson rates, then the residual success and its error (each side of every interval errs with
        probability alpha). `difference_sd`, the spread of attack - control measured by exchanging records,
        widens the risk's error where it exceeds anonymeter's (queries that share records).
        """
        confidence = 1 - 2 * alpha
        attack, attack_error = wilson(n_success, n_attacks, confidence)
        control, control_error = wilson(n_control, n_attacks, confidence)
        baseline, _ = wilson(n_baseline, n_attacks, confidence)
        risk = (attack - control) / (1 - control)
        risk_error = max(math.hypot(attack_error / (1 - control), control_error * (attack - 1) / (1 - control) ** 2),
                         float(norm.ppf(confidence / 2 + 0.5)) * difference_sd / (1 - control))
        return cls(
            name=name,
            attack_rate=attack,
            attack_ci=_bound(attack - attack_error, attack + attack_error),
            control_rate=control,
            control_ci=_bound(control - control_error, control + control_error),
            baseline_rate=baseline,
            risk=_clip(risk),
            risk_ci=_bound(risk - risk_error, risk + risk_error),
            n_attacks=n_attacks,
        )


@dataclass(frozen=True)
class AttacksResult:
    """All attacks of one evaluation; `inference` is that of the secret column most at risk.

    That column is `inference_column`, and its interval is at alpha / number of columns.
    """

    singling_out: AttackResult
    singling_out_univariate: AttackResult
    linkability: AttackResult
    inference: AttackResult
    inference_column: str
    elapsed_s: float


def wilson(n_success: int, n_total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score estimate of a success rate and its error (anonymeter's `success_rate`); NaN if no trials."""
    if n_total == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 * (1 + confidence)))
    denominator = n_total + z * z
    rate = (n_success + z * z / 2) / denominator
    error = z / denominator * math.sqrt(n_success * (n_total - n_success) / n_total + z * z / 4)
    return rate, error


def evaluate_attacks(
    train: pd.DataFrame,
    control: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    seed: int = 0,
    n_attacks: int = 500,
    n_targets: int | None = 2000,
    n_inference_targets: int | None = 500,
    alpha: float = DEFAULT_ALPHA,
) -> AttacksResult:
    """Every attack with its defaults; every interval's sides err with probability `alpha`.

    `n_attacks` singling-out queries, `n_targets` records linked and `n_inference_targets` records whose
    every learned column is inferred in turn (None: every record).
    """
    start = time.perf_counter()
    multivariate = singling_out(train, control, synthetic, schema, n_attacks=n_attacks, seed=seed, alpha=alpha)
    univariate = singling_out(
        train, control, synthetic, schema, n_attacks=n_attacks, mode="univariate", seed=seed, alpha=alpha
    )
    linked = linkability(train, control, synthetic, schema, n_targets=n_targets, seed=seed, alpha=alpha)
    if len(schema.learned) < 2:  # nothing to know that would reveal a secret column: no inference to attempt
        inferred = {"": AttackResult.from_counts("inference", 0, 0, 0, 0, alpha=alpha)}
    else:
        inferred = attribute_inference(
            train, control, synthetic, schema, n_targets=n_inference_targets, seed=seed, alpha=alpha
        )
    worst = max(inferred, key=lambda name: _nan_low(inferred[name].risk))
    result = AttacksResult(
        singling_out=multivariate,
        singling_out_univariate=univariate,
        linkability=linked,
        inference=inferred[worst],
        inference_column=worst,
        elapsed_s=time.perf_counter() - start,
    )
    logger.info(
        "attacks: singling-out risk %.3f (univariate %.3f), linkability %.3f, inference %.3f (%s), in %.1f s",
        multivariate.risk,
        univariate.risk,
        linked.risk,
        result.inference.risk,
        worst,
        result.elapsed_s,
    )
    return result


# --- singling out ------------------------------------------------------------------------------------------

# Predicate operators, compared against a column's values (numbers, or category codes; NaN for null).
# A comparison with a null is false, as in anonymeter's polars queries.
_EQ, _NE, _LE, _GE, _LT, _GT, _NULL, _NOT_NULL = range(8)
_COMPARE: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    _EQ: lambda x, v: x == v,
    _NE: lambda x, v: (x != v) & ~np.isnan(x),
    _LE: lambda x, v: x <= v,
    _GE: lambda x, v: x >= v,
    _LT: lambda x, v: x < v,
    _GT: lambda x, v: x > v,
    _NULL: lambda x, v: np.isnan(x),
    _NOT_NULL: lambda x, v: ~np.isnan(x),
}


@dataclass(frozen=True)
class _Predicates:
    """Conjunctions of `column op value` terms, one row per predicate: (predicates, terms) arrays."""

    columns: np.ndarray
    ops: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.columns)

    def take(self, rows: np.ndarray) -> _Predicates:
        return _Predicates(self.columns[rows], self.ops[rows], self.values[rows])

    def extend(self, other: _Predicates) -> _Predicates:
        return _Predicates(
            np.concatenate([self.columns, other.columns]),
            np.concatenate([self.ops, other.ops]),
            np.concatenate([self.values, other.values]),
        )


def singling_out(
    train: pd.DataFrame,
    control: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    mode: str = "multivariate",
    n_attacks: int = 500,
    n_cols: int = 3,
    max_attempts: int = 200_000,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
) -> AttackResult:
    """Can predicates that isolate one synthetic row isolate one real training record?

    anonymeter's `SinglingOutEvaluator`: the three tables are deduplicated; up to `n_attacks` distinct
    predicates are drawn that match exactly one synthetic row. Univariate ones are a column's value seen
    once, its minimum (`<=`) or maximum (`>=`), or its null when only one row has it. Multivariate ones
    take a random synthetic row and `n_cols` random columns: a number becomes `>=` the row's value if
    that is above the synthetic median, `<=` otherwise, a category `==`, a null `is null`; at most
    `max_attempts` are tried. An attack succeeds when its predicate matches exactly one attacked record.
    The baseline draws random predicates: random columns, values and operators (anonymeter's
    `_random_queries`).
    """
    if mode not in ("univariate", "multivariate"):
        raise BadInputError(f"singling out: mode must be 'univariate' or 'multivariate', got {mode!r}")
    rng = np.random.default_rng(seed)
    attacked, control = _attack_sets(train, control, schema, rng)
    tables = [_deduplicated(t) for t in _as_values([attacked, control, synthetic], schema)]
    attacked_values, control_values, synthetic_values = tables
    # Equal sizes after deduplication too: a predicate singles out one record more often in a smaller set, so
    # a table with many duplicate rows (all-categorical, a few hundred rows) otherwise showed a "risk" of 0.15
    # on real rows never trained on.
    size = min(len(attacked_values), len(control_values))
    attacked_values, control_values = (v[np.sort(rng.choice(len(v), size, replace=False))]
                                       for v in (attacked_values, control_values))
    synthetic_values = synthetic_values[rng.permutation(len(synthetic_values))]  # prefixes: samples for the screen
    numeric = np.array([spec.kind in _NUMERIC for spec in schema.learned])
    if mode == "univariate":
        n_cols = 1
        queries = _univariate_predicates(synthetic_values, numeric, n_attacks, rng)
    else:
        n_cols = min(n_cols, len(numeric))
        queries = _multivariate_predicates(synthetic_values, numeric, n_attacks, n_cols, max_attempts, rng)
    if len(queries) < n_attacks:
        logger.warning(
            "singling out (%s): only %d of %d queries single out a synthetic row", mode, len(queries), n_attacks
        )
    baseline = _random_predicates(synthetic_values, numeric, len(queries), n_cols, rng)
    matches = _match_mask(queries, np.concatenate([attacked_values, control_values]))
    return AttackResult.from_counts(
        f"singling_out_{mode}",
        n_attacks=len(queries),
        n_success=int((matches[:, :size].sum(axis=1) == 1).sum()),
        n_control=int((matches[:, size:].sum(axis=1) == 1).sum()),
        n_baseline=int((_match_counts(baseline, attacked_values) == 1).sum()),
        alpha=alpha,
        difference_sd=_exchanged_difference_sd(matches, size, rng),
    )


def _exchanged_difference_sd(matches: np.ndarray, size: int, rng: np.random.Generator, rounds: int = 200) -> float:
    """The spread of (attack - control) success rates when the attacked and control records are exchangeable.

    Hundreds of queries probe a few hundred records, so they are far from independent trials: the same record
    singled out by many queries moves many successes at once, and anonymeter's Wilson interval over queries is
    too narrow on small tables (real rows never trained on showed risks of 0.12-0.19 against 40 control
    records). Re-splitting the pooled records at random `rounds` times measures the spread at the level of
    records. `matches` is queries x (attacked then control records), `size` records each.
    """
    if not len(matches) or not size:
        return 0.0
    as_float = matches.astype(np.float32)
    halves = np.zeros((2 * size, rounds), dtype=np.float32)
    for column in range(rounds):
        halves[rng.permutation(2 * size)[:size], column] = 1.0
    first = as_float @ halves
    second = as_float.sum(axis=1, keepdims=True) - first
    differences = ((first == 1).mean(axis=0) - (second == 1).mean(axis=0))
    return float(differences.std(ddof=1))


def _univariate_predicates(synthetic: np.ndarray, numeric: np.ndarray, n: int, rng: np.random.Generator) -> _Predicates:
    """The queries of anonymeter's `univariate_singling_out_queries`: values seen once, extremes and lone nulls.

    They come shuffled. Anonymeter counts each candidate's matches afterwards; here only the ones that match
    exactly one synthetic row are made (a minimum or maximum only when a single row holds it).
    """
    terms: list[tuple[int, int, float]] = []
    for column, seen in enumerate(synthetic.T):
        null = np.isnan(seen)
        distinct, counts = np.unique(seen[~null], return_counts=True)
        terms += [(column, _EQ, value) for value in distinct[counts == 1]]
        if null.sum() == 1:
            terms.append((column, _NULL, math.nan))
        if numeric[column] and len(distinct):
            terms += [(column, op, distinct[end]) for op, end in ((_LE, 0), (_GE, -1)) if counts[end] == 1]
    chosen = [terms[i] for i in rng.permutation(len(terms))[:n]]
    as_array = np.array(chosen, dtype=float).reshape(-1, 3)
    return _Predicates(as_array[:, :1].astype(int), as_array[:, 1:2].astype(int), as_array[:, 2:])


def _multivariate_predicates(
    synthetic: np.ndarray, numeric: np.ndarray, n: int, n_cols: int, max_attempts: int, rng: np.random.Generator
) -> _Predicates:
    """The queries of anonymeter's `multivariate_singling_out_queries`, drawn and checked a batch at a time."""
    medians = np.zeros(len(numeric))
    medians[numeric] = np.nanmedian(synthetic[:, numeric], axis=0)
    found = _Predicates(np.empty((0, n_cols), dtype=int), np.empty((0, n_cols), dtype=int), np.empty((0, n_cols)))
    attempts, batch = 0, min(4000, max_attempts)
    while len(found) < n and attempts < max_attempts:
        rows = rng.integers(len(synthetic), size=batch)
        columns = np.sort(np.argsort(rng.random((batch, len(numeric))), axis=1)[:, :n_cols], axis=1)
        values = synthetic[rows[:, None], columns]
        ops = np.where(numeric[columns], np.where(values > medians[columns], _GE, _LE), _EQ)
        drawn = _Predicates(columns, np.where(np.isnan(values), _NULL, ops), values)
        found = _distinct(found.extend(drawn.take(_single_out(drawn, synthetic))), n)
        attempts += batch
    return found


def _random_predicates(
    synthetic: np.ndarray, numeric: np.ndarray, n: int, n_cols: int, rng: np.random.Generator
) -> _Predicates:
    """Anonymeter's `_random_queries`: random columns, a random seen value each and a random operator."""
    columns = np.sort(np.argsort(rng.random((n, len(numeric))), axis=1)[:, :n_cols], axis=1)
    values = np.empty(columns.shape)
    for column, seen in enumerate(synthetic.T):
        at = columns == column
        values[at] = rng.choice(pd.unique(seen), size=int(at.sum()))
    ops = np.where(
        numeric[columns],
        rng.choice([_EQ, _NE, _LT, _GT, _LE, _GE], size=columns.shape),
        rng.choice([_EQ, _NE], size=columns.shape),
    )
    ops = np.where(np.isnan(values), rng.choice([_NULL, _NOT_NULL], size=columns.shape), ops)
    return _Predicates(columns, ops, values)


def _single_out(predicates: _Predicates, shuffled: np.ndarray) -> np.ndarray:
    """Indices of the predicates that match exactly one row of `shuffled` (rows in random order).

    Most drawn predicates match many rows. One that matches two rows of a prefix (a random sample)
    matches too many, so growing prefixes screen the candidates cheaply before the full count.
    """
    keep = np.arange(len(predicates))
    for size in _SCREEN_ROWS:
        if size < len(shuffled):
            keep = keep[_match_counts(predicates.take(keep), shuffled[:size]) < 2]
    return keep[_match_counts(predicates.take(keep), shuffled) == 1]


def _match_counts(predicates: _Predicates, table: np.ndarray) -> np.ndarray:
    """How many rows of `table` each predicate matches: boolean masks a batch of predicates at a time."""
    counts = np.zeros(len(predicates), dtype=np.int64)
    batch = max(1, _CHUNK_ELEMENTS // max(len(table), 1))
    for start in range(0, len(predicates), batch):
        part = predicates.take(np.arange(start, min(start + batch, len(predicates))))
        counts[start : start + len(part)] = _match_mask(part, table).sum(axis=1)
    return counts


def _match_mask(predicates: _Predicates, table: np.ndarray) -> np.ndarray:
    """Which rows of `table` each predicate matches, predicates x rows."""
    by_column = np.ascontiguousarray(table.T)
    mask = np.ones((len(predicates), len(table)), dtype=bool)
    for term in range(predicates.columns.shape[1]):
        for op in np.unique(predicates.ops[:, term]):
            rows = predicates.ops[:, term] == op
            columns, values = predicates.columns[rows, term], predicates.values[rows, term, None]
            mask[rows] &= _COMPARE[int(op)](by_column[columns], values)
    return mask


def _distinct(predicates: _Predicates, n: int) -> _Predicates:
    """The first `n` distinct predicates, in order (anonymeter's `UniqueSinglingOutQueries`)."""
    keys = pd.DataFrame(np.column_stack([predicates.columns, predicates.ops, predicates.values]))
    first = np.flatnonzero(~keys.duplicated().to_numpy())
    return predicates.take(first[:n])


def _as_values(frames: Sequence[pd.DataFrame], schema: Schema) -> list[np.ndarray]:
    """The frames' learned columns as float arrays, NaN for null, so one comparison serves every kind.

    Numbers stay numbers (datetimes in UTC seconds); categories become shared category codes.
    """
    names = [spec.name for spec in schema.learned]
    stacked = pd.concat([frame[names] for frame in frames], ignore_index=True)
    columns = [_column_values(stacked[spec.name], spec) for spec in schema.learned]
    values = np.column_stack(columns) if columns else np.empty((len(stacked), 0))
    return np.split(values, np.cumsum([len(frame) for frame in frames])[:-1])


def _column_values(column: pd.Series, spec: ColumnSpec) -> np.ndarray:
    if spec.kind is ColumnKind.DATETIME:
        column = (pd.to_datetime(column, utc=True) - _EPOCH) / pd.Timedelta(seconds=1)
    if spec.kind in _NUMERIC:
        return pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan)
    codes, _ = pd.factorize(column)
    return np.where(codes < 0, np.nan, codes.astype(np.float64))


def _deduplicated(values: np.ndarray) -> np.ndarray:
    return pd.DataFrame(values).drop_duplicates().to_numpy()


# --- linkability -------------------------------------------------------------------------------------------


def linkability(
    train: pd.DataFrame,
    control: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    aux_columns: tuple[Sequence[str], Sequence[str]] | None = None,
    n_neighbors: int = 1,
    n_targets: int | None = 2000,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
) -> AttackResult:
    """Can the synthetic table join two halves of a real record that an attacker holds separately?

    anonymeter's `LinkabilityEvaluator`: each target record is cut into its two sets of `aux_columns`
    (default: the learned columns split in two at random); each half finds its `n_neighbors` nearest
    synthetic rows, and the attack succeeds when the two sets share a row. `n_targets` records of each
    set are attacked (None: all). The baseline links random synthetic rows.
    """
    if n_neighbors < 1:
        raise BadInputError(f"linkability: n_neighbors must be positive, got {n_neighbors}")
    rng = np.random.default_rng(seed)
    if aux_columns is None and len(schema.learned) < 2:  # one column cannot be split into two halves to link
        return AttackResult.from_counts("linkability", 0, 0, 0, 0, alpha=alpha)
    attacked, control = _targets(*_attack_sets(train, control, schema, rng), n_targets, rng)
    halves = _aux_schemas(schema, aux_columns, rng)
    k = min(n_neighbors, len(synthetic))
    random_links = [rng.integers(len(synthetic), size=(len(attacked), k)) for _ in halves]
    return AttackResult.from_counts(
        "linkability",
        n_attacks=len(attacked),
        n_success=_count_links(*(_nearest(attacked, synthetic, half, k) for half in halves)),
        n_control=_count_links(*(_nearest(control, synthetic, half, k) for half in halves)),
        n_baseline=_count_links(*random_links),
        alpha=alpha,
    )


def _aux_schemas(
    schema: Schema, aux_columns: tuple[Sequence[str], Sequence[str]] | None, rng: np.random.Generator
) -> tuple[Schema, Schema]:
    learned = [spec.name for spec in schema.learned]
    if aux_columns is None:
        if len(learned) < 2:
            raise BadInputError("linkability: needs at least two learned columns to split")
        order = [learned[i] for i in rng.permutation(len(learned))]
        aux_columns = (order[: len(order) // 2], order[len(order) // 2 :])
    for half in aux_columns:
        unknown = [name for name in half if name not in learned]
        if not half or unknown:
            raise BadInputError(f"linkability: each half must name learned columns; bad: {unknown or 'empty half'}")
    return Schema(tuple(schema[n] for n in aux_columns[0])), Schema(tuple(schema[n] for n in aux_columns[1]))


def _count_links(first: np.ndarray, second: np.ndarray) -> int:
    """Targets whose two halves share a neighbour: (targets, k) index arrays, compared pairwise."""
    return int((first[:, :, None] == second[:, None, :]).any(axis=(1, 2)).sum())


def _nearest(query: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, k: int) -> np.ndarray:
    """Indices of each query row's `k` nearest synthetic rows (Gower over `schema`'s columns)."""
    out = np.empty((len(query), k), dtype=np.int64)
    for start, distances in gower_distance_chunks(query, synthetic, schema, chunk_rows=_chunk_rows(synthetic)):
        out[start : start + len(distances)] = distances.topk(k, dim=1, largest=False).indices.numpy()
    return out


# --- attribute inference -----------------------------------------------------------------------------------


def attribute_inference(
    train: pd.DataFrame,
    control: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    secrets: Sequence[str] | None = None,
    n_targets: int | None = 500,
    tolerance: float = 0.05,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
) -> dict[str, AttackResult]:
    """Knowing every other learned column of a record, can the synthetic table reveal its secret one?

    anonymeter's `InferenceEvaluator`, with each of `secrets` (default: every learned column) in turn:
    the guess is the secret of the nearest synthetic row on the other learned columns; it is right when
    equal (categories, booleans, datetimes; null matches null) or, for a numerical secret, within
    `tolerance` of the guess (|guess - secret| <= tolerance * |guess|; anonymeter divides by the signed
    guess). `n_targets` records of each set are attacked (None: all). The baseline guesses the secret
    of a random synthetic row. Each column's intervals are at alpha / len(secrets) (Bonferroni), so
    that the worst column's lower bound, which the gate reads, still errs with probability alpha.
    """
    learned = [spec.name for spec in schema.learned]
    secrets = list(learned if secrets is None else secrets)
    unknown = [name for name in secrets if name not in learned]
    if len(learned) < 2 or not secrets or unknown:
        raise BadInputError(f"inference: secrets must be learned columns, with another to know; bad: {unknown}")
    rng = np.random.default_rng(seed)
    attacked, control = _targets(*_attack_sets(train, control, schema, rng), n_targets, rng)
    attack_guesses = _nearest_without(attacked, synthetic, schema, secrets)
    control_guesses = _nearest_without(control, synthetic, schema, secrets)
    random_rows = rng.integers(len(synthetic), size=len(attacked))
    results = {}
    for name in secrets:

        def correct(targets: pd.DataFrame, rows: np.ndarray, name: str = name) -> int:
            guesses = synthetic[name].to_numpy()[rows]
            return int(_correct(guesses, targets[name].to_numpy(), schema[name], tolerance).sum())

        results[name] = AttackResult.from_counts(
            f"inference:{name}",
            n_attacks=len(attacked),
            n_success=correct(attacked, attack_guesses[name]),
            n_control=correct(control, control_guesses[name]),
            n_baseline=correct(attacked, random_rows),
            alpha=alpha / len(secrets),
        )
    return results


def _nearest_without(
    query: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, secrets: Sequence[str]
) -> dict[str, np.ndarray]:
    """For each secret, every query row's nearest synthetic row on the other learned columns.

    One pass: a Gower distance over all learned columns is a mean of per-column terms, so the sum over
    the others is the full sum less the secret's own term, streamed alongside in the same chunks.
    """
    learned = Schema(tuple(schema.learned))
    rows = _chunk_rows(synthetic)
    own: dict[str, Iterator[tuple[int, torch.Tensor]]] = {
        name: gower_distance_chunks(query, synthetic, Schema((schema[name],)), chunk_rows=rows) for name in secrets
    }
    nearest = {name: np.empty(len(query), dtype=np.int64) for name in secrets}
    for start, distances in gower_distance_chunks(query, synthetic, learned, chunk_rows=rows):
        total = distances.mul_(len(learned))
        for name, chunks in own.items():
            _, term = next(chunks)
            nearest[name][start : start + len(term)] = term.sub_(total).argmax(dim=1).numpy()  # min of total - term
    return nearest


def _correct(guesses: np.ndarray, secrets: np.ndarray, spec: ColumnSpec, tolerance: float) -> np.ndarray:
    """Anonymeter's `evaluate_inference_guesses`: equal, both null, or (numbers) within relative tolerance."""
    both_null = pd.isna(guesses) & pd.isna(secrets)
    if spec.kind is ColumnKind.NUMERICAL:
        guess, secret = (
            pd.to_numeric(pd.Series(a)).to_numpy(dtype=np.float64, na_value=np.nan) for a in (guesses, secrets)
        )
        return both_null | (np.abs(guess - secret) <= tolerance * np.abs(guess))
    return both_null | (_nulls_as_none(guesses) == _nulls_as_none(secrets))


def _nulls_as_none(values: np.ndarray) -> np.ndarray:
    """An object array with every null as None: `pd.NA == x` has no truth value, `None == x` is False."""
    out = np.asarray(values, dtype=object).copy()
    out[pd.isna(out)] = None
    return out


# --- shared ------------------------------------------------------------------------------------------------


def _attack_sets(
    train: pd.DataFrame, control: pd.DataFrame, schema: Schema, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and control records, each drawn down to the smaller one's size so both are attacked alike."""
    if train.empty or control.empty:
        raise BadInputError("attacks: the train and control frames must both have rows")
    if not schema.learned:
        raise BadInputError("attacks: the schema has no learned columns to attack")
    size = min(len(train), len(control))
    return _sample(train, size, rng), _sample(control, size, rng)


def _targets(
    attacked: pd.DataFrame, control: pd.DataFrame, n: int | None, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if n is None or n >= len(attacked):
        return attacked, control
    if n < 1:
        raise BadInputError(f"attacks: the number of targets must be positive, got {n}")
    return _sample(attacked, n, rng), _sample(control, n, rng)


def _sample(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[np.sort(rng.choice(len(frame), size=n, replace=False))].reset_index(drop=True)


def _chunk_rows(reference: pd.DataFrame) -> int:
    return max(1, _CHUNK_ELEMENTS // max(len(reference), 1))


def _clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _bound(low: float, high: float) -> tuple[float, float]:
    return _clip(low), _clip(high)


def _nan_low(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _risk(attack: Callable[[AttacksResult], AttackResult], label: Callable[[AttacksResult], str] | None = None
          ) -> Callable[[PrivacyAudit, Context], Iterator[Reading]]:
    """A reader of one attack's risk, decided by its interval.

    The risk is not applicable when no attack of its kind could be formed (e.g. no value of a few-valued
    table singles out one row).
    """
    def read(audit: PrivacyAudit, context: Context) -> Iterator[Reading]:
        result = attack(audit.attacks)
        words = label(audit.attacks) if label else ""
        if result.n_attacks == 0:
            yield Reading(math.nan, label=words, inapplicable="no attack of this kind could be formed on this table")
        else:
            yield Reading(result.risk, label=words, interval=result.risk_ci)

    return read


_RISK_REFUSES = ("anonymeter-method risk (attack vs control, attacked rows subsampled to the control size): lower "
                 "bound > {threshold}")
_SINGLING_OUT = Setting("max_singling_out_risk", 0.02, "singling-out risk (lower bound)", ge=0, le=1)

declare(CheckSpec(
    name="privacy.singling_out_risk", label="Singling-out risk, multivariate (attack beyond control)",
    direction="<=", threshold=_SINGLING_OUT, rule=Rule.BOUNDED, evidence="privacy",
    read=_risk(lambda attacks: attacks.singling_out), order=170, refuses=_RISK_REFUSES,
))
declare(CheckSpec(
    name="privacy.singling_out_univariate_risk", label="Singling-out risk, univariate (attack beyond control)",
    direction="<=", threshold=_SINGLING_OUT, rule=Rule.BOUNDED, evidence="privacy",
    read=_risk(lambda attacks: attacks.singling_out_univariate), order=180, refuses=_RISK_REFUSES,
))
declare(CheckSpec(
    name="privacy.linkability_risk", label="Linkability risk (attack beyond control)", direction="<=",
    threshold=Setting("max_linkability_risk", 0.02, "linkability risk (lower bound)", ge=0, le=1),
    rule=Rule.BOUNDED, evidence="privacy", read=_risk(lambda attacks: attacks.linkability), order=190,
    refuses=_RISK_REFUSES,
))
declare(CheckSpec(
    name="privacy.inference_risk", label="Attribute inference risk, worst column (attack beyond control)",
    direction="<=",
    threshold=Setting("max_inference_risk", 0.15, "attribute-inference risk (lower bound)", ge=0, le=1),
    rule=Rule.BOUNDED, evidence="privacy", order=200, refuses=_RISK_REFUSES + " (the worst secret column)",
    read=_risk(lambda attacks: attacks.inference,
               lambda attacks: f"Attribute inference risk, worst column {attacks.inference_column} "
                               "(attack beyond control)"),
))
