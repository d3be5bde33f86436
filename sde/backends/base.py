"""The protocol every engine implements: DuckDB, PostgreSQL, Spark.

A backend is a connection to one node's OMOP store on one engine. It runs SQL
already written in its own dialect (the proxy transpiles with sqlglot before
calling it) and returns pandas DataFrames with the same dtypes on every engine
(integers as nullable ``Int64``, doubles as ``float64``, dates as
``datetime64[ns]``, text as ``object``), so that answers can be compared.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class Backend(Protocol):
    """One node's store on one engine."""

    #: Engine name used in settings and on the command line: duckdb | postgresql | spark.
    name: ClassVar[str]
    #: sqlglot dialect the engine speaks: duckdb | postgres | spark.
    dialect: ClassVar[str]

    def query(self, sql: str) -> pd.DataFrame:
        """Run one SELECT in the engine's dialect; the result as a normalised DataFrame."""
        ...

    def execute(self, sql: str) -> None:
        """Run one statement that returns nothing (DDL, administration)."""
        ...

    def table_names(self) -> set[str]:
        """Tables of the node's OMOP schema."""
        ...

    def load_frame(self, table: str, frame: pd.DataFrame) -> None:
        """Append ``frame`` to ``table`` (which must exist with the CDM's columns)."""
        ...

    def close(self) -> None:
        """Release the connection; safe to call twice."""
        ...
