"""PostgreSQL barrier: a project schema of materialised extract tables, a read-only role.

Build (on the node administrator's :class:`~sde.backends.postgresql.PostgresBackend`,
in one transaction): a schema
``sde_x_<project>_<hash>`` with one table per allowlisted table, created AS
SELECT of the scoped, pseudonymised rows (:mod:`sde.proxy.barrier.plan`); a
LOGIN role ``sde_r_<project>_<hash>`` that may only USE that schema and SELECT
its tables, whose sessions are read-only, time-limited and see only that
schema on their search path. The role gets a fresh random password at every
connect, kept in memory only.

Run: researcher queries go over a backend *logged in as that role*
(``admin.as_role``; not a ``SET ROLE`` from the administrator, which
``set_config('role', ...)`` could undo), inside a READ ONLY transaction with
``SET LOCAL statement_timeout``, rolled back afterwards. The node's own schema is
not readable by the role at all.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict

from sde.backends.postgresql import PostgresBackend
from sde.errors import BackendUnavailable
from sde.proxy.barrier import BackendExtract
from sde.proxy.barrier.checks import check_pseudonyms, require_source_tables
from sde.proxy.barrier.plan import ExtractPlan
from sde.pseudonym import pads

# 2: rows ordered by a keyed pseudonym; 3: provider/care_site ids keyed; 4: location ids
BUILD_VERSION = "4"

#: Connections one extract opens as its project role at most (the role's limit is 8).
POOL_SIZE = 4


class PostgresExtract(BackendExtract):
    """A project extract in one PostgreSQL database (one node)."""

    backend: PostgresBackend

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
        admin = PostgresBackend(dsn, schema=source_schema)
        try:
            with admin.transaction():
                _build(admin, self.schema, plan, key, node, refresh=refresh)
                _grant(admin, self.role, self.schema, password)
            role = admin.as_role(self.role, password, schema=self.schema, read_only=True)
        finally:
            admin.close()
        super().__init__(role, (node,))
        self._pool = _RolePool(role, self.role, password, self.schema)

    def serving(self) -> AbstractContextManager[PostgresBackend]:
        """A connection as the project role for each query running now (up to
        :data:`POOL_SIZE`; more wait for one)."""
        return self._pool.take()

    def close(self) -> None:
        self._pool.close()


class _RolePool:
    """Connections logged in as the project role: the first (made by the build) and, while
    queries overlap, up to :data:`POOL_SIZE` in all. A login that fails (the role's
    connection limit, or a newer build of the same extract set a new password) stops the
    pool growing; queries then wait for a connection of the pool."""

    def __init__(self, first: PostgresBackend, role: str, password: str, schema: str) -> None:
        self._first = first
        self._login = (role, password, schema)  # the password: in memory only
        self._idle = [first]
        self._open = 1
        self._size = POOL_SIZE
        self._closed = False
        self._cond = threading.Condition()

    @contextmanager
    def take(self) -> Iterator[PostgresBackend]:
        backend = self._checkout()
        try:
            yield backend
        finally:
            with self._cond:
                keep = not self._closed
                if keep:
                    self._idle.append(backend)
                    self._cond.notify()
            if not keep:
                backend.close()

    def _checkout(self) -> PostgresBackend:
        while True:
            with self._cond:
                while not self._idle and self._open >= self._size:
                    self._cond.wait()
                if self._idle:
                    return self._idle.pop()
                self._open += 1
            role, password, schema = self._login
            try:
                return self._first.as_role(role, password, schema=schema, read_only=True)
            except BackendUnavailable:
                with self._cond:
                    self._open -= 1
                    self._size = self._open

    def close(self) -> None:
        """Close the idle connections now, the busy ones when their query ends."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
        for backend in idle:
            backend.close()


def _exists(admin: PostgresBackend, schema: str, marker: str) -> bool:
    found = admin.query(
        "SELECT obj_description(oid, 'pg_namespace') AS d FROM pg_namespace WHERE nspname = %s",
        [schema],
    )
    return len(found) == 1 and found["d"].iloc[0] == marker


def _build(
    admin: PostgresBackend,
    schema: str,
    plan: ExtractPlan,
    key: bytes,
    node: str,
    *,
    refresh: bool,
) -> None:
    ident = pgsql.Identifier(schema)
    marker = f"sde extract {schema} complete"
    admin.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [schema])
    if not refresh and _exists(admin, schema, marker):
        return
    require_source_tables(plan, node, admin.table_names())
    admin.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))
    admin.execute(pgsql.SQL("CREATE SCHEMA {}").format(ident))
    _load_keys(admin, plan, key, node)

    def src(table: str) -> str:
        return f'"{admin.schema}"."{table}"'

    admin.execute(f"CREATE TEMP TABLE persons ON COMMIT DROP AS {plan.persons_sql(src)}")
    for table in plan.tables:
        select = plan.select_sql(table, src, "postgres", keys="keys", persons="persons")
        admin.execute(f'CREATE TABLE "{schema}"."{table.name}" AS {select}')
        admin.execute(f'ANALYZE "{schema}"."{table.name}"')
    check_pseudonyms(plan, admin, lambda name: f'"{schema}"."{name}"')
    admin.execute(pgsql.SQL("COMMENT ON SCHEMA {} IS {}").format(ident, pgsql.Literal(marker)))


def _load_keys(admin: PostgresBackend, plan: ExtractPlan, key: bytes, node: str) -> None:
    node_pads = pads(key, node, plan.namespaces)
    cols = ", ".join(f"{ns}_i bytea, {ns}_o bytea" for ns in node_pads)
    admin.execute(f"CREATE TEMP TABLE keys ({cols}) ON COMMIT DROP")
    holders = ", ".join(["%s"] * (2 * len(node_pads)))
    values = [b for pad in node_pads.values() for b in (pad.inner, pad.outer)]
    admin.execute(f"INSERT INTO keys VALUES ({holders})", values)


def _grant(admin: PostgresBackend, role_name: str, schema_name: str, password: str) -> None:
    role, schema = pgsql.Identifier(role_name), pgsql.Identifier(schema_name)
    if admin.query("SELECT 1 AS one FROM pg_roles WHERE rolname = %s", [role_name]).empty:
        admin.execute(pgsql.SQL("CREATE ROLE {} LOGIN").format(role))
    admin.execute(
        pgsql.SQL(
            "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
            "NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 8 PASSWORD {}"
        ).format(role, pgsql.Literal(password))
    )
    for setting, value in (
        ("default_transaction_read_only", "on"),
        ("search_path", schema_name),
        ("statement_timeout", "60000"),
    ):
        admin.execute(
            pgsql.SQL("ALTER ROLE {} SET {} = {}").format(
                role, pgsql.Identifier(setting), pgsql.Literal(value)
            )
        )
    admin.execute(pgsql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
    admin.execute(pgsql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, role))
