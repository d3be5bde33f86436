"""DuckDB barrier: the project extract as its own hardened DuckDB database.

Build: a fresh database (in memory, or a cache file named by the scope, the key
and the node files) on a :class:`~sde.backends.duckdb.DuckDBBackend` with extension
autoloading off, each node file ATTACHed READ_ONLY in turn, one table per
allowlisted table created AS SELECT of the scoped, pseudonymised rows
(:mod:`sde.proxy.barrier.plan`), node files DETACHed. Persons of several nodes
go into the same tables (pooled: aggregates over the folder are exact), shared
tables such as the vocabulary come from the first node.

Run: the database has no other data. The backend is hardened (external access,
extension autoloading and Python replacement scans off, configuration locked), so a
query that slipped past the rules still could not read a file or the node; its
watchdog interrupts statements that run past the timeout.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb

from sde.backends.duckdb import DuckDBBackend
from sde.errors import ConfigurationError
from sde.proxy.barrier import BackendExtract
from sde.proxy.barrier.checks import check_pseudonyms, require_source_tables
from sde.proxy.barrier.plan import ORDER_COLUMN, ExtractPlan
from sde.pseudonym import pads

#: Bump when the extract's layout or build SQL changes (invalidates caches).
# 2: rows ordered by a keyed pseudonym; 3: provider/care_site ids keyed; 4: location ids
BUILD_VERSION = "4"

#: The build attaches node files, so external access stays on until it is done.
_BUILD_SETTINGS = (
    "SET autoload_known_extensions = false",
    "SET autoinstall_known_extensions = false",
)


def _quote_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class DuckDBExtract(BackendExtract):
    """A project extract over one or more DuckDB node files."""

    backend: DuckDBBackend

    def __init__(
        self,
        nodes: Mapping[str, Path],
        plan: ExtractPlan,
        key: bytes,
        *,
        cache_dir: Path | None = None,
    ) -> None:
        if not nodes:
            raise ConfigurationError("nodes.none", "no node of the project's scope is present")
        if cache_dir is None:
            backend = _building(":memory:")
            try:
                _build(backend, nodes, plan, key)
                backend.harden()
            except BaseException:
                backend.close()
                raise
        else:
            path = _cache_path(cache_dir, nodes, plan, key)
            if not path.exists():
                _build_file(path, nodes, plan, key)
            backend = DuckDBBackend(path, read_only=True, harden=True)
        super().__init__(backend, tuple(nodes))

        self._cursors = threading.Lock()

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The hardened connection (tests inspect its settings and tables)."""
        return self.backend._con

    @contextmanager
    def serving(self) -> Iterator[DuckDBBackend]:
        """A cursor of its own for each query: a DuckDB connection runs one statement at
        a time, its cursors (connections to the same database, with its locked settings)
        run side by side."""
        with self._cursors:
            cursor = _Cursor(self.backend)
        try:
            yield cursor
        finally:
            cursor.close()


class _Cursor(DuckDBBackend):
    """A :class:`DuckDBBackend` over a cursor of another backend's database (its hardened,
    locked settings included), for one query; :meth:`close` closes the cursor only."""

    def __init__(self, parent: DuckDBBackend) -> None:  # opens nothing: no super().__init__
        self.path = parent.path
        self.statement_timeout = parent.statement_timeout
        self._con = parent._con.cursor()
        self._lock = threading.RLock()
        self._closed = False


def _building(path: str | Path) -> DuckDBBackend:
    backend = DuckDBBackend(path)
    for statement in _BUILD_SETTINGS:
        backend.execute(statement)
    return backend


def _cache_path(cache_dir: Path, nodes: Mapping[str, Path], plan: ExtractPlan, key: bytes) -> Path:
    h = hashlib.sha256()
    h.update(BUILD_VERSION.encode())
    h.update(plan.scope.version.encode())
    h.update(hashlib.sha256(b"fingerprint" + key).digest())
    for part in node_identity(nodes):
        h.update(part.encode())
    return Path(cache_dir) / f"{plan.scope.project}-{h.hexdigest()[:20]}.duckdb"


def node_identity(nodes: Mapping[str, Path]) -> tuple[str, ...]:
    """Each node file's name, resolved path, size and modification time: a refreshed node
    file names a new extract (cache file, or shared extract)."""
    parts = []
    for node, path in sorted(nodes.items()):
        stat = Path(path).stat()
        parts.append(f"{node}\0{Path(path).resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return tuple(parts)


def _build_file(path: Path, nodes: Mapping[str, Path], plan: ExtractPlan, key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    backend = _building(tmp)
    try:
        _build(backend, nodes, plan, key)
        backend.execute("CHECKPOINT")
    finally:
        backend.close()
    tmp.replace(path)


def _build(
    backend: DuckDBBackend, nodes: Mapping[str, Path], plan: ExtractPlan, key: bytes
) -> None:
    for index, (node, path) in enumerate(nodes.items()):
        if not Path(path).is_file():
            raise ConfigurationError("nodes.missing", f"node file {path} does not exist")
        backend.execute(f"ATTACH {_quote_path(Path(path))} AS src (READ_ONLY)")
        try:
            _stage_node(backend, plan, key, node, first=index == 0)
        finally:
            backend.execute("DETACH src")
    for table in plan.person_tables:
        cols = ", ".join(table.columns)
        backend.execute(
            f"CREATE TABLE main.{table.name} AS SELECT {cols} FROM temp.staged_{table.name} "
            f"ORDER BY {ORDER_COLUMN}"
        )
        backend.execute(f"DROP TABLE temp.staged_{table.name}")
    check_pseudonyms(plan, backend, lambda name: f"main.{name}")


def _stage_node(
    backend: DuckDBBackend, plan: ExtractPlan, key: bytes, node: str, *, first: bool
) -> None:
    """One attached node's rows: person-level rows staged with their order key (written
    once, sorted, by :func:`_build`), shared tables (first node only) straight in."""
    present = backend.query("SELECT table_name FROM duckdb_tables() WHERE database_name = 'src'")
    require_source_tables(plan, node, present["table_name"])
    _load_keys(backend, plan, key, node)

    def src(table: str) -> str:
        return f"src.main.{table}"

    backend.execute(f"CREATE OR REPLACE TEMP TABLE persons AS {plan.persons_sql(src)}")
    for table in plan.tables if first else plan.person_tables:
        target = f"temp.staged_{table.name}" if table.person_level else table.name
        select = plan.select_sql(
            table, src, "duckdb", keys="keys", persons="persons", order="column"
        )
        if first:
            temp = "TEMP " if table.person_level else ""
            backend.execute(f"CREATE {temp}TABLE {target} AS {select}")
        else:
            backend.execute(f"INSERT INTO {target} {select}")
    backend.execute("DROP TABLE temp.persons")
    backend.execute("DROP TABLE temp.keys")


def _load_keys(backend: DuckDBBackend, plan: ExtractPlan, key: bytes, node: str) -> None:
    node_pads = pads(key, node, plan.namespaces)
    cols: list[str] = []
    values: list[bytes] = []
    for ns, pad in node_pads.items():
        cols += [f"CAST(? AS BLOB) AS {ns}_i", f"CAST(? AS BLOB) AS {ns}_o"]
        values += [pad.inner, pad.outer]
    backend.execute(f"CREATE OR REPLACE TEMP TABLE keys AS SELECT {', '.join(cols)}", values)
