"""DuckDB: the embedded default. A node is one DuckDB file.

>>> backend = DuckDBBackend()
>>> backend.create_table("sde_opt_out")
>>> backend.load_frame("sde_opt_out", __import__("pandas").DataFrame({"person_id": [7, 9]}))
>>> backend.query("SELECT COUNT(*) AS n FROM sde_opt_out")["n"].tolist()
[2]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

import duckdb
import pandas as pd
import pyarrow as pa

from sde.backends.base import frame_batches
from sde.backends.failures import query_failed
from sde.backends.frames import arrow_to_frame
from sde.backends.tables import arrow_schema, conform
from sde.backends.watchdog import Watchdog
from sde.errors import ConfigurationError, SDEError
from sde.omop.ddl import create_table_sql

#: Settings that close DuckDB's doors to the outside: no files, no network, no
#: extension downloads, then the configuration is locked so SQL cannot reopen them.
HARDENING = (
    "SET enable_external_access = false",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET lock_configuration = true",
)


class DuckDBBackend:
    """A node stored in a DuckDB file (or in memory, for tests)."""

    name: ClassVar[str] = "duckdb"
    dialect: ClassVar[str] = "duckdb"

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        read_only: bool = False,
        harden: bool = False,
        statement_timeout: float | None = None,
    ) -> None:
        """Open ``path``; ``harden`` locks out files, network and extensions.

        ``statement_timeout`` (seconds) interrupts a query that runs longer.
        """
        self.path = str(path)
        if read_only and self.path != ":memory:" and not Path(self.path).is_file():
            raise ConfigurationError("duckdb.no-file", f"there is no DuckDB file at {self.path}")
        self.statement_timeout = statement_timeout
        try:
            # Replacement scans would let SQL read Python variables of the caller.
            self._con = duckdb.connect(
                self.path, read_only=read_only, config={"python_enable_replacements": False}
            )
        except duckdb.Error as err:
            raise ConfigurationError(
                "duckdb.cannot-open", f"the DuckDB file {self.path} cannot be opened"
            ) from err
        if harden:
            for statement in HARDENING:
                self._con.execute(statement).fetchall()
        self._closed = False

    # -- queries ---------------------------------------------------------------

    def query(self, sql: str) -> pd.DataFrame:
        try:
            statements = self._con.extract_statements(sql)
        except duckdb.Error as err:
            raise query_failed(self.name, err) from None
        if len(statements) != 1:
            raise query_failed(self.name, None, "engine.one-statement")
        with Watchdog(self.statement_timeout, self._con.interrupt) as dog:
            try:
                relation = self._con.sql(sql)
                table = relation.to_arrow_table() if relation is not None else pa.table({})
            except duckdb.Error as err:
                rule = "engine.timeout" if dog.fired else "engine.error"
                raise query_failed(self.name, err, rule) from None
        return arrow_to_frame(table)

    def execute(self, sql: str) -> None:
        try:
            # Drain the result: DuckDB refuses other work while a result is unfinished.
            self._con.execute(sql).fetchall()
        except duckdb.Error as err:
            raise query_failed(self.name, err) from None

    def table_names(self) -> set[str]:
        rows = self._con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = current_schema()"
        ).fetchall()
        return {r[0] for r in rows}

    # -- loading ---------------------------------------------------------------

    def create_table(self, table: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {table}")
        self.execute(create_table_sql(table, "duckdb"))

    def load_arrow(self, table: str, batches: Iterable[pa.RecordBatch]) -> int:
        written = 0
        refused: list[SDEError] = []

        def conformed() -> Iterator[pa.RecordBatch]:
            nonlocal written
            for batch in batches:
                try:
                    yield conform(batch, table)
                except SDEError as err:  # DuckDB would wrap it in its own error
                    refused.append(err)
                    raise
                written += batch.num_rows

        reader = pa.RecordBatchReader.from_batches(arrow_schema(table), conformed())
        self._con.register("sde_load_source", reader)
        try:
            self.execute(f"INSERT INTO {table} SELECT * FROM sde_load_source")
        except SDEError:
            if refused:
                raise refused[0] from None
            raise
        finally:
            self._con.unregister("sde_load_source")
        return written

    def load_frame(self, table: str, frame: pd.DataFrame) -> None:
        self.load_arrow(table, frame_batches(frame))

    def export_batches(self, table: str, rows_per_batch: int = 100_000) -> pa.RecordBatchReader:
        """The rows of ``table`` as Arrow batches with its CDM columns (missing ones null)."""
        present = {
            r[0]
            for r in self._con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ?",
                [table],
            ).fetchall()
        }
        schema = arrow_schema(table)
        select = ", ".join(
            f'"{f.name}"' if f.name in present else f'NULL AS "{f.name}"' for f in schema
        )
        reader = self._con.sql(f"SELECT {select} FROM {table}").to_arrow_reader(rows_per_batch)
        return pa.RecordBatchReader.from_batches(schema, (conform(b, table) for b in reader))

    def row_count(self, table: str) -> int:
        """Rows in ``table``."""
        rows = self._con.execute(f"SELECT COUNT(*) FROM {table}").fetchall()
        return int(rows[0][0])

    def close(self) -> None:
        if not self._closed:
            self._con.close()
            self._closed = True
