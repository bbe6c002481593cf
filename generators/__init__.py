"""synthgate's generators: the shared Schema types and the registry of models.

Only light things are exported here; a model (and torch) is imported when the registry is asked for it.
"""

from generators.registry import GENERATORS, create, describe, get_generator_class, load
from generators.tabular.errors import BadInputError
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema

__all__ = [
    "GENERATORS",
    "BadInputError",
    "ColumnKind",
    "ColumnSpec",
    "Schema",
    "create",
    "describe",
    "get_generator_class",
    "load",
]
