"""PostgreSQL barrier: a project schema of materialised extract tables, a read-only role.

Build (as the node's administrator, in one transaction): a schema
``sde_x_<project>_<hash>`` with one table per allowlisted table, created AS
SELECT of the scoped, pseudonymised rows (:mod:`sde.proxy.barrier.plan`); a
LOGIN role ``sde_r_<project>_<hash>`` that may only USE that schema and SELECT
its tables, whose sessions are read-only, time-limited and see only that
schema on their search path. The role gets a fresh random password at every
connect, kept in memory only.

Run: researcher queries go over a connection *logged in as that role* (not a
``SET ROLE`` from the administrator, which ``set_config('role', ...)`` could
undo), inside a READ ONLY transaction with ``statement_timeout``, rolled back
afterwards. The node's own schema is not readable by the role at all.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import Any, LiteralString

import pandas as pd
import psycopg
from psycopg import errors as pgerrors
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sde.errors import ConfigurationError
from sde.proxy.barrier import EngineError
from sde.proxy.barrier.plan import ExtractPlan
from sde.pseudonym import pads

BUILD_VERSION = "2"  # 2: rows ordered by a keyed pseudonym


def _q(text: str) -> LiteralString:
    """Our own SQL text (built from the plan, never from the researcher unchecked)."""
    return text


class PostgresExtract:
    """A project extract in one PostgreSQL database (one node)."""

    dialect = "postgres"

    def __init__(
        self,
        dsn: str,
        node: str,
        source_schema: str,
        plan: ExtractPlan,
        key: bytes,
        *,
        refresh: bool = False,
    ) -> None:
        self.nodes: tuple[str, ...] = (node,)
        info = conninfo_to_dict(dsn)
        h = hashlib.sha256()
        for part in (
            BUILD_VERSION,
            plan.scope.version,
            node,
            source_schema,
            str(info.get("dbname", "")),
            hashlib.sha256(b"fingerprint" + key).hexdigest(),
        ):
            h.update(part.encode() + b"\0")
        slug = plan.scope.project.replace("-", "_")[:30]
        self.schema = f"sde_x_{slug}_{h.hexdigest()[:12]}"
        self.role = f"sde_r_{slug}_{h.hexdigest()[:12]}"
        password = secrets.token_urlsafe(24)
        with psycopg.connect(dsn, autocommit=False) as admin:
            _build(admin, self, source_schema, plan, key, node, refresh=refresh)
            _grant(admin, self, password)
            admin.commit()
        self._lock = threading.Lock()
        self._con = psycopg.connect(
            make_conninfo(dsn, user=self.role, password=password),
            autocommit=False,
            options=f"-c search_path={self.schema} -c default_transaction_read_only=on "
            "-c TimeZone=UTC",
        )

    def run(self, sql: str, *, timeout_s: float, max_rows: int) -> pd.DataFrame:
        with self._lock:
            try:
                with self._con.cursor() as cur:
                    cur.execute(
                        _q(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
                    )
                    cur.execute(_q(sql))
                    names = [c.name for c in cur.description or []]
                    rows = cur.fetchmany(max_rows)
            except pgerrors.QueryCanceled as err:
                raise EngineError(str(err), timeout=True) from None
            except psycopg.Error as err:
                raise EngineError(str(err)) from None
            finally:
                self._con.rollback()
        return pd.DataFrame.from_records(rows, columns=names)

    def close(self) -> None:
        self._con.close()


def _exists(con: psycopg.Connection[Any], schema: str, marker: str) -> bool:
    row = con.execute(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
        [schema],
    ).fetchone()
    return row is not None and row[0] == marker


def _build(
    con: psycopg.Connection[Any],
    ex: PostgresExtract,
    source_schema: str,
    plan: ExtractPlan,
    key: bytes,
    node: str,
    *,
    refresh: bool,
) -> None:
    schema = pgsql.Identifier(ex.schema)
    marker = f"sde extract {ex.schema} complete"
    con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [ex.schema])
    if not refresh and _exists(con, ex.schema, marker):
        return
    present = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [source_schema],
        ).fetchall()
    }
    missing = [t for t in plan.required_source_tables() if t not in present]
    if missing:
        raise ConfigurationError(
            "nodes.incomplete",
            f"node {node} has no table {missing[0]}; the project cannot be scoped safely",
            node=node,
        )
    con.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
    con.execute(pgsql.SQL("CREATE SCHEMA {}").format(schema))
    node_pads = pads(key, node, plan.namespaces)
    cols = ", ".join(f"{ns}_i bytea, {ns}_o bytea" for ns in node_pads)
    con.execute(_q(f"CREATE TEMP TABLE keys ({cols}) ON COMMIT DROP"))
    holders = ", ".join(["%s"] * (2 * len(node_pads)))
    values = [b for pad in node_pads.values() for b in (pad.inner, pad.outer)]
    con.execute(_q(f"INSERT INTO keys VALUES ({holders})"), values)

    def src(table: str) -> str:
        return f'"{source_schema}"."{table}"'

    con.execute(_q(f"CREATE TEMP TABLE persons ON COMMIT DROP AS {plan.persons_sql(src)}"))
    for table in plan.tables:
        select = plan.select_sql(table, src, "postgres", keys="keys", persons="persons")
        con.execute(_q(f'CREATE TABLE "{ex.schema}"."{table.name}" AS {select}'))
        con.execute(_q(f'ANALYZE "{ex.schema}"."{table.name}"'))
    for table in plan.person_tables:
        own = f"{table.name}_id" if table.name != "person" else "person_id"
        if own in table.ids:
            row = con.execute(
                _q(f'SELECT COUNT({own}) - COUNT(DISTINCT {own}) FROM "{ex.schema}"."{table.name}"')
            ).fetchone()
            if row and row[0]:
                raise ConfigurationError(
                    "pseudonym.collision",
                    f"two {table.name} rows received the same pseudonym; rotate the project key",
                )
    con.execute(pgsql.SQL("COMMENT ON SCHEMA {} IS {}").format(schema, pgsql.Literal(marker)))


def _grant(con: psycopg.Connection[Any], ex: PostgresExtract, password: str) -> None:
    role, schema = pgsql.Identifier(ex.role), pgsql.Identifier(ex.schema)
    if con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [ex.role]).fetchone() is None:
        con.execute(pgsql.SQL("CREATE ROLE {} LOGIN").format(role))
    con.execute(
        pgsql.SQL(
            "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
            "NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 8 PASSWORD {}"
        ).format(role, pgsql.Literal(password))
    )
    for setting, value in (
        ("default_transaction_read_only", "on"),
        ("search_path", ex.schema),
        ("statement_timeout", "60000"),
    ):
        con.execute(
            pgsql.SQL("ALTER ROLE {} SET {} = {}").format(
                role, pgsql.Identifier(setting), pgsql.Literal(value)
            )
        )
    con.execute(pgsql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
    con.execute(pgsql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, role))
