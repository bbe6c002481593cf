"""Where a private table comes from: a source read into a frame, and `load_table`, which infers its schema.

Each read comes with the facts of how (`SourceInfo`). CSV and Parquet files or folders of them
(`flows.sources.files`), and a SQL table or query (`flows.sources.sql`, anything that is not a path), all behind
`read_source`.
"""

from flows.sources.files import load_table, read_source
from flows.sources.sql import SqlSpec
from flows.sources.table import SourceInfo, Table

__all__ = ["SourceInfo", "SqlSpec", "Table", "load_table", "read_source"]
