"""The table's data model: what kind each column is and the facts every stage needs about it.

A `Schema` is made once at ingest (inferred, then overridden from YAML), saved in the manifest and
read by every later stage. It is plain data: no pandas objects, so it serialises to JSON/YAML as is.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from generators.tabular.errors import BadInputError


class ColumnKind(enum.StrEnum):
    """How a column is modelled: learned (numerical … datetime) or regenerated (id, pii, text)."""

    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    ID = "id"
    PII = "pii"
    TEXT = "text"

    @property
    def is_learned(self) -> bool:
        """Id, PII and free-text values are never learned: they are regenerated in the same format."""
        return self not in (ColumnKind.ID, ColumnKind.PII, ColumnKind.TEXT)


_DOMAIN_KINDS = (ColumnKind.CATEGORICAL, ColumnKind.NUMERICAL, ColumnKind.DATETIME)  # those with categories or bounds


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its kind plus the facts the encoder, the checks and the report need.

    `dtype` is the pandas dtype of the ingested column (restored on output). `bounds` are the observed
    minimum and maximum of numerical/datetime columns (datetimes as UTC epoch nanoseconds).
    `timezone` is the IANA zone of a tz-aware datetime column, `None` when naive.
    `pii_type` names the detected pattern (email, phone, ...) of a PII column.
    `public`: the data owner declares the column's domain (its `categories`, or its `bounds`) public knowledge,
    like a codebook, so a differentially private fit keeps it as declared instead of paying budget to estimate
    it, and the release may state it.
    """

    name: str
    kind: ColumnKind
    dtype: str
    nullable: bool = False
    categories: tuple[Any, ...] | None = None
    bounds: tuple[float, float] | None = None
    integer: bool = False
    timezone: str | None = None
    datetime_format: str | None = None
    pii_type: str | None = None
    public: bool = False

    def __post_init__(self) -> None:
        if self.public and self.kind not in _DOMAIN_KINDS:
            kinds = ", ".join(k.value for k in _DOMAIN_KINDS)
            raise BadInputError(f"column '{self.name}': public declares a domain, which only {kinds} columns have")
        if self.public and self.domain is None:
            fact = "categories" if self.kind is ColumnKind.CATEGORICAL else "bounds"
            raise BadInputError(f"column '{self.name}': public needs the {fact} it declares")

    @property
    def domain(self) -> tuple[Any, ...] | None:
        """The values the column may take: a categorical's categories, a number's or datetime's bounds, else None."""
        if self.kind is ColumnKind.CATEGORICAL:
            return self.categories
        return self.bounds if self.kind in _DOMAIN_KINDS else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict, leaving out facts that do not apply to this column."""
        out: dict[str, Any] = {"kind": self.kind.value, "dtype": self.dtype}
        for key in ("nullable", "integer", "public"):
            if getattr(self, key):
                out[key] = True
        for key in ("categories", "bounds"):
            value = getattr(self, key)
            if value is not None:
                out[key] = [_plain(v) for v in value]
        for key in ("timezone", "datetime_format", "pii_type"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> ColumnSpec:
        """The spec of column `name` from its `to_dict` form; an unknown key or kind is bad input."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise BadInputError(f"column '{name}': unknown schema key(s) {sorted(unknown)}")
        try:
            kind = ColumnKind(data["kind"])
        except (KeyError, ValueError):
            kinds = ", ".join(k.value for k in ColumnKind)
            raise BadInputError(f"column '{name}': kind must be one of {kinds}, got {data.get('kind')!r}") from None
        categories = data.get("categories")
        if categories is not None and (isinstance(categories, str | Mapping) or not isinstance(categories, Iterable)):
            raise BadInputError(f"column '{name}': categories must be a list of values")
        return cls(
            name=name,
            kind=kind,
            dtype=str(data.get("dtype", "object")),
            nullable=bool(data.get("nullable", False)),
            categories=tuple(categories) if categories is not None else None,
            bounds=_bounds(name, data.get("bounds")),
            integer=bool(data.get("integer", False)),
            timezone=data.get("timezone"),
            datetime_format=data.get("datetime_format"),
            pii_type=data.get("pii_type"),
            public=public_flag(name, data.get("public", False)),
        )


@dataclass(frozen=True)
class Schema:
    """An ordered set of column specs, plus the optional target column used for utility checks."""

    columns: tuple[ColumnSpec, ...]
    target: str | None = None
    _index: dict[str, ColumnSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {c.name: c for c in self.columns}
        if len(index) != len(self.columns):
            raise BadInputError("duplicate column names in the schema")
        if self.target is not None and self.target not in index:
            raise BadInputError(f"target column '{self.target}' is not in the table")
        object.__setattr__(self, "_index", index)

    def __getitem__(self, name: str) -> ColumnSpec:
        return self._index[name]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[ColumnSpec]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def names(self) -> list[str]:
        """The column names, in table order."""
        return [c.name for c in self.columns]

    def of_kind(self, *kinds: ColumnKind) -> list[ColumnSpec]:
        """The columns of any of `kinds`, in table order."""
        return [c for c in self.columns if c.kind in kinds]

    @property
    def learned(self) -> list[ColumnSpec]:
        """Columns a generator models; the rest are regenerated from their format."""
        return [c for c in self.columns if c.kind.is_learned]

    def replace(self, specs: Iterable[ColumnSpec]) -> Schema:
        """A copy with the given specs swapped in by name (order kept)."""
        new = {s.name: s for s in specs}
        return Schema(tuple(new.get(c.name, c) for c in self.columns), target=self.target)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict: each column's spec by name, and the target when there is one."""
        out: dict[str, Any] = {"columns": {c.name: c.to_dict() for c in self.columns}}
        if self.target is not None:
            out["target"] = self.target
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """The schema from its `to_dict` form; `columns` must map each column name to its spec."""
        columns = data.get("columns")
        if not isinstance(columns, Mapping):
            raise BadInputError("schema: 'columns' must be a mapping of column name to spec")
        return cls(tuple(ColumnSpec.from_dict(str(n), s) for n, s in columns.items()), target=data.get("target"))


# Names that mark a label column, and the most classes a last-column label may have, for `infer_target`.
# Names that mark a label column, and the most classes a last-column label may have, for `infer_target`.
_TARGET_NAMES = ("target", "label", "class", "y", "outcome", "income", "churn", "default")
_MAX_INFERRED_CLASSES = 20


def infer_target(schema: Schema) -> str | None:
    """The column a user most likely predicts, when none is configured.

    The utility check scores predictions of it, and a target-aware generator models every column beside it.
    That is the schema's own target, else a learned categorical or boolean column with a conventional label
    name, else the last column if it is one with 2 to 20 classes (the UCI convention). None when nothing
    fits: utility is then skipped.
    """
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


def public_flag(name: str, value: Any) -> bool:
    """Column `name`'s `public` setting; only a YAML boolean counts, so `public: "no"` is no silent yes."""
    if not isinstance(value, bool):
        raise BadInputError(f"column '{name}': public must be true or false, got {value!r}")
    return value


def _bounds(name: str, value: Any) -> tuple[float, float] | None:
    """`[low, high]` as two floats; anything else is bad input, named after column `name`."""
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low, high = math.nan, math.nan
    if not low <= high:  # NaN fails too
        raise BadInputError(f"column '{name}': bounds must be two numbers [low, high], low ≤ high; got {value!r}")
    return low, high


def _plain(value: Any) -> Any:
    """NumPy scalars to Python ones, so the dict dumps to JSON and YAML."""
    return value.item() if hasattr(value, "item") else value
