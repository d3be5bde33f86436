"""The protocol every engine implements: DuckDB, PostgreSQL, Spark.

A backend is a connection to one node's OMOP store on one engine. It runs SQL
already written in its own dialect (the proxy transpiles with sqlglot before
calling it) and returns pandas DataFrames with the same dtypes on every engine
(integers as nullable ``Int64``, doubles as ``float64``, dates and timestamps as
``datetime64[ns]``, text as ``object``; see :mod:`sde.backends.frames`), so that
answers can be compared.

Every engine error surfaces as :class:`~sde.errors.QueryFailed` with a generic
message; the engine's own text stays on its ``engine_message`` attribute for the
audit log (:mod:`sde.backends.failures`). ``query`` runs exactly one statement;
``timeout_s`` cancels it after that many seconds (overriding the backend's
``statement_timeout``) and ``max_rows`` stops reading after that many rows. The
project extracts of the proxy (:mod:`sde.proxy.barrier`) run every researcher
query through this method of their engine's backend.

Beyond querying, a backend can receive a node's data: ``create_table`` makes an
empty CDM or custodian table from :func:`sde.omop.ddl.create_table_sql` (or, on
Spark, its parquet folder), and ``load_arrow`` appends Arrow record batches with
the table's CDM columns. :func:`sde.backends.load.load_node` uses the two.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa


@runtime_checkable
class Backend(Protocol):
    """One node's store on one engine."""

    #: Engine name used in settings and on the command line: duckdb | postgresql | spark.
    name: ClassVar[str]
    #: sqlglot dialect the engine speaks: duckdb | postgres | spark.
    dialect: ClassVar[str]

    def query(
        self, sql: str, *, timeout_s: float | None = None, max_rows: int | None = None
    ) -> pd.DataFrame:
        """Run one SELECT in the engine's dialect; the result as a normalised DataFrame."""
        ...

    def execute(self, sql: str) -> None:
        """Run one statement that returns nothing (DDL, administration)."""
        ...

    def table_names(self) -> set[str]:
        """Tables of the node's OMOP schema."""
        ...

    def create_table(self, table: str) -> None:
        """Create the CDM or custodian ``table``, empty, replacing any table of that name."""
        ...

    def load_arrow(self, table: str, batches: Iterable[pa.RecordBatch]) -> int:
        """Append record batches (columns named as the CDM's) to ``table``; rows written."""
        ...

    def load_frame(self, table: str, frame: pd.DataFrame) -> None:
        """Append ``frame`` to ``table`` (which must exist with the CDM's columns)."""
        ...

    def close(self) -> None:
        """Release the connection; safe to call twice."""
        ...


def frame_batches(frame: pd.DataFrame) -> list[pa.RecordBatch]:
    """A DataFrame as Arrow record batches, for ``load_frame`` implementations."""
    return pa.Table.from_pandas(frame, preserve_index=False).to_batches()
