"""Machine-learning utility: does a model trained on the synthetic rows predict real, unseen rows as well?

As well, that is, as one trained on the real training rows (train-on-synthetic, test-on-real).

Both models are held against the trivial baseline (the majority class, or the training mean), and the
verdict reads the share of the real model's lift over that baseline the synthetic model keeps: on a table
whose columns say nothing about the target the real model is no better than guessing, and a plain score
ratio would judge noise. Every score is taken on the same holdout rows, so their differences are paired:
a bootstrap over those rows gives how sure each difference is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from generators.tabular.checks import CheckSpec, Context, Reading, Rule, Setting, declare
from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from validation.comparison import as_numbers

if TYPE_CHECKING:
    from validation.audit import FidelityAudit

logger = logging.getLogger(__name__)

MAX_LEVELS = 254  # HistGradientBoosting takes at most 255 levels a feature, missing included
_BOOTSTRAP = 500


@dataclass(frozen=True)
class UtilityResult:
    """Scores on the real holdout: a model trained on real rows, the same model on synthetic rows, and a baseline.

    The real model is trained on the real training rows; the baseline is the trivial one (majority class or
    training mean).

    `real_lift_p`: p-value of "the real model is no better than the baseline" (large: there is no utility
    to keep). `gap_p`: p-value of "the synthetic model is no worse than the real one". Both one-sided, from
    a paired bootstrap over the holdout rows.
    """

    target: str
    task: Literal["classification", "regression"]
    metric: Literal["macro_f1", "r2"]
    real_score: float
    synthetic_score: float
    baseline_score: float
    real_lift_p: float
    gap_p: float

    @property
    def ratio(self) -> float:
        """Synthetic / real score (1.0: the synthetic table is as useful as the real one)."""
        return self.synthetic_score / self.real_score if self.real_score > 0 else float("nan")

    @property
    def lift_kept(self) -> float:
        """Share of the real model's lift over the baseline that the synthetic model keeps (1.0: all of it)."""
        lift = self.real_score - self.baseline_score
        return (self.synthetic_score - self.baseline_score) / lift if lift > 0 else float("nan")


def evaluate_utility(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, target: str, seed: int = 0
) -> UtilityResult:
    """HistGradientBoosting on the learned columns, trained on `train` and on `synthetic`, scored on `holdout`.

    The score is macro-F1 for a categorical or boolean target, R² for a numerical one. The model is
    trained once on each (the larger cut to the smaller's row count by a seeded sample).
    """
    if target not in schema or not schema[target].kind.is_learned:
        raise BadInputError(f"utility target '{target}' is not a learned column of the table")
    kind = schema[target].kind
    if kind not in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN, ColumnKind.NUMERICAL):
        raise BadInputError(f"utility target '{target}' must be categorical, boolean or numerical")
    features = [s for s in schema.learned if s.name != target]
    levels = top_levels(train, features)

    def design(frame: pd.DataFrame) -> pd.DataFrame:
        return model_features(frame, features, levels)

    classify = kind is not ColumnKind.NUMERICAL
    labelled = {name: part[part[target].notna()] for name, part in (("train", train), ("holdout", holdout),
                                                                     ("synthetic", synthetic))}
    # Both models learn from as many rows: a model trained on fewer rows is worse for that alone, and real
    # unseen rows as few as a small holdout would then look less useful than the training rows.
    size = min(len(labelled["train"]), len(labelled["synthetic"]))
    rng = np.random.default_rng([seed, 13])
    for name in ("train", "synthetic"):
        if len(labelled[name]) > size:
            labelled[name] = labelled[name].iloc[np.sort(rng.choice(len(labelled[name]), size, replace=False))]
    x_test, y_test = design(labelled["holdout"]), _labels(labelled["holdout"][target], classify)
    y_train = _labels(labelled["train"][target], classify)

    def predict(part: pd.DataFrame) -> np.ndarray:
        y = _labels(part[target], classify)
        if classify and len(np.unique(y)) < 2:
            return np.full(len(x_test), y[0] if len(y) else "")  # one class: the only boundary-free guess
        model = (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(
            categorical_features="from_dtype", random_state=seed
        )
        # One thread: OpenMP's spin-waiting makes a busy 2-core machine 30x slower, for a gain of at
        # most 2x on a quiet one at these sizes.
        with threadpool_limits(limits=1, user_api="openmp"):
            return np.asarray(model.fit(design(part), y).predict(x_test))

    if classify:
        values, counts = np.unique(y_train, return_counts=True)
        baseline = np.full(len(y_test), values[np.argmax(counts)])
    else:
        baseline = np.full(len(y_test), float(np.mean(y_train)))
    predictions = np.stack([predict(labelled["train"]), predict(labelled["synthetic"]), baseline])
    weights = _bootstrap_weights(len(y_test), seed)
    scores = _scores(y_test, predictions, classify, weights)
    if classify:  # guessing by the training priors beats always guessing the majority on macro-F1
        scores[2] = np.maximum(scores[2], _guessing_f1(y_test, dict(zip(values, counts / counts.sum(), strict=True)),
                                                       weights))
    real, synthetic, base = scores[:, 0]
    result = UtilityResult(
        target=target,
        task="classification" if classify else "regression",
        metric="macro_f1" if classify else "r2",
        real_score=float(real),
        synthetic_score=float(synthetic),
        baseline_score=float(base),
        real_lift_p=_one_sided_p(scores[0] - scores[2]),
        gap_p=_one_sided_p(scores[0] - scores[1]),
    )
    logger.info("utility on '%s': real %.3f, synthetic %.3f, baseline %.3f (%s)", target, result.real_score,
                result.synthetic_score, result.baseline_score, result.metric)
    return result


def _bootstrap_weights(n: int, seed: int) -> np.ndarray:
    """Row weights of the full sample (row 0) and of `_BOOTSTRAP` resamples of it, one row each."""
    rng = np.random.default_rng([seed, 11])
    draws = rng.integers(0, n, size=(_BOOTSTRAP, n)) + n * np.arange(_BOOTSTRAP)[:, None]
    resampled = np.bincount(draws.ravel(), minlength=n * _BOOTSTRAP).reshape(_BOOTSTRAP, n)
    return np.vstack([np.ones(n), resampled]).astype(np.float64)


def _scores(y: np.ndarray, predictions: np.ndarray, classify: bool, weights: np.ndarray) -> np.ndarray:
    """Score of each prediction row (axis 0) under each weighting (axis 1).

    The score is macro-F1 over the labels of the holdout and the predictions, or R².
    """
    if not classify:
        y = y.astype(np.float64)
        total = weights.sum(axis=1)
        mean = weights @ y / total
        spread = (weights * (y[None, :] - mean[:, None]) ** 2).sum(axis=1)
        residual = np.stack([weights @ (y - p.astype(np.float64)) ** 2 for p in predictions])
        return 1.0 - residual / np.where(spread > 0, spread, np.nan)
    labels = np.unique(np.concatenate([y, predictions.ravel()]))
    f1 = np.zeros((len(predictions), len(weights)))
    for label in labels:
        actual = y == label
        for row, predicted in enumerate(predictions == label):
            hits = weights @ (actual & predicted)
            misses = weights @ (actual ^ predicted)
            f1[row] += np.divide(2 * hits, 2 * hits + misses, out=np.zeros_like(hits), where=2 * hits + misses > 0)
    return f1 / len(labels)


def _guessing_f1(y: np.ndarray, priors: dict[Any, float], weights: np.ndarray) -> np.ndarray:
    """Expected macro-F1 of guessing each label at random with its training prior q.

    A label of true share p is then guessed right with precision p and recall q, so F1 = 2pq / (p + q),
    averaged over the labels.
    """
    labels = np.unique(np.concatenate([y, np.array(list(priors))]))
    total = weights.sum(axis=1)
    f1 = np.zeros(len(weights))
    for label in labels:
        share = weights @ (y == label) / total
        prior = priors.get(label, 0.0)
        f1 += np.divide(2 * share * prior, share + prior, out=np.zeros_like(share), where=share + prior > 0)
    return f1 / len(labels)


def _one_sided_p(difference: np.ndarray) -> float:
    """p-value of "the difference is at most 0", from its full-sample value (first) and its bootstrap spread."""
    spread = float(np.std(difference[1:]))
    if spread == 0:
        return 0.0 if difference[0] > 0 else 1.0
    return float(norm.sf(difference[0] / spread))


def top_levels(frame: pd.DataFrame, specs: list[ColumnSpec]) -> dict[str, pd.Index]:
    """The `MAX_LEVELS` most frequent levels of each categorical or boolean column of `frame`.

    Rarer ones become missing in `model_features`, which HistGradientBoosting handles natively.
    """
    return {
        spec.name: frame[spec.name].dropna().astype(str).value_counts().index[:MAX_LEVELS]
        for spec in specs
        if spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
    }


def model_features(frame: pd.DataFrame, specs: list[ColumnSpec], levels: dict[str, pd.Index]) -> pd.DataFrame:
    """A gradient-boosted model's input, every column in a type HistGradientBoosting reads.

    Categories and booleans as pandas Categoricals of `levels`, numbers as floats, datetimes as UTC epoch
    nanoseconds (naive ones read as UTC), nulls as missing.
    """
    columns: dict[str, Any] = {}
    for spec in specs:
        column = frame[spec.name]
        if spec.name in levels:
            columns[spec.name] = pd.Categorical(column.astype(str).where(column.notna()), levels[spec.name])
        else:
            columns[spec.name] = as_numbers(column, spec.kind, keep_nulls=True)
    return pd.DataFrame(columns, index=frame.index)


def _labels(column: pd.Series, classify: bool) -> np.ndarray:
    return column.astype(str).to_numpy() if classify else column.astype(float).to_numpy()


# The utility check applies only when the real model beats the trivial baseline at this level: below it,
# there is no lift whose share could be kept.
_UTILITY_EVIDENCE = 0.05


def _lift_kept(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
    u = audit.utility
    if u is None:
        return
    label = (f"Predicting {u.target} ({u.metric}): real {u.real_score:.3f}, synthetic {u.synthetic_score:.3f}, "
             f"guessing {u.baseline_score:.3f}")
    if not u.real_lift_p < _UTILITY_EVIDENCE:
        reason = f"the real model predicts {u.target} no better than guessing (p = {u.real_lift_p:.2g})"
        yield Reading(math.nan, label=label, inapplicable=reason)
    else:
        yield Reading(u.lift_kept, label=label, p_value=u.gap_p)


declare(CheckSpec(
    name="utility.lift_kept",
    label="Share of the real model's lift over guessing that training on synthetic rows keeps", direction=">=",
    threshold=Setting("min_utility_kept", 0.75, "share of the real model's lift over guessing kept", ge=0),
    rule=Rule.TESTED, evidence="fidelity", read=_lift_kept, order=90,
    refuses="when the real model beats guessing significantly: a model trained on the synthetic rows keeps < "
            "{threshold} of the real model's lift over guessing (majority class, priors or mean), significantly "
            "(paired bootstrap on the holdout); both trained on as many rows",
))
