"""Where a private table comes from: a source read into a frame, and `load_table`, which infers its schema.

Each read comes with the facts of how (`SourceInfo`). CSV and Parquet files or folders of them
(`flows.sources.files`); a SQL table or query joins them here, as one more reader behind `read_source`.
"""

from flows.sources.files import load_table, read_source
from flows.sources.table import SourceInfo, Table

__all__ = ["SourceInfo", "Table", "load_table", "read_source"]
