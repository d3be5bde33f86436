"""PostgreSQL: a real server, one schema per node (psycopg 3).

A backend is one connection in autocommit mode whose ``search_path`` is the
node's schema, in the UTC time zone. Options:

- ``read_only``: every transaction is read-only (``default_transaction_read_only``).
  Pair it with a role that only has ``SELECT`` for a restricted connection.
- ``statement_timeout`` (seconds): the server cancels a statement that runs longer.

Queries use the extended protocol (binary results), which also means the
server refuses more than one statement in a query. Each query runs in its own
transaction that is always rolled back (a query never changes anything, even
if something with a side effect slipped through), with ``SET LOCAL
statement_timeout`` when ``query(..., timeout_s=)`` asks for one.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import errors as pgerrors
from psycopg import sql as pgsql
from psycopg.abc import Query
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sde.backends.base import frame_batches
from sde.backends.failures import query_failed
from sde.backends.frames import Kind, rows_to_frame
from sde.backends.pg_local import INSTALL_HINT
from sde.backends.tables import column_names, conform
from sde.errors import BackendUnavailable, ConfigurationError
from sde.omop.ddl import create_table_sql

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_KIND_OF_TYPE: dict[str, Kind] = {
    **dict.fromkeys(("int2", "int4", "int8", "oid"), "integer"),
    **dict.fromkeys(("float4", "float8"), "float"),
    **dict.fromkeys(("date", "timestamp", "timestamptz"), "date"),
    **dict.fromkeys(("text", "varchar", "bpchar", "name", "char", "unknown"), "text"),
    "bool": "boolean",
}


def describe_target(url: str) -> str:
    """``host:port/dbname`` of a libpq URL or DSN, without user or password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigurationError(
            "postgresql.bad-url", "the PostgreSQL URL is not a valid libpq URL or DSN"
        ) from None
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    dbname = parts.get("dbname") or parts.get("user")
    return f"{host}:{port}/{dbname}" if dbname else f"{host}:{port}"


def _numeric_kind(scale: int | None, values: list[Any]) -> Kind:
    """``numeric(p, 0)`` is integer, ``numeric(p, s>0)`` float; unconstrained numeric
    (``sum(bigint)``, ``avg``, ``100.0 * a / b``) is integer only if every value has
    scale 0, as a ``sum`` of integers has and an ``avg`` or a division never does.
    The other engines type those results as integers and doubles respectively.
    """
    if scale is not None:
        return "integer" if scale == 0 else "float"
    present = [v for v in values if v is not None]
    if present and all(_integral(v.as_tuple().exponent) for v in present):
        return "integer"
    return "float"


def _integral(exponent: int | str) -> bool:
    return isinstance(exponent, int) and exponent >= 0


def _own(sql: Query) -> Any:
    """Typed as psycopg's ``LiteralString`` query: the SQL comes from the workbench (the
    proxy's rewritten tree, the extract plan, the DDL), never from a caller unchecked."""
    return sql


class PostgresBackend:
    """A node stored in one schema of a PostgreSQL database."""

    name: ClassVar[str] = "postgresql"
    dialect: ClassVar[str] = "postgres"

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        read_only: bool = False,
        statement_timeout: float | None = None,
        connect_timeout: int = 5,
    ) -> None:
        if not _IDENTIFIER.fullmatch(schema):
            raise ConfigurationError(
                "postgresql.bad-schema",
                f"schema name {schema!r} must be lower-case letters, digits and _",
            )
        self.schema = schema
        self.target = describe_target(url)
        self._url = url
        options = [f"-c search_path={schema}", "-c TimeZone=UTC"]
        if statement_timeout:
            options.append(f"-c statement_timeout={max(1, int(statement_timeout * 1000))}")
        if read_only:
            options.append("-c default_transaction_read_only=on")
        try:
            self._con = psycopg.connect(
                url, autocommit=True, connect_timeout=connect_timeout, options=" ".join(options)
            )
        except psycopg.OperationalError:
            raise BackendUnavailable(
                "postgresql.unreachable",
                f"no PostgreSQL server accepted the connection to {self.target}: "
                f"check the URL and that the server runs ({INSTALL_HINT})",
            ) from None
        self._lock = threading.RLock()

    def as_role(
        self,
        user: str,
        password: str | None = None,
        *,
        schema: str | None = None,
        read_only: bool = True,
        statement_timeout: float | None = None,
    ) -> PostgresBackend:
        """A new connection to the same database as another role (read-only by default).

        The proxy creates a project role and its extract through an admin backend,
        then serves the project through ``admin.as_role(role, password)``.
        """
        extra = {"user": user, **({"password": password} if password is not None else {})}
        return PostgresBackend(
            make_conninfo(self._url, **extra),
            schema=schema or self.schema,
            read_only=read_only,
            statement_timeout=statement_timeout,
        )

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
            with (
                self._lock,
                self._con.transaction(force_rollback=True),
                self._con.cursor(binary=True) as cur,
            ):
                if timeout_s is not None:
                    cur.execute(
                        pgsql.SQL("SET LOCAL statement_timeout = {}").format(
                            max(1, int(timeout_s * 1000))
                        )
                    )
                cur.execute(_own(sql), params)
                if cur.description is None:
                    return pd.DataFrame()
                names = [c.name for c in cur.description]
                rows = cur.fetchall() if max_rows is None else cur.fetchmany(max_rows)
                kinds = [self._kind(c, rows, i) for i, c in enumerate(cur.description)]
        except pgerrors.QueryCanceled as err:
            raise query_failed(self.name, err, "engine.timeout") from None
        except psycopg.Error as err:
            multiple = "multiple commands" in str(err)
            raise query_failed(
                self.name, err, "engine.one-statement" if multiple else "engine.error"
            ) from None
        return rows_to_frame(names, kinds, rows)

    def transaction(self) -> AbstractContextManager[psycopg.Transaction]:
        """A transaction around several :meth:`execute` calls (committed at the end of the
        ``with`` block, rolled back on an error); the proxy builds an extract in one."""
        return self._con.transaction()

    def _kind(self, column: Any, rows: list[tuple[Any, ...]], index: int) -> Kind:
        info = self._con.adapters.types.get(column.type_code)
        type_name = info.name if info is not None else ""
        if type_name == "numeric":
            return _numeric_kind(column.scale, [row[index] for row in rows])
        return _KIND_OF_TYPE.get(type_name, "other")

    def execute(self, sql: Query, params: Sequence[Any] | None = None) -> None:
        try:
            with self._lock:
                self._con.execute(_own(sql), params)
        except pgerrors.QueryCanceled as err:
            raise query_failed(self.name, err, "engine.timeout") from None
        except psycopg.Error as err:
            raise query_failed(self.name, err) from None

    def table_names(self) -> set[str]:
        rows = self._con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [self.schema],
        ).fetchall()
        return {r[0] for r in rows}

    # -- loading ---------------------------------------------------------------

    def create_table(self, table: str) -> None:
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        self.execute(f"DROP TABLE IF EXISTS {self.schema}.{table}")
        self.execute(create_table_sql(table, "postgres"))

    def load_arrow(self, table: str, batches: Iterable[pa.RecordBatch]) -> int:
        """COPY the batches in as CSV (Arrow writes it; one transaction per call)."""
        columns = ", ".join(column_names(table))
        options = pacsv.WriteOptions(include_header=False, batch_size=65_536)
        written = 0
        try:
            with (
                self._con.transaction(),
                self._con.cursor() as cur,
                cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy,
            ):
                for batch in batches:
                    buffer = io.BytesIO()
                    pacsv.write_csv(conform(batch, table), buffer, write_options=options)
                    copy.write(buffer.getbuffer())
                    written += batch.num_rows
        except psycopg.Error as err:
            raise query_failed(self.name, err) from None
        return written

    def load_frame(self, table: str, frame: pd.DataFrame) -> None:
        self.load_arrow(table, frame_batches(frame))

    def analyze(self, tables: Iterable[str]) -> None:
        """Refresh the planner's statistics of ``tables`` after a load."""
        for table in tables:
            self.execute(f"ANALYZE {self.schema}.{table}")

    def close(self) -> None:
        self._con.close()
