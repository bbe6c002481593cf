"""Where a private table comes from: a source read into a frame, and `load_table`, which infers its schema.

Each read comes with the facts of how (`SourceInfo`). CSV and Parquet files or folders of them
(`flows.sources.files`), and a SQL table or query (`flows.sources.sql`, anything that is not a path), all behind
`read_source`; the same, read in parts and chunks when the table does not fit in memory, behind `plan_source`
(`flows.sources.stream`).
"""

from flows.sources.files import load_table, read_source
from flows.sources.sql import SqlSpec
from flows.sources.stream import PartFacts, SourcePart, SourcePlan, plan_source
from flows.sources.table import SourceInfo, Table

__all__ = ["PartFacts", "SourceInfo", "SourcePart", "SourcePlan", "SqlSpec", "Table", "load_table", "plan_source",
           "read_source"]
