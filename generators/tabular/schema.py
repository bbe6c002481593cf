"""The table's data model: what kind each column is and the facts every stage needs about it.

A `Schema` is made once at ingest (inferred, then overridden from YAML), saved in the manifest and
read by every later stage. It is plain data: no pandas objects, so it serialises to JSON/YAML as is.
"""

from __future__ import annotations

import dataclasses
import enum
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


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its kind plus the facts the encoder, the checks and the report need.

    `dtype` is the pandas dtype of the ingested column (restored on output). `bounds` are the observed
    minimum and maximum of numerical/datetime columns (datetimes as UTC epoch nanoseconds).
    `timezone` is the IANA zone of a tz-aware datetime column, `None` when naive.
    `pii_type` names the detected pattern (email, phone, ...) of a PII column.
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict, leaving out facts that do not apply to this column."""
        out: dict[str, Any] = {"kind": self.kind.value, "dtype": self.dtype}
        for key in ("nullable", "integer"):
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
        bounds = data.get("bounds")
        return cls(
            name=name,
            kind=kind,
            dtype=str(data.get("dtype", "object")),
            nullable=bool(data.get("nullable", False)),
            categories=tuple(categories) if categories is not None else None,
            bounds=(float(bounds[0]), float(bounds[1])) if bounds is not None else None,
            integer=bool(data.get("integer", False)),
            timezone=data.get("timezone"),
            datetime_format=data.get("datetime_format"),
            pii_type=data.get("pii_type"),
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


def _plain(value: Any) -> Any:
    """NumPy scalars to Python ones, so the dict dumps to JSON and YAML."""
    return value.item() if hasattr(value, "item") else value
