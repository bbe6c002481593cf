"""The classifier two-sample test (C2ST): can a classifier tell the synthetic rows from the real ones?

sdmetrics' QualityReport averages one- and two-column scores and saturates: on Adult, sampling every column
independently scores 0.88 and real unseen rows 0.985, so good and bad generators crowd into a few points.
A classifier that sees whole rows finds what no average of margins can (an impossible combination, a
relationship across four columns). A gradient-boosted classifier is trained to separate equal samples of
real and synthetic rows; its cross-validated ROC AUC is 0.5 when they are indistinguishable and 1.0 when
every synthetic row gives itself away. On Adult, real unseen rows score about 0.50, independent columns 0.99.

Beside the AUC: which columns give the synthetic rows away (the AUC lost when a column is shuffled) and
which pairs of them are most distinguishable on their own.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from generators.tabular.schema import ColumnSpec, Schema
from validation.marginals import column_codes, sample_rows
from validation.utility import model_features, top_levels

logger = logging.getLogger(__name__)

_LEVEL = 0.95
_PAIR_COLUMNS = 6  # the most telling columns whose pairs are scored
_WORST_PAIRS = 5
_SMOOTHING = 0.5  # pseudo-count of each cell of a pair's histogram classifier
_SHUFFLED_ROWS = 1_000  # held-out rows a fold shuffles to measure the columns' importance


@dataclass(frozen=True)
class C2stResult:
    """How well a classifier tells the synthetic rows from real ones, and which columns and pairs give them away.

    `auc`: cross-validated ROC AUC of a classifier telling synthetic (positive) from real rows, 0.5 when it
    cannot; `auc_ci`: its 95% interval (DeLong's variance); `rows`: rows per side; `importance`: column ->
    AUC lost when the column is shuffled in the held-out rows, largest first; `worst_pairs`: (a, b, AUC of a
    classifier seeing only a and b), most distinguishable first; `elapsed_s`: seconds taken.
    """

    auc: float
    auc_ci: tuple[float, float]
    rows: int
    importance: dict[str, float]
    worst_pairs: tuple[tuple[str, str, float], ...]
    elapsed_s: float


def classifier_two_sample(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    rows: int = 10_000,
    folds: int = 5,
    seed: int = 0,
) -> C2stResult:
    """C2ST of `synthetic` against `real` on the learned columns, on seeded samples of as many rows of each.

    Each sample holds the same number of rows (at most `rows`): the classifier is not rewarded for guessing
    the larger side.

    HistGradientBoosting (categories native, datetimes as epoch numbers, one OpenMP thread) is scored out of
    fold over seeded stratified `folds`; the AUC is taken over all out-of-fold scores, its 95% interval from
    DeLong's variance (rows treated as independent, the fold models as one classifier). A column's importance
    is the drop in the held-out fold's AUC when that column is shuffled within the fold (seeded), averaged
    over the folds. The pairs of the most important columns are scored by a histogram classifier on their
    joint cells (coded as the 3-way marginals are), out of fold on the same folds: cheap enough to score
    every pair of them, and honest (no row scores itself).

    An AUC well below 0.5 is no better news: out of fold, a synthetic row that copies a training row is
    scored like its twin, which was labelled real, so copies pull the AUC under 0.5 (a privacy question).
    On a few hundred rows, out-of-fold scores also sit a little below 0.5 by chance.
    """
    start = time.perf_counter()
    rng = np.random.default_rng([seed, 41])
    size = min(rows, len(real), len(synthetic))
    pooled = pd.concat([sample_rows(real, size, rng), sample_rows(synthetic, size, rng)], ignore_index=True)
    labels = np.repeat([0, 1], size)
    specs = [spec for spec in schema.learned if pooled[spec.name].notna().any()]  # an all-null column says nothing
    if size < 2 or not specs:  # nothing to learn from: no AUC, or rows alike in every cell (exactly 0.5)
        logger.info("C2ST without a classifier: %d rows a side, %d columns with values", size, len(specs))
        auc, interval = _delong(np.zeros(len(labels)), labels) if size >= 2 else (math.nan, (math.nan, math.nan))
        unmeasured = {spec.name: 0.0 for spec in schema.learned}
        return C2stResult(auc, interval, size, unmeasured, (), time.perf_counter() - start)
    # levels counted over both sides together, without the labels: no held-out answer leaks into them
    features = model_features(pooled, specs, top_levels(pooled, specs))
    splits = list(StratifiedKFold(min(folds, size), shuffle=True, random_state=seed).split(features, labels))
    scores, drops = _out_of_fold(features, labels, splits, seed, rng)
    auc, interval = _delong(scores, labels)
    measured = dict(zip([spec.name for spec in specs], drops.tolist(), strict=True))
    importance = dict(sorted(((spec.name, measured.get(spec.name, 0.0)) for spec in schema.learned),
                             key=lambda item: -item[1]))
    top = [schema[name] for name in list(importance)[:_PAIR_COLUMNS]]
    pairs = _worst_pairs(pooled, labels, top, splits)
    result = C2stResult(auc, interval, size, importance, pairs, time.perf_counter() - start)
    logger.info("C2ST on %d rows a side: AUC %.3f [%.3f, %.3f]; most telling %s", size, auc, *interval,
                ", ".join(f"{name} {drop:.3f}" for name, drop in list(importance.items())[:3]))
    return result


def _out_of_fold(features: pd.DataFrame, labels: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
                 seed: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each row's score from the model that did not see it, and each column's AUC drop averaged over the folds."""
    scores = np.zeros(len(labels))
    drops = np.zeros((len(splits), features.shape[1]))
    for fold, (train, test) in enumerate(splits):
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
        # One thread: OpenMP's spin-waiting makes a busy 2-core machine many times slower (see validation.utility).
        with threadpool_limits(limits=1, user_api="openmp"):
            model.fit(features.iloc[train], labels[train])
            scores[test], drops[fold] = _shuffled_drops(model, features.iloc[test], labels[test], rng)
    return scores, drops.mean(axis=0)


def _shuffled_drops(model: HistGradientBoostingClassifier, test: pd.DataFrame, labels: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows' scores, and the AUC lost when each column in turn is shuffled among a sample of them.

    The sample is a seeded one of `_SHUFFLED_ROWS` rows: the drops are paired, on the same rows, so a few
    thousand over the folds rank the columns; scoring every row once per column would cost more than the
    fits. Every shuffled copy is scored in one call.
    """
    rows = np.sort(rng.choice(len(test), min(len(test), _SHUFFLED_ROWS), replace=False))
    sample, truth = test.iloc[rows], labels[rows]
    order = rng.permuted(np.tile(np.arange(len(rows)), (test.shape[1], 1)), axis=1)
    copies = [sample.assign(**{name: sample[name].iloc[order[index]].array}) for index, name in enumerate(test)]
    scored = model.predict_proba(pd.concat([test, *copies], ignore_index=True))[:, 1]
    shuffled = scored[len(test):].reshape(-1, len(rows))
    return scored[: len(test)], _auc(scored[rows], truth) - _auc(shuffled, truth)


def _auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of `scores` against `labels` (1 positive), from midranks.

    The last axis of `scores` holds one score a row of `labels`. The AUC is the share of (positive,
    negative) pairs ordered right, ties counting half.
    """
    positive = labels == 1
    m, n = int(positive.sum()), int((~positive).sum())
    ranks = stats.rankdata(scores, axis=-1)
    return np.asarray((ranks[..., positive].sum(axis=-1) - m * (m + 1) / 2) / (m * n))


def _delong(scores: np.ndarray, labels: np.ndarray) -> tuple[float, tuple[float, float]]:
    """ROC AUC of `scores` for the positive `labels` and its 95% interval from DeLong's variance.

    Both are computed from midranks (Sun and Xu's fast form); the interval is clipped to [0, 1].
    """
    positive, negative = scores[labels == 1], scores[labels == 0]
    m, n = len(positive), len(negative)
    ranks = stats.rankdata(np.concatenate([positive, negative]))
    above = (ranks[:m] - stats.rankdata(positive)) / n  # share of negatives below each positive
    below = 1.0 - (ranks[m:] - stats.rankdata(negative)) / m  # share of positives above each negative
    auc = float(above.mean())
    spread = math.sqrt(float(np.var(above, ddof=1)) / m + float(np.var(below, ddof=1)) / n)
    half = float(stats.norm.ppf(0.5 + _LEVEL / 2)) * spread
    return auc, (max(0.0, auc - half), min(1.0, auc + half))


def _worst_pairs(frame: pd.DataFrame, labels: np.ndarray, specs: list[ColumnSpec],
                 splits: list[tuple[np.ndarray, np.ndarray]]) -> tuple[tuple[str, str, float], ...]:
    """The `_WORST_PAIRS` pairs of `specs` whose joint cells best tell the sides apart.

    For each pair, a histogram classifier (a cell's score: its smoothed synthetic share over its real
    share, counted on the training folds) scores the held-out rows, and its AUC is taken over every
    out-of-fold score.
    """
    real = frame[labels == 0]
    coded = {spec.name: column_codes(real[spec.name], frame[spec.name], spec=spec) for spec in specs}
    found = []
    for a, b in itertools.combinations(specs, 2):
        (codes_a, levels_a), (codes_b, levels_b) = coded[a.name], coded[b.name]
        cell = (codes_a * levels_b + codes_b)[len(real):]
        scores = np.zeros(len(labels))
        for train, test in splits:
            counts = [np.bincount(cell[train][labels[train] == side], minlength=levels_a * levels_b) + _SMOOTHING
                      for side in (0, 1)]
            ratio = np.log(counts[1] / counts[1].sum()) - np.log(counts[0] / counts[0].sum())
            scores[test] = ratio[cell[test]]
        found.append((a.name, b.name, float(_auc(scores, labels))))
    return tuple(sorted(found, key=lambda pair: -pair[2])[:_WORST_PAIRS])
