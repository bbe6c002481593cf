"""The reversible table <-> matrix encoding shared by every generator, so a fix here helps all of them.

Learned columns become float32 slices of one matrix (`layout_` says which slice is which):
- numerical and datetime (as UTC epoch nanoseconds): CTGAN's mode-specific normalisation. A 1-D
  Gaussian mixture is fitted by EM; a value becomes (x - mu_k) / (4 sigma_k) plus the one-hot of its
  most probable mode k, which turns multi-modal, spiky columns into near-Gaussian scalars;
- categorical: one-hot over the categories seen in training, missing values in a slot of their own;
- boolean: one 0/1 flag.
Numerical, datetime and boolean columns that can be missing get a 0/1 null flag. Id, PII and text
columns are not encoded: `inverse_transform` regenerates them in their format (see `formats`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self

import numpy as np
import pandas as pd
import torch
from pandas.api.types import is_datetime64_any_dtype, is_integer_dtype, pandas_dtype

from generators.tabular.errors import BadInputError
from generators.tabular.formats import FormatModel, fit_format, regenerate, to_column
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema

logger = logging.getLogger(__name__)

Role = Literal["value", "mode", "null", "category", "flag"]
Activation = Literal["tanh", "softmax", "sigmoid"]

# Datetime steps tried from the coarsest: decoded times are rounded to the finest one the data uses.
_TIME_STEPS_NS = (86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1)
_NAT = np.iinfo(np.int64).min
# Decimal resolutions tried, from 0: a number written with more decimals is taken as continuous and not rounded.
_MAX_DECIMALS = 9
# The share of a column's values that may lie off its resolution (see `_decimals`).
_OFF_GRID_SHARE = 0.01


@dataclass(frozen=True)
class EncoderConfig:
    """How columns are encoded; the defaults are CTGAN's, but for `max_point_modes`.

    `max_point_modes`: a numerical column with at most that many distinct values gets one exact mode per
    value (0 turns this off).
    """

    max_modes: int = 10
    max_point_modes: int = 20
    mixture_subsample: int = 20_000
    min_mode_weight: float = 0.005
    em_iterations: int = 100
    em_tolerance: float = 1e-6
    max_shapes: int = 1000
    max_category_slots: int = 500

    def __post_init__(self) -> None:
        sizes = (self.max_modes, self.mixture_subsample, self.em_iterations, self.max_shapes, self.max_category_slots)
        if min(sizes) < 1:
            raise BadInputError(
                "encoder: max_modes, mixture_subsample, em_iterations, max_shapes and max_category_slots must be ≥ 1"
            )
        if not 0.0 <= self.min_mode_weight < 1.0:
            raise BadInputError("encoder: min_mode_weight must be in [0, 1)")
        if self.max_point_modes < 0:
            raise BadInputError("encoder: max_point_modes must be ≥ 0")


@dataclass(frozen=True)
class Span:
    """One slice of the encoded matrix: which column it encodes, in what role, and its output activation.

    Roles: `value` (a normalised scalar, tanh), `mode` and `category` (one-hot groups, softmax),
    `flag` and `null` (single 0/1 flags, sigmoid).
    """

    column: str
    role: Role
    start: int
    width: int
    activation: Activation

    @property
    def stop(self) -> int:
        """One past the span's last column, so `matrix[:, span.start : span.stop]` is the span."""
        return self.start + self.width


@dataclass(frozen=True)
class Condition:
    """A requested value of one categorical or boolean column, as a position in its encoded span.

    The position is the one-hot slot of a `category` span, or 0/1 for a boolean `flag`.
    """

    span: Span
    index: int


@dataclass(frozen=True)
class EncoderPrivacy:
    """The (epsilon, delta) an encoder may spend on its statistics, split evenly over the columns that cost any.

    Under it nothing comes from the schema's data-derived facts (ingest infers categories and bounds from
    the data itself) nor from raw statistics. Categories are kept when their Laplace-noised count passes
    a threshold (the stability-based histogram: (epsilon, delta)-DP over a set of values nobody declared);
    a number's bounds are the outermost bins of a Laplace-noised histogram on a fixed logarithmic grid
    (epsilon-DP), and it gets one mode spanning them (min-max scaling, no EM); a null slot is kept
    whenever the dtype can hold missing values, whether or not the data has any. With add/remove
    neighbours one row moves one cell of each column's histogram by one, so each column costs its share.
    Nor does a private fit learn the resolution the data is written in (a number's decimals, a datetime's
    step): it is a fact of the rows, not of the dtype, which no noise would cover, so decimals are not
    rounded and datetimes are kept to the nanosecond. An integer column is still rounded to whole numbers:
    that is part of its type (its dtype, or the schema's `integer`), which a private fit takes as given.

    A column whose domain the owner declared public (`ColumnSpec.public`) keeps it as declared: a number's
    bounds cost nothing (its values are clipped to them), so its share goes to the other columns; a
    categorical keeps every declared category, even one no row holds, and still pays for the Laplace counts
    a generator may read (`noisy_counts_`), with no threshold. A value outside its declared categories is
    refused: the declaration is then wrong, and rewriting the row to fit it would change the data silently.
    `secure_noise`: the Laplace noise comes from a stream seeded with 256 bits of the OS's CSPRNG, not from the
    fit's seed, so knowing the seed does not let anyone subtract the noise (the fit then does not repeat).
    """

    epsilon: float
    delta: float
    secure_noise: bool = False

    def __post_init__(self) -> None:
        if not self.epsilon > 0 or not 0 < self.delta < 1:
            raise BadInputError("encoder: a private fit needs epsilon > 0 and delta in (0, 1)")


class _Codec(Protocol):
    """The encoding of one learned column: fitted once, then used both ways."""

    @property
    def spec(self) -> ColumnSpec: ...

    @property
    def width(self) -> int: ...

    def spans(self, start: int) -> list[Span]: ...

    def encode(self, series: pd.Series, out: np.ndarray) -> None: ...

    def decode(self, block: np.ndarray, rng: np.random.Generator) -> pd.Series: ...

    def state(self) -> dict[str, Any]: ...

    @classmethod
    def fit(cls, series: pd.Series, spec: ColumnSpec, config: EncoderConfig, rng: np.random.Generator) -> Self: ...

    @classmethod
    def fit_private(
        cls, series: pd.Series, spec: ColumnSpec, config: EncoderConfig, rng: np.random.Generator, share: EncoderPrivacy
    ) -> tuple[Self, np.ndarray | None]: ...

    @classmethod
    def from_state(cls, spec: ColumnSpec, state: dict[str, Any]) -> Self: ...


@dataclass(frozen=True, eq=False)
class _NumberCodec:
    """Mode-specific normalisation of a numerical or datetime column."""

    spec: ColumnSpec
    means: np.ndarray
    stds: np.ndarray
    log_weights: np.ndarray
    bounds: tuple[float, float]
    step: int  # decoded values are rounded to multiples of it; 0 = not rounded
    has_null: bool
    # Per mode: the one value all its training rows hold (a spike, such as capital-gain's 0), else NaN.
    # A spike decodes to exactly that value: its floor-width Gaussian would otherwise smear it into
    # near-miss values (Adult's capital-gain: 36% of gmm's rows at 1-20 instead of 0).
    points: np.ndarray = field(default_factory=lambda: np.empty(0))
    # A decimal column's resolution, the fewest decimals its values are written with (see `_decimals`): decoded
    # values are rounded to it, else they come back as 8.899999999461949 (float32 matrix) for the 8.9 of the
    # data, a difference any classifier finds on a table of few distinct decimals. None: not rounded (a
    # continuous or integer column, a private fit, or a model saved before it was learned).
    decimals: int | None = None

    @property
    def modes(self) -> int:
        return int(self.means.size)

    @property
    def width(self) -> int:
        return 1 + (self.modes if self.modes > 1 else 0) + int(self.has_null)

    def spans(self, start: int) -> list[Span]:
        spans = [Span(self.spec.name, "value", start, 1, "tanh")]
        if self.modes > 1:
            spans.append(Span(self.spec.name, "mode", start + 1, self.modes, "softmax"))
        if self.has_null:
            spans.append(Span(self.spec.name, "null", start + self.width - 1, 1, "sigmoid"))
        return spans

    def encode(self, series: pd.Series, out: np.ndarray) -> None:
        x, missing = _numbers(series, self.spec)
        _check_missing(self.spec, missing, self.has_null)
        x = np.where(missing, self.means[0], x)
        mode = _log_joint(x, self.means, self.stds, self.log_weights).argmax(axis=1)
        out[:, 0] = np.where(missing, 0.0, (x - self.means[mode]) / (4 * self.stds[mode]))
        if self.modes > 1:
            out[np.arange(len(x)), 1 + mode] = 1.0
        if self.has_null:
            out[:, -1] = missing

    def decode(self, block: np.ndarray, rng: np.random.Generator) -> pd.Series:
        mode = block[:, 1 : 1 + self.modes].argmax(axis=1) if self.modes > 1 else np.zeros(len(block), np.int64)
        x = np.clip(block[:, 0].astype(np.float64) * 4 * self.stds[mode] + self.means[mode], *self.bounds)
        if self.step:
            x = np.round(x / self.step) * self.step
        elif self.decimals is not None:
            x = np.clip(np.round(x, self.decimals), *self.bounds)  # a bound may lie off the grid
        if self.points.size:  # a spike's value is the data's own, to the last bit
            point = self.points[mode]
            x = np.where(np.isnan(point), x, point)
        missing = block[:, -1] > 0.5 if self.has_null else np.zeros(len(block), dtype=bool)
        return _from_numbers(x, missing, self.spec)

    def state(self) -> dict[str, Any]:
        return {
            "means": self.means.tolist(),
            "stds": self.stds.tolist(),
            "log_weights": self.log_weights.tolist(),
            "bounds": self.bounds,
            "step": self.step,
            "has_null": self.has_null,
            "points": self.points.tolist(),
            "decimals": self.decimals,
        }

    @classmethod
    def fit(cls, series: pd.Series, spec: ColumnSpec, config: EncoderConfig, rng: np.random.Generator) -> Self:
        x, missing = _numbers(series, spec)
        finite = x[~missing]
        if not np.isfinite(finite).all():
            raise BadInputError(f"column '{spec.name}' holds infinite values")
        means, stds, weights = fit_modes(finite, config, rng)
        observed = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        step = _step(series, spec)
        return cls(
            spec=spec,
            means=means,
            stds=stds,
            log_weights=np.log(weights),
            bounds=spec.bounds or observed,
            step=step,
            has_null=_has_null(spec, missing),
            points=_point_masses(finite, means, stds, np.log(weights)),
            decimals=_decimals(finite) if spec.kind is ColumnKind.NUMERICAL and not step else None,
        )

    @classmethod
    def fit_private(
        cls, series: pd.Series, spec: ColumnSpec, config: EncoderConfig, rng: np.random.Generator, share: EncoderPrivacy
    ) -> tuple[Self, np.ndarray | None]:
        """One mode spanning noisy bounds, or public ones (see `EncoderPrivacy`); no noisy counts to hand on."""
        x, missing = _numbers(series, spec)
        low, high = spec.bounds if spec.public and spec.bounds else noisy_bounds(x[~missing], share.epsilon, rng)
        step = 1 if spec.kind is ColumnKind.DATETIME else _step(series, spec)  # a datetime's step is the data's
        codec = cls(
            spec=spec,
            means=np.array([(low + high) / 2]),
            stds=np.array([max((high - low) / 8, 1e-12)]),  # (x - mean) / (4 std) spans [-1, 1]
            log_weights=np.zeros(1),
            bounds=(low, high),
            step=step,
            has_null=_holds_missing(spec),
        )
        return codec, None

    @classmethod
    def from_state(cls, spec: ColumnSpec, state: dict[str, Any]) -> Self:
        bounds = state["bounds"]
        return cls(
            spec=spec,
            means=np.asarray(state["means"], dtype=np.float64),
            stds=np.asarray(state["stds"], dtype=np.float64),
            log_weights=np.asarray(state["log_weights"], dtype=np.float64),
            bounds=(float(bounds[0]), float(bounds[1])),
            step=int(state["step"]),
            has_null=bool(state["has_null"]),
            points=np.asarray(state.get("points", []), dtype=np.float64),
            decimals=state.get("decimals"),
        )


def _point_masses(x: np.ndarray, means: np.ndarray, stds: np.ndarray, log_weights: np.ndarray) -> np.ndarray:
    """For each mode, the single training value it takes (by the encoder's own assignment), or NaN if they differ.

    Only modes of more than one row count: a lone value is no spike.
    """
    points = np.full(means.size, np.nan)
    if means.size < 2 or x.size == 0:
        return points
    values, counts = np.unique(x, return_counts=True)
    mode = _log_joint(values, means, stds, log_weights).argmax(axis=1)
    for k in range(means.size):
        held = values[mode == k]
        if held.size == 1 and counts[mode == k][0] > 1:
            points[k] = held[0]
    return points


@dataclass(frozen=True, eq=False)
class _CategoryCodec:
    """One-hot over the training categories, most frequent first; a missing value has its own slot, last.

    A column with more categories than `max_category_slots` keeps a slot for each of the most frequent
    ones and one shared `tail` slot for the rest, decoded to a tail category drawn by its training
    frequency: rare categories are kept (not collapsed) while the width, and every generator's memory,
    stays bounded however many levels the column has.
    """

    spec: ColumnSpec
    categories: tuple[Any, ...]
    has_null: bool
    slots: int  # categories with a slot of their own; the others share the tail slot
    tail_weights: tuple[float, ...]  # training frequencies of categories[slots:], summing to 1

    @property
    def has_tail(self) -> bool:
        return self.slots < len(self.categories)

    @property
    def null_slot(self) -> int:
        return self.slots + int(self.has_tail)

    @property
    def width(self) -> int:
        return self.null_slot + int(self.has_null)

    def spans(self, start: int) -> list[Span]:
        return [Span(self.spec.name, "category", start, self.width, "softmax")]

    def encode(self, series: pd.Series, out: np.ndarray) -> None:
        """Unseen categories leave their row's group all zero, which scores as atypical."""
        codes = pd.Categorical(series, categories=list(self.categories)).codes.astype(np.int64)
        codes = np.where(codes >= self.slots, self.slots, codes)  # tail categories share one slot
        missing = series.isna().to_numpy()
        _check_missing(self.spec, missing, self.has_null)
        codes[missing] = self.null_slot
        rows = np.flatnonzero(codes >= 0)
        out[rows, codes[rows]] = 1.0

    def slot_of(self, value: Any) -> int:
        """The one-hot slot of a category (or of missing, when the column has missing values)."""
        if value is None or (isinstance(value, float) and np.isnan(value)):
            if self.has_null:
                return self.null_slot
        elif value in self.categories[: self.slots]:
            return self.categories.index(value)
        elif value in self.categories:
            raise BadInputError(
                f"cannot condition on '{self.spec.name}' = {value!r}: too rare to condition on (one of the "
                f"{len(self.categories) - self.slots} categories beyond the {self.slots} most frequent)"
            )
        raise BadInputError(f"cannot condition on '{self.spec.name}' = {value!r}: not a category seen in training")

    def decode(self, block: np.ndarray, rng: np.random.Generator) -> pd.Series:
        slot = block.argmax(axis=1)
        missing = slot == self.null_slot
        index = np.where(missing, len(self.categories), slot)
        in_tail = slot == self.slots if self.has_tail else np.zeros(len(slot), dtype=bool)
        if in_tail.any():
            picks = rng.choice(len(self.tail_weights), size=int(in_tail.sum()), p=np.asarray(self.tail_weights))
            index[in_tail] = self.slots + picks
        values = np.asarray([*self.categories, None], dtype=object)[index]
        dtype = pandas_dtype(self.spec.dtype)
        if isinstance(dtype, pd.CategoricalDtype):
            dtype = pd.CategoricalDtype(self.spec.categories or self.categories, ordered=dtype.ordered)
        return to_column(values, missing, dtype, self.spec.name)

    def state(self) -> dict[str, Any]:
        return {
            "categories": tuple(_plain(c) for c in self.categories),
            "has_null": self.has_null,
            "slots": self.slots,
            "tail_weights": self.tail_weights,
        }

    @classmethod
    def fit(cls, series: pd.Series, spec: ColumnSpec, config: EncoderConfig, rng: np.random.Generator) -> Self:
        counts = series.value_counts(dropna=True, sort=False)
        order = sorted(range(len(counts)), key=lambda i: (-counts.iloc[i], str(counts.index[i])))
        categories = tuple(counts.index[i] for i in order)
        slots = min(len(categories), config.max_category_slots)
        tail = counts.iloc[order[slots:]].to_numpy(dtype=np.float64)
        return cls(
            spec=spec,
            categories=categories,
            has_null=_has_null(spec, series.isna().to_numpy()),
            slots=slots,
            tail_weights=tuple((tail / tail.sum()).tolist()) if len(tail) else (),
        )

    @classmethod
    def fit_private(
        cls, series: pd.Series, spec: ColumnSpec, config: EncoderConfig, rng: np.random.Generator, share: EncoderPrivacy
    ) -> tuple[Self, np.ndarray | None]:
        """Categories whose noisy count passes the threshold, or every public one; most frequent (noisily) first.

        Returns the noisy counts of the slots too (missing last), clamped at zero.
        """
        counts = _declared_counts(series, spec) if spec.public else series.value_counts(dropna=True, sort=False)
        noisy = counts.to_numpy(dtype=np.float64) + rng.laplace(0.0, 1 / share.epsilon, len(counts))
        threshold = -np.inf if spec.public else 1 + np.log(1 / (2 * share.delta)) / share.epsilon
        kept = sorted(np.flatnonzero(noisy > threshold), key=lambda i: (-noisy[i], str(counts.index[i])))
        categories = tuple(counts.index[i] for i in kept)
        slots = min(len(categories), config.max_category_slots)
        tail = np.maximum(noisy[kept[slots:]], 0.0)  # a public category's noisy count may be negative
        has_null = _holds_missing(spec)
        codec = cls(
            spec=spec,
            categories=categories,
            has_null=has_null,
            slots=slots,
            tail_weights=tuple((tail / tail.sum() if tail.sum() > 0 else np.full(len(tail), 1 / len(tail))).tolist())
            if len(tail) else (),
        )
        missing = float(series.isna().sum()) + rng.laplace(0.0, 1 / share.epsilon)
        slot_counts = [*noisy[kept[:slots]], *([tail.sum()] if len(tail) else []), *([missing] if has_null else [])]
        return codec, np.maximum(np.asarray(slot_counts, dtype=np.float64), 0.0)

    @classmethod
    def from_state(cls, spec: ColumnSpec, state: dict[str, Any]) -> Self:
        return cls(
            spec=spec,
            categories=tuple(state["categories"]),
            has_null=bool(state["has_null"]),
            slots=int(state["slots"]),
            tail_weights=tuple(state["tail_weights"]),
        )


def _declared_counts(series: pd.Series, spec: ColumnSpec) -> pd.Series:
    """How many rows hold each declared public category (zero for those none holds).

    A value the declaration lacks is refused (see `EncoderPrivacy`).
    """
    declared = list(spec.categories or ())
    values = series.dropna()
    undeclared = values[~values.isin(declared)]
    if len(undeclared):
        raise BadInputError(
            f"column '{spec.name}': {undeclared.iloc[0]!r} is not among its {len(declared)} declared public categories "
            "(add it to categories, or drop public: true)"
        )
    return values.value_counts(sort=False).reindex(declared, fill_value=0)


@dataclass(frozen=True, eq=False)
class _BooleanCodec:
    """One 0/1 flag, plus a null flag when the column can be missing."""

    spec: ColumnSpec
    has_null: bool

    @property
    def width(self) -> int:
        return 1 + int(self.has_null)

    def spans(self, start: int) -> list[Span]:
        spans = [Span(self.spec.name, "flag", start, 1, "sigmoid")]
        if self.has_null:
            spans.append(Span(self.spec.name, "null", start + 1, 1, "sigmoid"))
        return spans

    def encode(self, series: pd.Series, out: np.ndarray) -> None:
        flags = series.astype("boolean")
        missing = flags.isna().to_numpy()
        _check_missing(self.spec, missing, self.has_null)
        out[:, 0] = flags.fillna(False).to_numpy(dtype=np.float32)
        if self.has_null:
            out[:, 1] = missing

    def decode(self, block: np.ndarray, rng: np.random.Generator) -> pd.Series:
        missing = block[:, 1] > 0.5 if self.has_null else None
        return to_column(block[:, 0] > 0.5, missing, self.spec.dtype, self.spec.name)

    def state(self) -> dict[str, Any]:
        return {"has_null": self.has_null}

    @classmethod
    def fit(cls, series: pd.Series, spec: ColumnSpec, config: EncoderConfig, rng: np.random.Generator) -> Self:
        return cls(spec=spec, has_null=_has_null(spec, series.isna().to_numpy()))

    @classmethod
    def fit_private(
        cls, series: pd.Series, spec: ColumnSpec, config: EncoderConfig, rng: np.random.Generator, share: EncoderPrivacy
    ) -> tuple[Self, np.ndarray | None]:
        """A null flag whenever the dtype can hold missing values; returns the noisy counts of false and true.

        The counts are clamped at zero; missing rows are counted in their own cell, which is not handed on.
        """
        flags = series.astype("boolean")
        cells = [int((flags == False).sum()), int((flags == True).sum()), int(flags.isna().sum())]  # noqa: E712
        noisy = np.asarray(cells, dtype=np.float64) + rng.laplace(0.0, 1 / share.epsilon, 3)
        return cls(spec=spec, has_null=_holds_missing(spec)), np.maximum(noisy[:2], 0.0)

    @classmethod
    def from_state(cls, spec: ColumnSpec, state: dict[str, Any]) -> Self:
        return cls(spec=spec, has_null=bool(state["has_null"]))


_CODECS: dict[ColumnKind, type[_Codec]] = {
    ColumnKind.NUMERICAL: _NumberCodec,
    ColumnKind.DATETIME: _NumberCodec,
    ColumnKind.CATEGORICAL: _CategoryCodec,
    ColumnKind.BOOLEAN: _BooleanCodec,
}


class TabularEncoder:
    """Table -> float32 matrix and back; `layout_` tells generators which slice is which column."""

    def __init__(self, config: EncoderConfig = EncoderConfig()) -> None:
        self.config = config

    def fit(self, df: pd.DataFrame, schema: Schema, seed: int = 0, privacy: EncoderPrivacy | None = None) -> Self:
        """Fit each learned column's codec and each regenerated column's format.

        `seed` drives subsampling (and the noise of a `privacy` fit, see `EncoderPrivacy`, which also sets
        `noisy_counts_`).
        """
        _check_columns(df, schema)
        if df.empty:
            raise BadInputError("cannot fit an encoder on an empty table")
        rng = np.random.default_rng(seed)
        self.noisy_counts_: dict[str, np.ndarray] = {}
        if privacy is None:
            codecs = [_CODECS[s.kind].fit(df[s.name], s, self.config, rng) for s in schema.learned]
        else:
            schema = schema.replace(
                dataclasses.replace(s, categories=None, bounds=None) for s in schema.learned if not s.public
            )
            paying = max(1, sum(_costs_budget(s) for s in schema.learned))
            share = EncoderPrivacy(privacy.epsilon / paying, privacy.delta / paying)
            noise = np.random.default_rng(int.from_bytes(os.urandom(32))) if privacy.secure_noise else rng
            codecs = []
            for spec in schema.learned:
                codec, counts = _CODECS[spec.kind].fit_private(df[spec.name], spec, self.config, noise, share)
                codecs.append(codec)
                if counts is not None:
                    self.noisy_counts_[spec.name] = counts
        formats = [fit_format(df[s.name], s, self.config.max_shapes) for s in schema if not s.kind.is_learned]
        self._set_fitted(schema, codecs, formats)
        return self

    def transform(self, df: pd.DataFrame) -> torch.Tensor:
        """The learned columns of `df` as an n x `width_` float32 matrix (other columns are ignored)."""
        _check_columns(df, self.schema_, learned_only=True)
        out = np.zeros((len(df), self.width_), dtype=np.float32)
        start = 0
        for codec in self.codecs_:
            codec.encode(df[codec.spec.name], out[:, start : start + codec.width])
            start += codec.width
        return torch.from_numpy(out)

    def inverse_transform(self, matrix: torch.Tensor | np.ndarray, seed: int | np.random.Generator) -> pd.DataFrame:
        """A frame with every schema column in order and dtype; `seed` drives the regenerated columns."""
        block = matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
        if block.ndim != 2 or block.shape[1] != self.width_:
            raise BadInputError(f"expected an n x {self.width_} matrix, got shape {tuple(block.shape)}")
        rng = np.random.default_rng(seed)
        columns: dict[str, pd.Series] = {}
        start = 0
        for codec in self.codecs_:
            columns[codec.spec.name] = codec.decode(block[:, start : start + codec.width], rng)
            start += codec.width
        for model in self.formats_:
            columns[model.column] = regenerate(model, len(block), rng)
        return pd.DataFrame({name: columns[name] for name in self.schema_.names})

    def conditions(self, values: Mapping[str, Any]) -> tuple[Condition, ...]:
        """`{"column": value}` of categorical or boolean columns as positions in the encoded matrix."""
        found = []
        for column, value in values.items():
            codec = next((c for c in self.codecs_ if c.spec.name == column), None)
            if codec is None:
                raise BadInputError(f"cannot condition on '{column}': not a learned column of the table")
            span = next((s for s in self.layout_ if s.column == column and s.role in ("category", "flag")), None)
            if span is not None and isinstance(codec, _CategoryCodec):
                found.append(Condition(span, codec.slot_of(value)))
            elif span is not None and isinstance(codec, _BooleanCodec) and isinstance(value, bool | np.bool_):
                found.append(Condition(span, int(value)))
            else:
                raise BadInputError(
                    f"cannot condition on '{column}' = {value!r}: conditions take categorical "
                    "columns (a training category) or boolean ones (true/false)"
                )
        return tuple(found)

    def matches(self, matrix: torch.Tensor, conditions: tuple[Condition, ...]) -> torch.Tensor:
        """Which rows of an encoded matrix decode to every requested value."""
        ok = torch.ones(len(matrix), dtype=torch.bool, device=matrix.device)
        for c in conditions:
            block = matrix[:, c.span.start : c.span.stop]
            ok &= (block[:, 0] > 0.5) == bool(c.index) if c.span.role == "flag" else block.argmax(dim=1) == c.index
        return ok

    def impose(self, matrix: torch.Tensor, conditions: tuple[Condition, ...]) -> torch.Tensor:
        """The matrix with the requested values written in, so decoded rows satisfy them exactly."""
        for c in conditions:
            if c.span.role == "flag":
                matrix[:, c.span.start] = float(c.index)
                for null in (s for s in self.layout_ if s.column == c.span.column and s.role == "null"):
                    matrix[:, null.start] = 0.0
            else:
                matrix[:, c.span.start : c.span.stop] = 0.0
                matrix[:, c.span.start + c.index] = 1.0
        return matrix

    def to_state(self, shareable: bool = False) -> dict[str, Any]:
        """Plain data only (no pickled classes), for `torch.save` and `torch.load(weights_only=True)`.

        `shareable` leaves out every function of a real id/PII/text value (see `FormatModel.to_state`).
        """
        return {
            "config": dataclasses.asdict(self.config),
            "schema": self.schema_.to_dict(),
            "codecs": {codec.spec.name: codec.state() for codec in self.codecs_},
            "formats": [model.to_state(shareable) for model in self.formats_],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TabularEncoder:
        """A fitted encoder rebuilt from `to_state`'s plain data, without refitting."""
        encoder = cls(EncoderConfig(**state["config"]))
        schema = Schema.from_dict(state["schema"])
        codecs = [_CODECS[s.kind].from_state(s, state["codecs"][s.name]) for s in schema.learned]
        encoder._set_fitted(schema, codecs, [FormatModel.from_state(f) for f in state["formats"]])
        return encoder

    def _set_fitted(self, schema: Schema, codecs: list[_Codec], formats: list[FormatModel]) -> None:
        self.schema_ = schema
        self.codecs_: tuple[_Codec, ...] = tuple(codecs)
        self.formats_: tuple[FormatModel, ...] = tuple(formats)
        spans: list[Span] = []
        for codec in codecs:
            spans.extend(codec.spans(spans[-1].stop if spans else 0))
        self.layout_: tuple[Span, ...] = tuple(spans)
        self.width_: int = spans[-1].stop if spans else 0
        logger.debug("encoder: %d learned columns -> width %d", len(codecs), self.width_)


_GRID_OCTAVES = (-20, 64)  # magnitudes 2^-20 .. 2^64: datetimes as epoch nanoseconds fit too
_GRID_PER_OCTAVE = 8
_GRID_BINS = (_GRID_OCTAVES[1] - _GRID_OCTAVES[0]) * _GRID_PER_OCTAVE  # per sign; bin 0 holds |x| < 2^-20
_FALSE_BIN_ODDS = 0.05  # chance that noise alone lifts some empty bin over the threshold


def noisy_bounds(x: np.ndarray, epsilon: float, rng: np.random.Generator) -> tuple[float, float]:
    """Epsilon-DP bounds of `x`: the outermost bins whose Laplace-noised count passes a threshold.

    The bins lie on a fixed grid of signed magnitudes (8 bins an octave), so the bounds lie within 9% of
    the data's but leave out values too rare to tell from noise. With no bin over the threshold, the
    fullest bin.
    """
    if not np.isfinite(x).all():
        raise BadInputError("a numerical column holds infinite values")
    low = 2.0 ** _GRID_OCTAVES[0]
    magnitude = np.clip(np.abs(x), low, 2.0 ** _GRID_OCTAVES[1] * (1 - 1e-12))
    k = np.floor((np.log2(magnitude) - _GRID_OCTAVES[0]) * _GRID_PER_OCTAVE).astype(np.int64) + 1
    index = _GRID_BINS + np.sign(x).astype(np.int64) * np.where(np.abs(x) < low, 0, k)
    noisy = np.bincount(index, minlength=2 * _GRID_BINS + 1) + rng.laplace(0.0, 1 / epsilon, 2 * _GRID_BINS + 1)
    threshold = np.log(len(noisy) / (2 * _FALSE_BIN_ODDS)) / epsilon
    over = np.flatnonzero(noisy > threshold)
    if not over.size:
        over = np.array([int(noisy.argmax())])
    return _grid_edges(int(over.min()))[0], _grid_edges(int(over.max()))[1]


def _grid_edges(index: int) -> tuple[float, float]:
    """The value range of a bin of `noisy_bounds`' grid."""
    k = index - _GRID_BINS
    if not k:
        return -(2.0 ** _GRID_OCTAVES[0]), 2.0 ** _GRID_OCTAVES[0]
    inner = 2.0 ** (_GRID_OCTAVES[0] + (abs(k) - 1) / _GRID_PER_OCTAVE)
    outer = 2.0 ** (_GRID_OCTAVES[0] + abs(k) / _GRID_PER_OCTAVE)
    return (inner, outer) if k > 0 else (-outer, -inner)


def fit_modes(
    x: np.ndarray, config: EncoderConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means, standard deviations and weights of a 1-D Gaussian mixture fitted to `x` by EM.

    EM runs on the distinct values weighted by their counts, which makes integer and spiky columns
    cheap; a seeded subsample bounds the cost for continuous ones. Modes lighter than
    `min_mode_weight` are dropped. A constant (or empty) column gets one mode of unit spread.
    """
    values, counts = np.unique(x, return_counts=True)
    if values.size < 2:
        return np.array([values[0] if values.size else 0.0]), np.ones(1), np.ones(1)
    if values.size <= config.max_point_modes:
        # Few distinct values (a grade, a count of children): each is a mode of its own and decodes to exactly
        # itself, so the column behaves like the categorical it nearly is (Adult's education-num).
        weights = counts / counts.sum()
        spread = float(np.sqrt(weights @ (values - weights @ values) ** 2))
        return values.astype(np.float64), np.full(values.size, 1e-3 * spread), weights
    if x.size > config.mixture_subsample:
        x = rng.choice(x, config.mixture_subsample, replace=False)
        values, counts = np.unique(x, return_counts=True)
    weights = counts / counts.sum()
    spread = float(np.sqrt(weights @ (values - weights @ values) ** 2))
    floor = (1e-3 * spread) ** 2
    k = min(config.max_modes, values.size)
    means = values[np.linspace(0, values.size - 1, k).round().astype(np.int64)]
    variances = np.full(k, (spread / k) ** 2)
    mix = np.full(k, 1.0 / k)
    previous = -np.inf
    for _ in range(config.em_iterations):
        log_joint = _log_joint(values, means, np.sqrt(variances), np.log(mix))
        top = log_joint.max(axis=1, keepdims=True)
        log_total = top[:, 0] + np.log(np.exp(log_joint - top).sum(axis=1))
        resp = np.exp(log_joint - log_total[:, None]) * weights[:, None]
        mass = resp.sum(axis=0) + 1e-12
        mix = mass / mass.sum()
        means = (resp.T @ values) / mass
        variances = (resp * (values[:, None] - means) ** 2).sum(axis=0) / mass + floor
        likelihood = float(weights @ log_total)
        if likelihood - previous < config.em_tolerance:
            break
        previous = likelihood
    keep = mix >= min(config.min_mode_weight, mix.max())
    order = np.argsort(means[keep])
    return means[keep][order], np.sqrt(variances[keep])[order], (mix[keep] / mix[keep].sum())[order]


def _log_joint(x: np.ndarray, means: np.ndarray, stds: np.ndarray, log_weights: np.ndarray) -> np.ndarray:
    """log(weight_k * N(x | mean_k, std_k)) for every value and mode, n x k."""
    z = (x[:, None] - means) / stds
    return log_weights - np.log(stds) - 0.5 * (z**2 + np.log(2 * np.pi))


def _numbers(series: pd.Series, spec: ColumnSpec) -> tuple[np.ndarray, np.ndarray]:
    """A numerical column as float64, a datetime one as UTC epoch nanoseconds; plus its missing mask."""
    missing = series.isna().to_numpy()
    if spec.kind is ColumnKind.DATETIME:
        ns = _epoch_ns(series, spec)
        return np.where(missing, np.nan, ns.astype(np.float64)), missing
    try:
        return pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan), missing
    except (TypeError, ValueError) as error:
        raise BadInputError(f"column '{spec.name}': not numerical ({error})") from None


def _epoch_ns(series: pd.Series, spec: ColumnSpec) -> np.ndarray:
    """UTC epoch nanoseconds (naive times taken as they are); strings are parsed with the schema's format."""
    if not is_datetime64_any_dtype(series):
        try:
            series = pd.to_datetime(series, format=spec.datetime_format, utc=True)
        except (TypeError, ValueError) as error:
            raise BadInputError(f"column '{spec.name}': not datetimes ({error})") from None
    if series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _from_numbers(x: np.ndarray, missing: np.ndarray, spec: ColumnSpec) -> pd.Series:
    """Decoded numbers back to the column's dtype: datetimes get their zone (or string format) back."""
    if spec.kind is not ColumnKind.DATETIME:
        return to_column(x, missing, spec.dtype, spec.name)
    ns = np.where(missing, _NAT, x.astype(np.int64))
    times = pd.Series(ns.view("datetime64[ns]"), name=spec.name)
    dtype = pandas_dtype(spec.dtype)
    zone = spec.timezone or getattr(dtype, "tz", None)
    if zone is not None:
        times = times.dt.tz_localize("UTC").dt.tz_convert(zone)
    if is_datetime64_any_dtype(dtype):
        return times.astype(dtype)
    text = times.dt.strftime(spec.datetime_format) if spec.datetime_format else times.astype(str)
    return to_column(text.to_numpy(dtype=object), missing, dtype, spec.name)


def _step(series: pd.Series, spec: ColumnSpec) -> int:
    """The rounding step of decoded values: 1 for integers, the data's own resolution for datetimes."""
    if spec.kind is ColumnKind.DATETIME:
        ns = _epoch_ns(series, spec)[series.notna().to_numpy()]
        return next((s for s in _TIME_STEPS_NS if not np.any(ns % s)), 1)
    return int(spec.integer or is_integer_dtype(pandas_dtype(spec.dtype)))


def _decimals(x: np.ndarray) -> int | None:
    """The fewest decimals, up to `_MAX_DECIMALS`, that the values of `x` are written with; None if more.

    A value counts as written with d decimals when rounding it to d moves it by at most 4 ulps: the float64 a
    CSV parser reads "8.9" into is 8.9 only to the nearest ulp or so. The tolerance scales with the value, so a
    value too large for float64 to hold decimals (past 2^53, whole already; rounding moves it by an ulp) fits
    every resolution and leaves the column's to its smaller values. Up to `_OFF_GRID_SHARE` of the values may
    have more than `_MAX_DECIMALS`: wine's alcohol is written with at most two but for 20 rows of 4,898
    (such as 10.9666666666667, a computed value), and left unrounded for them it would give every row away.
    """
    tolerance = 4 * np.spacing(np.abs(x))
    on_grid = np.abs(np.round(x, _MAX_DECIMALS) - x) <= tolerance
    if np.count_nonzero(~on_grid) > _OFF_GRID_SHARE * x.size:
        return None
    x, tolerance = x[on_grid], tolerance[on_grid]
    return next(d for d in range(_MAX_DECIMALS + 1) if np.all(np.abs(np.round(x, d) - x) <= tolerance))


def _costs_budget(spec: ColumnSpec) -> bool:
    """Whether a private fit measures anything of the column: all but a number or datetime with public bounds."""
    return not (spec.public and spec.kind in (ColumnKind.NUMERICAL, ColumnKind.DATETIME))


def public_assumptions(schema: Schema) -> list[str]:
    """The domains the owner declared public, one line each, for a DP fit's record of what it took as public."""
    lines = []
    for spec in schema.learned:
        if not spec.public:
            continue
        if spec.kind is ColumnKind.CATEGORICAL:
            declared = f"categories {[_plain(c) for c in spec.categories or ()]}"
        elif spec.kind is ColumnKind.DATETIME and spec.bounds is not None:
            declared = "bounds [{}, {}]".format(*(pd.Timestamp(int(b)).isoformat() for b in spec.bounds))
        else:
            declared = f"bounds {list(spec.bounds or ())}"
        lines.append(f"the domain of {spec.name}, declared public: {declared}")
    return lines


def _holds_missing(spec: ColumnSpec) -> bool:
    dtype = pandas_dtype(spec.dtype)
    return not (isinstance(dtype, np.dtype) and dtype.kind in "iub")


def _has_null(spec: ColumnSpec, missing: np.ndarray) -> bool:
    """Whether a column needs a null slot: it is declared nullable or has gaps, and its dtype can hold them."""
    holds_missing = _holds_missing(spec)
    if missing.any() and not holds_missing:
        raise BadInputError(f"column '{spec.name}' has missing values but its dtype {spec.dtype} cannot hold them")
    return holds_missing and (spec.nullable or bool(missing.any()))


def _check_missing(spec: ColumnSpec, missing: np.ndarray, has_null: bool) -> None:
    if missing.any() and not has_null:
        raise BadInputError(f"column '{spec.name}' has missing values but had none when the encoder was fitted")


def _check_columns(df: pd.DataFrame, schema: Schema, learned_only: bool = False) -> None:
    wanted = [s.name for s in (schema.learned if learned_only else schema)]
    absent = [name for name in wanted if name not in df.columns]
    if absent:
        raise BadInputError(f"the table lacks the schema column(s) {absent}")


def _plain(value: Any) -> Any:
    """NumPy scalars to Python ones, so the state loads with `weights_only=True`."""
    return value.item() if isinstance(value, np.generic) else value
