"""Machine-learning utility: does a model trained on the synthetic rows predict real, unseen rows as
well as one trained on the real training rows? (train-on-synthetic, test-on-real)"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import f1_score, r2_score
from threadpoolctl import threadpool_limits

from generators.schema import BadInputError, ColumnKind, Schema

logger = logging.getLogger(__name__)

_MAX_LEVELS = 254
# Names that mark a label column, and the most classes a last-column label may have, for `infer_target`.
_TARGET_NAMES = ("target", "label", "class", "y", "outcome", "income", "churn", "default")
_MAX_INFERRED_CLASSES = 20


@dataclass(frozen=True)
class UtilityResult:
    """Scores on the real holdout of a model trained on real rows and of the same model trained on
    synthetic rows; `ratio` = synthetic / real (1.0: the synthetic table is as useful as the real one)."""

    target: str
    task: Literal["classification", "regression"]
    metric: Literal["macro_f1", "r2"]
    real_score: float
    synthetic_score: float

    @property
    def ratio(self) -> float:
        return self.synthetic_score / self.real_score if self.real_score > 0 else float("nan")


def infer_target(schema: Schema) -> str | None:
    """The column a user most likely predicts, when none is configured: the schema's own target, else a
    learned categorical or boolean column with a conventional label name, else the last column if it
    is one with 2 to 20 classes (the UCI convention). None when nothing fits: utility is then skipped."""
    if schema.target is not None:
        return schema.target
    labels = [s for s in schema.learned if _is_label(s.kind, s.categories)]
    for spec in labels:
        if spec.name.strip().lower() in _TARGET_NAMES:
            return spec.name
    last = schema.columns[-1]
    return last.name if last in labels else None


def _is_label(kind: ColumnKind, categories: tuple[object, ...] | None) -> bool:
    if kind is ColumnKind.BOOLEAN:
        return True
    return kind is ColumnKind.CATEGORICAL and categories is not None and 2 <= len(categories) <= _MAX_INFERRED_CLASSES


def evaluate_utility(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, target: str, seed: int = 0
) -> UtilityResult:
    """HistGradientBoosting on the learned columns: macro-F1 for a categorical or boolean target, R² for
    a numerical one, trained once on `train` and once on `synthetic`, both scored on `holdout`."""
    if target not in schema or not schema[target].kind.is_learned:
        raise BadInputError(f"utility target '{target}' is not a learned column of the table")
    kind = schema[target].kind
    if kind not in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN, ColumnKind.NUMERICAL):
        raise BadInputError(f"utility target '{target}' must be categorical, boolean or numerical")
    features = [s for s in schema.learned if s.name != target]
    # HistGradientBoosting takes at most 255 levels a feature: keep the most frequent training levels;
    # rarer ones become missing, which it handles natively.
    categories = {
        s.name: train[s.name].dropna().astype(str).value_counts().index[:_MAX_LEVELS]
        for s in features
        if s.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
    }

    def design(frame: pd.DataFrame) -> pd.DataFrame:
        columns = {}
        for spec in features:
            column = frame[spec.name]
            if spec.name in categories:
                columns[spec.name] = pd.Categorical(column.astype(str).where(column.notna()), categories[spec.name])
            elif spec.kind is ColumnKind.DATETIME:
                stamps = column.dt.tz_convert("UTC") if isinstance(column.dtype, pd.DatetimeTZDtype) else column
                columns[spec.name] = stamps.astype("int64").where(column.notna()).astype(float)
            else:
                columns[spec.name] = column.astype(float)
        return pd.DataFrame(columns, index=frame.index)

    classify = kind is not ColumnKind.NUMERICAL
    labelled = {name: part[part[target].notna()] for name, part in (("train", train), ("holdout", holdout),
                                                                     ("synthetic", synthetic))}
    x_test, y_test = design(labelled["holdout"]), _labels(labelled["holdout"][target], classify)

    def score(part: pd.DataFrame) -> float:
        y = _labels(part[target], classify)
        if classify and len(np.unique(y)) < 2:
            return 0.0  # a model cannot learn a class boundary from one class
        model = (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(
            categorical_features="from_dtype", random_state=seed
        )
        # One thread: OpenMP's spin-waiting makes a busy 2-core machine 30x slower, for a gain of at
        # most 2x on a quiet one at these sizes.
        with threadpool_limits(limits=1, user_api="openmp"):
            predicted = model.fit(design(part), y).predict(x_test)
        return float(f1_score(y_test, predicted, average="macro") if classify else r2_score(y_test, predicted))

    result = UtilityResult(
        target=target,
        task="classification" if classify else "regression",
        metric="macro_f1" if classify else "r2",
        real_score=score(labelled["train"]),
        synthetic_score=score(labelled["synthetic"]),
    )
    logger.info("utility on '%s': real %.3f, synthetic %.3f (%s)", target, result.real_score,
                result.synthetic_score, result.metric)
    return result


def _labels(column: pd.Series, classify: bool) -> np.ndarray:
    return column.astype(str).to_numpy() if classify else column.astype(float).to_numpy()
