"""Schema inference: decide each column's kind from its dtype, its name and its values.

Inference looks at a sample of values only, so it is fast on large tables; the facts recorded in the
schema (categories, bounds, nullability) are then computed on the whole column. Users correct any
decision with overrides (`{"column": "pii"}` or `{"column": {"kind": "id"}}`), after which the facts are
recomputed for the new kind. An override may also declare a column's domain public (`{"age": {"bounds": [17,
90], "public": true}}`; see `ColumnSpec.public`), and `public_domain` declares every inferred one public.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema, public_flag

SAMPLE_SIZE = 2_000
PATTERN_SHARE = 0.9  # share of sampled values that must match a PII pattern
DATETIME_SHARE = 0.95

_HEX = r"[0-9a-fA-F]{1,4}"
PII_PATTERNS: dict[str, re.Pattern[str]] = {  # most specific first: the first match wins
    "email": re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$"),
    "us_ssn": re.compile(r"^\d{3}-\d{2}-\d{4}$"),
    "credit_card": re.compile(r"^\d{4}([ -]?\d{4}){3}$|^\d{4}[ -]?\d{6}[ -]?\d{5}$"),
    "iban": re.compile(r"^[A-Z]{2}\d{2}( ?[A-Z0-9]{4}){2,7}( ?[A-Z0-9]{1,4})?$"),
    "ipv4": re.compile(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$"),
    # eight hex groups, or fewer around one `::`: a time of day (`10:49:41`) has three groups and no `::`
    "ipv6": re.compile(rf"^({_HEX}:){{7}}{_HEX}$|^(?!.*::.*::)(({_HEX}:){{0,6}}{_HEX})?::(({_HEX}:){{0,6}}{_HEX})?$"),
    # 7 to 15 digits in groups; a date (`2020-01-01`, `01/02/2020`) has the digits of a phone number too
    "phone": re.compile(
        r"^(?!\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$)"
        r"(?=(\D*\d){7,15}\D*$)\+?\(?\d{1,4}\)?([ .-]?\(?\d{1,4}\)?){2,7}$"
    ),
}
_PII_NAME_HINTS: dict[str, re.Pattern[str]] = {
    "person_name": re.compile(r"^(full_?|first_?|last_?|given_?|family_?|sur|middle_?|maiden_?)?name$|^(first|last)$"),
    "address": re.compile(r"(street|address|addr)(_?line)?\d?$"),
    "email": re.compile(r"e_?mail"),
    "phone": re.compile(r"phone|mobile|fax"),
}
# What the values of a hinted column must look like for the name to count: a `telephone` column of codes
# (`1`/`2`, `yes`/`no`) or a `name` column of product tiers is not personal data.
_PII_HINT_VALUES: dict[str, re.Pattern[str]] = {
    "person_name": re.compile(r"(?=.*[^\W\d_]{2})[^\W\d_]+\.?([ '-]+[^\W\d_]+\.?){0,3}"),
    "address": re.compile(r"(?=.*\d)(?=.*[^\W\d_]{2}).+"),
    "email": re.compile(r".+@.+"),
    "phone": re.compile(r"(?=(\D*\d){6})\+?[\d\s().\-/]+((x|ext\.?)\s*\d+)?", re.IGNORECASE),
}
HINT_SHARE = 0.8  # share of sampled values that must look like what the column's name says
HINT_MIN_DISTINCT = 3  # distinct values a hinted column needs at least (two codes never single anyone out) ...
HINT_DISTINCT_SHARE = 0.1  # ... and this share of its sampled values, up to HINT_DISTINCT_CAP
HINT_DISTINCT_CAP = 20
_TIMES_OF_DAY: dict[str, re.Pattern[str]] = {
    "%H:%M": re.compile(r"([01]?\d|2[0-3]):[0-5]\d"),
    "%H:%M:%S": re.compile(r"([01]?\d|2[0-3]):[0-5]\d:[0-5]\d"),
    "%H:%M:%S.%f": re.compile(r"([01]?\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{1,6}"),
}
_ID_NAME = re.compile(r"(^|[_ -])(id|uuid|guid|key|number|no|nr)$|^id_|[a-z]Id$", re.IGNORECASE)
# An identifier may repeat now and then (a patient seen twice); a measure named like one rarely is this distinct.
ID_DISTINCT_SHARE = 0.9
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def infer_schema(
    df: pd.DataFrame,
    overrides: Mapping[str, Any] | None = None,
    target: str | None = None,
    public_domain: bool = False,
) -> tuple[pd.DataFrame, Schema]:
    """The frame conformed to its schema (datetime strings parsed, ...) and that schema.

    `overrides` maps a column to a kind name or to a dict of spec fields; an unknown column is an error.
    `public_domain`: the caller asserts that the categories and ranges of this table are not secret, so every
    column's domain (inferred or overridden) is marked public, except where an override says `public: false`.
    """
    inference = ChunkedInference(df, overrides, target, public_domain)
    return inference.conform(df), inference.schema()


Facts = dict[str, ColumnSpec]  # each column's facts (nulls, ranges, categories) over some rows


class ChunkedInference:
    """A schema inferred from a table read in chunks, as `infer_schema` infers it from the whole table.

    Each column's kind is decided on the first chunk (by its values, or by an override); every chunk is then
    conformed to those kinds and its facts (nullability, bounds, categories, integrality) merged into the
    schema, so the facts cover every row. With one chunk, the result is `infer_schema`'s on that table.
    """

    def __init__(self, first: pd.DataFrame, overrides: Mapping[str, Any] | None, target: str | None,
                 public_domain: bool) -> None:
        if first.shape[1] == 0:
            raise BadInputError("the table has no columns")
        if len(first) == 0:
            raise BadInputError("the table has no rows")
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(map(str, first.columns)))
        if unknown:
            raise BadInputError(f"schema overrides name unknown column(s): {', '.join(unknown)}")
        first = first.rename(columns=str)
        self.names = tuple(first.columns)
        self.target = target
        self.public_domain = public_domain
        self.overrides = {name: as_override(name, overrides.get(name)) for name in self.names}
        self.kinds = {name: ColumnKind(o["kind"]) if "kind" in o else detect_kind(first[name])
                      for name, o in self.overrides.items()}
        self.clocks = {name: _written_clock(first[name]) for name, kind in self.kinds.items()
                       if kind is ColumnKind.DATETIME}
        self.observed: dict[str, ColumnSpec] = {}

    def conform(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """The chunk's columns read as their kinds; its facts join the schema's."""
        frame, facts = self.read(chunk)
        self.add(facts)
        return frame

    def read(self, chunk: pd.DataFrame) -> tuple[pd.DataFrame, Facts]:
        """The chunk's columns read as their kinds, and their facts, leaving the schema as it is.

        So parts of a table can be read apart (on other workers) and their facts added in order afterwards.
        """
        chunk = chunk.rename(columns=str)
        if tuple(chunk.columns) != self.names:
            raise BadInputError("a part of the table has other columns than its first part")
        conformed = {name: conform_column(chunk[name], kind) for name, kind in self.kinds.items()}
        facts = {name: describe_column(series, self.kinds[name]) for name, series in conformed.items()}
        return pd.DataFrame(conformed, index=chunk.index), facts

    def add(self, facts: Facts) -> None:
        """Join some rows' facts (`read`) to the schema's."""
        for name, seen in facts.items():
            self.observed[name] = seen if name not in self.observed else merge_facts(self.observed[name], seen)

    def schema(self) -> Schema:
        """The schema of every chunk conformed so far, with the overrides' declared facts on top."""
        specs = []
        for name in self.names:
            spec = self.observed[name]
            if (clock := self.clocks.get(name)) is not None:
                spec = dataclasses.replace(spec, datetime_format=clock)
            override = self.overrides[name]
            extra = {k: v for k, v in override.items() if k != "kind"}
            if extra:
                spec = ColumnSpec.from_dict(name, {**spec.to_dict(), **extra})
            if self.public_domain and "public" not in override and spec.domain is not None:
                spec = dataclasses.replace(spec, public=True)
            specs.append(spec)
        return Schema(tuple(specs), target=self.target)


def merged_facts(first: Facts, later: Facts) -> Facts:
    """The facts of the rows of both, column by column (see `merge_facts`)."""
    return {name: merge_facts(first[name], later[name]) for name in first}


def merge_facts(first: ColumnSpec, later: ColumnSpec) -> ColumnSpec:
    """The facts of a column whose rows are `first`'s and `later`'s (both of one kind): nulls, ranges, categories.

    A PII type is the first chunk's (its sample decided it); where the chunks' dtypes differ (an integer column
    whose nulls make one chunk's float), the dtype is that of a chunk with nulls, which holds every chunk's values.
    """
    def widest(a: tuple[float, float] | None, b: tuple[float, float] | None) -> tuple[float, float] | None:
        return a if b is None else b if a is None else (min(a[0], b[0]), max(a[1], b[1]))

    categories = None
    if first.categories is not None or later.categories is not None:
        merged = set(first.categories or ()) | set(later.categories or ())
        categories = tuple(sorted(merged, key=lambda v: (type(v).__name__, v)))
    bounds = widest(first.bounds, later.bounds)
    return dataclasses.replace(
        first,
        dtype=first.dtype if first.dtype == later.dtype or first.nullable else later.dtype,
        nullable=first.nullable or later.nullable,
        bounds=bounds,
        integer=bounds is not None and all(spec.integer or spec.bounds is None for spec in (first, later)),
        categories=categories,
        timezone=first.timezone if first.timezone is not None else later.timezone,
    )


def detect_kind(series: pd.Series) -> ColumnKind:
    """The most plausible kind of one column, from its dtype, name and a sample of its values."""
    name = str(series.name).strip()
    values = series.dropna()
    if values.empty:
        return ColumnKind.CATEGORICAL
    if pd.api.types.is_bool_dtype(series):
        return ColumnKind.BOOLEAN
    if pd.api.types.is_datetime64_any_dtype(series):
        return ColumnKind.DATETIME
    if isinstance(series.dtype, pd.CategoricalDtype):
        return ColumnKind.CATEGORICAL
    unique = values.is_unique and len(values) > 1
    mostly_distinct = len(values) >= 20 and values.nunique() >= ID_DISTINCT_SHARE * len(values)
    if pd.api.types.is_numeric_dtype(series):
        numbers = values.to_numpy(dtype=float)
        integral = bool(np.all(np.mod(numbers[np.isfinite(numbers)], 1) == 0))  # ±inf is refused when conformed
        named = _ID_NAME.search(name) is not None
        return ColumnKind.ID if (unique or mostly_distinct) and integral and named else ColumnKind.NUMERICAL
    text = values.astype(str)
    sample = text.sample(min(len(text), SAMPLE_SIZE), random_state=0) if len(text) > SAMPLE_SIZE else text
    if pii_type_of(name, sample) is not None:
        return ColumnKind.PII
    if unique and (_ID_NAME.search(name) or sample.str.match(_UUID).mean() >= PATTERN_SHARE):
        return ColumnKind.ID
    if time_of_day_format(sample) is not None or _parses_as_datetime(sample):
        return ColumnKind.DATETIME
    words = sample.str.split().str.len()
    if words.mean() >= 5 and values.nunique() > 0.5 * len(values):
        return ColumnKind.TEXT
    return ColumnKind.CATEGORICAL


def pii_type_of(name: str, sample: pd.Series) -> str | None:
    """Which kind of personal data a text column holds: by value pattern first, then by column name.

    A name alone never decides: the values must look like what it names and be varied enough to single
    people out, so a `telephone` column of two codes stays a category the model learns.
    """
    stripped = sample.str.strip()
    for pii_type, pattern in PII_PATTERNS.items():
        matches = stripped.str.match(pattern)
        if matches.mean() >= PATTERN_SHARE and (pii_type != "credit_card" or _luhn_share(stripped) >= PATTERN_SHARE):
            return pii_type
    lowered = name.lower()
    hinted = [pii_type for pii_type, hint in _PII_NAME_HINTS.items() if hint.search(lowered)]
    if not hinted or not _varied(stripped):
        return None
    return next((t for t in hinted if stripped.str.fullmatch(_PII_HINT_VALUES[t]).mean() >= HINT_SHARE), None)


def _varied(values: pd.Series) -> bool:
    """Enough distinct values to tell people apart: never a pair of codes, nor a handful in a long column."""
    needed = max(HINT_MIN_DISTINCT, min(HINT_DISTINCT_CAP, math.ceil(HINT_DISTINCT_SHARE * len(values))))
    return values.nunique() >= needed


def time_of_day_format(values: pd.Series) -> str | None:
    """The strftime format shared by every value of a column of times of day (`10:49:41`, `07:05`), else None.

    Such a column is learned as a datetime on one fixed day and published as text in this format (see
    `as_written`): parsed without it, a time would get today's date, and the release would depend on the
    day it was made.
    """
    text = values.dropna().astype(str).str.strip()
    if text.empty:
        return None
    return next((fmt for fmt, pattern in _TIMES_OF_DAY.items() if text.str.fullmatch(pattern).all()), None)


def _written_clock(column: pd.Series) -> str | None:
    """The time-of-day format a text column was written in, None for anything else."""
    return None if pd.api.types.is_datetime64_any_dtype(column) else time_of_day_format(column)


def as_written(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """`frame` with every datetime column the source wrote as text (`datetime_format`) turned back into that text.

    That way a release reads like its source: `10:49:41`, not a timestamp on 1900-01-01. Every stage
    before publishing works on the datetimes themselves.
    """
    written = {
        spec.name: frame[spec.name].dt.strftime(spec.datetime_format).where(frame[spec.name].notna())
        for spec in schema.of_kind(ColumnKind.DATETIME)
        if spec.datetime_format and spec.name in frame and pd.api.types.is_datetime64_any_dtype(frame[spec.name])
    }
    return frame.assign(**written) if written else frame


def _luhn_share(values: pd.Series) -> float:
    """Share of values whose digits pass the Luhn checksum (vectorised over a digit matrix)."""
    digits = values.str.replace(r"\D", "", regex=True)
    width = int(digits.str.len().max())
    padded = digits.str.zfill(width)
    matrix = (np.frombuffer("".join(padded).encode(), dtype=np.uint8) - ord("0")).reshape(len(padded), width)
    doubled = matrix[:, ::-1].astype(np.int64)
    doubled[:, 1::2] *= 2
    doubled[doubled > 9] -= 9
    return float((doubled.sum(axis=1) % 10 == 0).mean())


def _parses_as_datetime(sample: pd.Series) -> bool:
    if not sample.str.contains(r"\d").all() or not sample.str.contains(r"[-/:T ]").all():
        return False
    if sample.str.fullmatch(r"[+-]?\d+([.,]\d+)?").any():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)
    return bool(parsed.notna().mean() >= DATETIME_SHARE)


def conform_column(series: pd.Series, kind: ColumnKind) -> pd.Series:
    """The column converted to the dtype its kind needs, and ±inf in a number column refused.

    For example, datetime strings are parsed, and times of day put on one fixed day (see
    `time_of_day_format`). ±inf is refused here, before any stage computes with it.
    """
    if kind is ColumnKind.DATETIME and not pd.api.types.is_datetime64_any_dtype(series):
        if (clock := time_of_day_format(series)) is not None:
            return pd.to_datetime(series, format=clock).dt.as_unit("ns")  # on 1900-01-01: the day is no fact
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(series, errors="coerce", format="mixed")
            if parsed.dtype == object:  # mixed UTC offsets: normalise to UTC
                parsed = pd.to_datetime(series, errors="coerce", format="mixed", utc=True)
        bad = parsed.isna() & series.notna()
        if bad.any():
            raise BadInputError(f"column '{series.name}': {series[bad].iloc[0]!r} is not a date/time")
        series = parsed
    if kind is ColumnKind.DATETIME:
        return series.dt.as_unit("ns")  # one resolution for every stage, whatever the source stored
    if kind is ColumnKind.NUMERICAL:
        numeric = series if pd.api.types.is_numeric_dtype(series) else pd.to_numeric(series, errors="coerce")
        bad = numeric.isna() & series.notna()
        if bad.any():
            raise BadInputError(f"column '{series.name}': {series[bad].iloc[0]!r} is not a number")
        if np.isinf(numeric.to_numpy(dtype=float, na_value=np.nan)).any():
            raise BadInputError(f"column '{series.name}' holds infinite values (inf or -inf); make them missing")
        return numeric
    if kind is ColumnKind.BOOLEAN and not pd.api.types.is_bool_dtype(series):
        return _to_boolean(series)
    return series


def _to_boolean(series: pd.Series) -> pd.Series:
    truth = {"true": True, "t": True, "yes": True, "y": True, "1": True, "1.0": True}
    truth |= {"false": False, "f": False, "no": False, "n": False, "0": False, "0.0": False}
    lowered = series.dropna().astype(str).str.strip().str.lower()
    unknown = lowered[~lowered.isin(truth)]
    if not unknown.empty:
        raise BadInputError(f"column '{series.name}': {unknown.iloc[0]!r} is not a boolean")
    out = pd.Series(pd.NA, index=series.index, dtype="boolean", name=series.name)
    out[lowered.index] = lowered.map(truth).astype(bool)
    return out if series.isna().any() else out.astype(bool)


def describe_column(series: pd.Series, kind: ColumnKind) -> ColumnSpec:
    """The facts of an already conformed column that the later stages need."""
    values = series.dropna()
    facts: dict[str, Any] = {}
    if kind is ColumnKind.NUMERICAL and not values.empty:
        numbers = values.to_numpy(dtype=float)
        facts["bounds"] = (float(numbers.min()), float(numbers.max()))
        facts["integer"] = bool(np.all(np.mod(numbers, 1) == 0))
    elif kind is ColumnKind.DATETIME:
        tz = getattr(series.dtype, "tz", None)
        facts["timezone"] = str(tz) if tz is not None else None
        if not values.empty:
            nanos = values.dt.tz_convert("UTC") if tz is not None else values
            stamps = nanos.astype("int64")
            facts["bounds"] = (float(stamps.min()), float(stamps.max()))
    elif kind is ColumnKind.CATEGORICAL:
        facts["categories"] = tuple(sorted(values.unique().tolist(), key=lambda v: (type(v).__name__, v)))
    elif kind is ColumnKind.PII:
        facts["pii_type"] = pii_type_of(str(series.name), values.astype(str).head(SAMPLE_SIZE))
    return ColumnSpec(
        name=str(series.name), kind=kind, dtype=str(series.dtype), nullable=bool(series.isna().any()), **facts
    )


def as_override(name: str, value: Any) -> dict[str, Any]:
    """An override as a dict of spec fields, its kind and `public` checked before any data is read."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, Mapping):
        raise BadInputError(f"schema override for '{name}' must be a kind name or a mapping")
    if "kind" in value:
        kinds = {k.value for k in ColumnKind}
        if value["kind"] not in kinds:
            raise BadInputError(f"column '{name}': kind must be one of {', '.join(sorted(kinds))}")
    if "public" in value:
        public_flag(name, value["public"])
    return dict(value)
