"""DuckDB: the embedded default. A node is one DuckDB file.

>>> backend = DuckDBBackend()
>>> backend.create_table("sde_opt_out")
>>> backend.load_frame("sde_opt_out", __import__("pandas").DataFrame({"person_id": [7, 9]}))
>>> backend.query("SELECT COUNT(*) AS n FROM sde_opt_out")["n"].tolist()
[2]
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

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
#: (Python replacement scans are off on every connection.)
HARDENED: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}
HARDENING = tuple(f"SET {name} = {str(value).lower()}" for name, value in HARDENED.items())


def _read(relation: duckdb.DuckDBPyRelation, max_rows: int | None) -> pa.Table:
    """The relation's rows as Arrow, reading no further than ``max_rows``.

    (A reader stopped early rather than ``relation.limit()``, which binds the query
    again: ~0.4 ms on every small query.)
    """
    if max_rows is None:
        return relation.to_arrow_table()
    reader = relation.to_arrow_reader(min(max(max_rows, 1), 1_000_000))
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows >= max_rows:
            break
    reader.close()
    return pa.Table.from_batches(batches, schema=reader.schema).slice(0, max_rows)


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
        """Open ``path``; ``harden`` locks out files, network and extensions from the start
        (or call :meth:`harden` after setting up, as the proxy does after building).

        ``statement_timeout`` (seconds) interrupts a query that runs longer.
        """
        self.path = str(path)
        if read_only and self.path != ":memory:" and not Path(self.path).is_file():
            raise ConfigurationError("duckdb.no-file", f"there is no DuckDB file at {self.path}")
        self.statement_timeout = statement_timeout
        # Replacement scans would let SQL read Python variables of the caller.
        config: dict[str, Any] = {"python_enable_replacements": False}
        if harden:
            config |= HARDENED
        try:
            self._con = duckdb.connect(self.path, read_only=read_only, config=config)
        except duckdb.Error as err:
            raise ConfigurationError(
                "duckdb.cannot-open", f"the DuckDB file {self.path} cannot be opened"
            ) from err
        # One statement at a time: a DuckDB connection is not for concurrent use.
        self._lock = threading.RLock()
        self._closed = False

    def harden(self) -> None:
        """Close the doors now (:data:`HARDENING`); the locked configuration cannot reopen."""
        for statement in HARDENING:
            self.execute(statement)

    # -- queries ---------------------------------------------------------------

    def query(
        self,
        sql: str,
        params: Sequence[Any] | None = None,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
    ) -> pd.DataFrame:
        try:
            statements = self._con.extract_statements(sql)
        except duckdb.Error as err:
            raise query_failed(self.name, err) from None
        if len(statements) != 1:
            raise query_failed(self.name, None, "engine.one-statement")
        seconds = self.statement_timeout if timeout_s is None else timeout_s
        with self._lock, Watchdog(seconds, self._con.interrupt) as dog:
            try:
                relation = self._con.sql(sql, params=params)
                table = _read(relation, max_rows) if relation is not None else pa.table({})
            except duckdb.Error as err:
                rule = "engine.timeout" if dog.fired else "engine.error"
                raise query_failed(self.name, err, rule) from None
        return arrow_to_frame(table)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self._lock:
            try:
                # Drain the result: DuckDB refuses other work while a result is unfinished.
                self._con.execute(sql, params).fetchall()
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
