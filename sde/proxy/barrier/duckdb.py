"""DuckDB barrier: the project extract as its own hardened DuckDB database.

Build: a fresh database (in memory, or a cache file named by the scope, the key
and the node files), each node file ATTACHed READ_ONLY in turn, one table per
allowlisted table created AS SELECT of the scoped, pseudonymised rows
(:mod:`sde.proxy.barrier.plan`), node files DETACHed. Persons of several nodes
go into the same tables (pooled: aggregates over the folder are exact), shared
tables such as the vocabulary come from the first node.

Run: the database has no other data. External access, extension autoloading and
Python replacement scans are off and the configuration is locked, so a query
that slipped past the rules still could not read a file or the node. A timer
interrupts statements that run past the timeout.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

from sde.errors import ConfigurationError
from sde.proxy.barrier import EngineError
from sde.proxy.barrier.plan import ORDER_COLUMN, ExtractPlan
from sde.pseudonym import pads

#: Bump when the extract's layout or build SQL changes (invalidates caches).
BUILD_VERSION = "2"  # 2: rows ordered by a keyed pseudonym

_HARDEN = (
    "SET enable_external_access = false",
    "SET autoload_known_extensions = false",
    "SET autoinstall_known_extensions = false",
    "SET python_enable_replacements = false",
    "SET lock_configuration = true",
)
_OPEN_HARDENED: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "python_enable_replacements": False,
    "lock_configuration": True,
}


def _quote_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class DuckDBExtract:
    """A project extract over one or more DuckDB node files."""

    dialect = "duckdb"

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
        self.nodes = tuple(nodes)
        self._lock = threading.Lock()
        if cache_dir is None:
            self._con = duckdb.connect(":memory:", config=_build_config())
            _build(self._con, nodes, plan, key)
            for stmt in _HARDEN:
                self._con.execute(stmt)
        else:
            path = _cache_path(cache_dir, nodes, plan, key)
            if not path.exists():
                _build_file(path, nodes, plan, key)
            self._con = duckdb.connect(str(path), read_only=True, config=_OPEN_HARDENED)
        self.path: str = self._con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]

    def run(self, sql: str, *, timeout_s: float, max_rows: int) -> pd.DataFrame:
        with self._lock:
            timer = threading.Timer(timeout_s, self._con.interrupt)
            timer.start()
            try:
                frame = self._con.execute(sql).fetch_df()
            except duckdb.InterruptException as err:
                raise EngineError(str(err), timeout=True) from None
            except duckdb.Error as err:
                raise EngineError(str(err), timeout=not timer.is_alive()) from None
            finally:
                timer.cancel()
        return frame.iloc[:max_rows]

    def close(self) -> None:
        self._con.close()


def _build_config() -> dict[str, str | bool | int | float | list[str]]:
    return {"autoload_known_extensions": False, "autoinstall_known_extensions": False}


def _cache_path(cache_dir: Path, nodes: Mapping[str, Path], plan: ExtractPlan, key: bytes) -> Path:
    h = hashlib.sha256()
    h.update(BUILD_VERSION.encode())
    h.update(plan.scope.version.encode())
    h.update(hashlib.sha256(b"fingerprint" + key).digest())
    for node, path in sorted(nodes.items()):
        stat = Path(path).stat()
        h.update(f"{node}\0{Path(path).resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return Path(cache_dir) / f"{plan.scope.project}-{h.hexdigest()[:20]}.duckdb"


def _build_file(path: Path, nodes: Mapping[str, Path], plan: ExtractPlan, key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp), config=_build_config())
    try:
        _build(con, nodes, plan, key)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    tmp.replace(path)


def _build(
    con: duckdb.DuckDBPyConnection, nodes: Mapping[str, Path], plan: ExtractPlan, key: bytes
) -> None:
    created: set[str] = set()
    for index, (node, path) in enumerate(nodes.items()):
        if not Path(path).is_file():
            raise ConfigurationError("nodes.missing", f"node file {path} does not exist")
        con.execute(f"ATTACH {_quote_path(Path(path))} AS src (READ_ONLY)")
        try:
            present = {
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src'"
                ).fetchall()
            }
            missing = [t for t in plan.required_source_tables() if t not in present]
            if missing:
                raise ConfigurationError(
                    "nodes.incomplete",
                    f"node {node} has no table {missing[0]}; the project cannot be scoped safely",
                    node=node,
                )
            _load_keys(con, plan, key, node)

            def src(table: str) -> str:
                return f"src.main.{table}"

            con.execute(f"CREATE OR REPLACE TEMP TABLE persons AS {plan.persons_sql(src)}")
            tables = plan.tables if index == 0 else plan.person_tables
            for table in tables:
                # Person-level rows of every node are staged with their order key and
                # written once, sorted, below; shared tables go straight in.
                target = f"temp.staged_{table.name}" if table.person_level else table.name
                select = plan.select_sql(
                    table, src, "duckdb", keys="keys", persons="persons", order="column"
                )
                if table.name in created:
                    con.execute(f"INSERT INTO {target} {select}")
                else:
                    temp = "TEMP " if table.person_level else ""
                    con.execute(f"CREATE {temp}TABLE {target} AS {select}")
                    created.add(table.name)
            con.execute("DROP TABLE temp.persons")
            con.execute("DROP TABLE temp.keys")
        finally:
            con.execute("DETACH src")
    for table in plan.person_tables:
        cols = ", ".join(table.columns)
        con.execute(
            f"CREATE TABLE main.{table.name} AS SELECT {cols} FROM temp.staged_{table.name} "
            f"ORDER BY {ORDER_COLUMN}"
        )
        con.execute(f"DROP TABLE temp.staged_{table.name}")
    _check_collisions(con, plan)


def _load_keys(con: duckdb.DuckDBPyConnection, plan: ExtractPlan, key: bytes, node: str) -> None:
    node_pads = pads(key, node, plan.namespaces)
    cols, values = [], []
    for ns, pad in node_pads.items():
        cols += [f"CAST(? AS BLOB) AS {ns}_i", f"CAST(? AS BLOB) AS {ns}_o"]
        values += [pad.inner, pad.outer]
    con.execute(f"CREATE OR REPLACE TEMP TABLE keys AS SELECT {', '.join(cols)}", values)


def _check_collisions(con: duckdb.DuckDBPyConnection, plan: ExtractPlan) -> None:
    for table in plan.person_tables:
        own = f"{table.name}_id" if table.name != "person" else "person_id"
        if own not in table.ids:
            continue
        dup = con.execute(
            f"SELECT COUNT({own}) - COUNT(DISTINCT {own}) FROM main.{table.name}"
        ).fetchone()
        if dup and dup[0]:
            raise ConfigurationError(
                "pseudonym.collision",
                f"two {table.name} rows received the same pseudonym; rotate the project key",
            )
