"""Regeneration of the columns no generator learns (id, pii, text): same format, never a real value.

An id, an email or a free-text note carries no pattern worth learning and every real value is a leak,
so each synthetic row gets a fresh value of a real value's *shape*: digits become random digits,
letters random letters of the same case, everything else (`@`, `.`, `-`, spaces) is kept. Emails also
keep their top-level domain, which identifies nobody. Numeric columns get unique integers from a block
just above the real range, so they cannot collide; strings are checked against 64-bit hashes of the real
values (the model keeps these hashes, never the values) and collisions are redrawn, lengthened if need be.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype, pandas_dtype

from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec

logger = logging.getLogger(__name__)

# One byte per character class: UTF-8 never uses bytes below 0x80 inside a multi-byte character, so
# these placeholders cannot be mistaken for part of a kept literal.
_DIGIT, _UPPER, _LOWER = "\x01", "\x02", "\x03"
_PLACEHOLDER = "[\x01-\x03]"
_FILLS = ((_DIGIT, ord("0"), 10), (_UPPER, ord("A"), 26), (_LOWER, ord("a"), 26))
_MASK = np.arange(256, dtype=np.uint8)  # byte -> placeholder byte; punctuation maps to itself
_MASK[ord("0") : ord("9") + 1] = ord(_DIGIT)
_MASK[ord("A") : ord("Z") + 1] = ord(_UPPER)
_MASK[ord("a") : ord("z") + 1] = ord(_LOWER)
_MASK[0xC0:] = ord(_LOWER)  # lead byte of a non-ASCII character
_TLD = r"\.[A-Za-z]{2,24}$"
_FALLBACK_SHAPE = _LOWER * 8
_MAX_ROUNDS = 32
_INT64_MAX = int(np.iinfo(np.int64).max)


@dataclass(frozen=True, eq=False)
class FormatModel:
    """All regeneration needs: the dtype, the null rate, and either an integer range or value shapes."""

    column: str
    dtype: str
    null_rate: float
    unique: bool
    int_range: tuple[int, int] | None = None
    shapes: tuple[str, ...] = ()
    shape_weights: tuple[float, ...] = ()
    real_hashes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))

    def to_state(self, shareable: bool = False) -> dict[str, Any]:
        """Plain data and tensors only, so `torch.load(weights_only=True)` can read it back.

        `shareable` leaves out the hashes of the real values (a dictionary attack could test guesses
        against them); regenerated values are then unlikely, no longer guaranteed, to differ from real ones.
        """
        hashes = np.empty(0, np.uint64) if shareable else self.real_hashes
        return {
            "column": self.column,
            "dtype": self.dtype,
            "null_rate": self.null_rate,
            "unique": self.unique,
            "int_range": self.int_range,
            "shapes": self.shapes,
            "shape_weights": self.shape_weights,
            "real_hashes": torch.from_numpy(hashes.view(np.int64).copy()),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FormatModel:
        """The model rebuilt from `to_state`'s plain data and tensors (the hashes viewed as unsigned again)."""
        hashes = state["real_hashes"].numpy().view(np.uint64)
        int_range = state["int_range"]
        return cls(
            column=state["column"],
            dtype=state["dtype"],
            null_rate=float(state["null_rate"]),
            unique=bool(state["unique"]),
            int_range=(int(int_range[0]), int(int_range[1])) if int_range is not None else None,
            shapes=tuple(state["shapes"]),
            shape_weights=tuple(state["shape_weights"]),
            real_hashes=hashes,
        )


def fit_format(series: pd.Series, spec: ColumnSpec, max_shapes: int = 1000) -> FormatModel:
    """Learn a regenerated column's format: its null rate and its `max_shapes` most common shapes."""
    if spec.kind.is_learned:
        raise BadInputError(f"column '{spec.name}': {spec.kind.value} columns are learned, not regenerated")
    dtype = pandas_dtype(spec.dtype)
    if is_bool_dtype(dtype) or is_datetime64_any_dtype(dtype):
        raise BadInputError(
            f"column '{spec.name}': a {spec.dtype} column cannot be regenerated as {spec.kind.value}; "
            "mark it boolean or datetime so it is learned"
        )
    present = series.dropna()
    null_rate = 1.0 - len(present) / len(series) if len(series) else 0.0
    model = FormatModel(spec.name, spec.dtype, null_rate, unique=spec.kind is ColumnKind.ID)
    if is_numeric_dtype(dtype):
        numbers = pd.to_numeric(present).to_numpy(dtype=np.float64)
        bounds = (int(np.floor(numbers.min())), int(np.ceil(numbers.max()))) if numbers.size else (0, 0)
        return dataclasses.replace(model, int_range=bounds)
    text = present.astype(str)
    counts = pd.Series(shapes_of(text, email=spec.pii_type == "email")).value_counts()
    counts = counts[counts.index.str.contains(_PLACEHOLDER)]  # a shape with nothing random is a real value
    if counts.empty:
        counts = pd.Series({_FALLBACK_SHAPE: 1})
    counts = counts.sort_index().sort_values(ascending=False, kind="stable").head(max_shapes)
    return dataclasses.replace(
        model,
        shapes=tuple(counts.index),
        shape_weights=tuple((counts / counts.sum()).tolist()),
        real_hashes=np.unique(pd.util.hash_array(text.to_numpy(dtype=object))),
    )


def shapes_of(text: pd.Series, email: bool = False) -> np.ndarray:
    """Each value with every character but punctuation replaced by its class placeholder.

    Works on the UTF-8 bytes at once: ASCII digits and letters map to their class, any other
    character (its lead byte; continuation bytes are dropped) counts as a lowercase letter.
    An email keeps its top-level domain.
    """
    arrow = pa.array(text.to_numpy(dtype=object), type=pa.large_string())
    if email:
        tld = pc.fill_null(pc.struct_field(pc.extract_regex(arrow, f"(?P<tld>{_TLD})"), [0]), "")
        arrow = pc.replace_substring_regex(arrow, _TLD, "")
    chars, offsets = _utf8(arrow)
    lead = (chars & 0xC0) != 0x80
    shapes = _from_utf8(np.concatenate(([0], np.cumsum(lead)))[offsets], _MASK[chars[lead]])
    if email:
        shapes = pc.binary_join_element_wise(shapes, tld, pa.scalar("", pa.large_string()))
    return shapes.to_numpy(zero_copy_only=False)


def regenerate(model: FormatModel, n: int, rng: np.random.Generator) -> pd.Series:
    """`n` fresh values of the column's format and dtype, about `null_rate` of them missing."""
    if n < 0:
        raise BadInputError(f"cannot generate a negative number of rows ({n})")
    missing = rng.random(n) < model.null_rate
    count = int(n - missing.sum())
    if model.int_range is not None:
        values = _fresh_integers(model.int_range, count, rng)
    else:
        values = _fresh_strings(model, count, rng)
    full = np.empty(n, dtype=values.dtype if not missing.any() else object)
    full[~missing] = values
    return to_column(full, missing, model.dtype, model.column)


def to_column(values: np.ndarray, missing: np.ndarray | None, dtype: Any, name: str) -> pd.Series:
    """`values` with the `missing` rows blanked, as a Series of the column's original dtype."""
    if missing is not None and missing.any():
        values = values.astype(values.dtype if values.dtype.kind in "fcO" else object)
        values[missing] = np.nan
    return pd.Series(values, name=name).astype(dtype)


def _fresh_integers(bounds: tuple[int, int], count: int, rng: np.random.Generator) -> np.ndarray:
    """Unique integers from a block as wide as the real range, just above it (below it near int64's top)."""
    low, high = bounds
    width = max(high - low + 1, count, 1)
    start = high + 1 if high + width < _INT64_MAX else low - width
    return start + rng.choice(width, size=count, replace=False).astype(np.int64)


def _fresh_strings(model: FormatModel, count: int, rng: np.random.Generator) -> np.ndarray:
    """Fill sampled shapes; redraw values that are real (or repeated, for ids), lengthening on retries."""
    shapes = np.asarray(model.shapes, dtype=object)
    picks = shapes[rng.choice(len(shapes), size=count, p=np.asarray(model.shape_weights))]
    values = _fill(picks, rng)
    for extra in range(_MAX_ROUNDS):
        clash = _is_real(values, model.real_hashes)
        if model.unique:
            clash |= pd.Series(values).duplicated().to_numpy()
        if not clash.any():
            return values
        logger.debug("column %s: redrawing %d clashing values", model.column, int(clash.sum()))
        picks[clash] = _lengthen(picks[clash], extra)
        values[clash] = _fill(picks[clash], rng)
    raise RuntimeError(f"column '{model.column}': could not draw values unlike the real ones")


def _lengthen(shapes: np.ndarray, extra: int) -> np.ndarray:
    """Repeat each shape's first placeholder `extra` more times, widening the space it draws from."""
    if extra == 0:
        return shapes
    longer = pd.Series(shapes).str.replace(f"({_PLACEHOLDER})", r"\1" * (extra + 1), n=1, regex=True)
    return longer.to_numpy(dtype=object)


def _fill(shapes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Replace every placeholder of every shape at once, working on the concatenated UTF-8 bytes."""
    chars, offsets = _utf8(pa.array(shapes, type=pa.large_string()))
    for placeholder, first, size in _FILLS:
        where = chars == ord(placeholder)
        chars[where] = first + rng.integers(0, size, int(where.sum()), dtype=np.uint8)
    return _from_utf8(offsets, chars).to_numpy(zero_copy_only=False)


def _utf8(arrow: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """A writable copy of a string array's bytes, and its offsets starting at 0."""
    _, offset_buffer, data = arrow.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[arrow.offset : arrow.offset + len(arrow) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    return raw[offsets[0] : offsets[-1]].copy(), offsets - offsets[0]


def _from_utf8(offsets: np.ndarray, chars: np.ndarray) -> pa.LargeStringArray:
    """The strings that `chars` sliced at `offsets` spell."""
    return pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(chars))


def _is_real(values: np.ndarray, real_hashes: np.ndarray) -> np.ndarray:
    """Whether each value's hash is among the (sorted, unique) hashes of the real values."""
    hashes = pd.util.hash_array(np.asarray(values, dtype=object))
    if real_hashes.size == 0:
        return np.zeros(values.shape, dtype=bool)
    slot = np.minimum(np.searchsorted(real_hashes, hashes), real_hashes.size - 1)
    return real_hashes[slot] == hashes
