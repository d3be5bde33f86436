"""Which engine serves ``sde.connect(path, ...)``: a table of extract sources.

Each entry of :data:`SOURCES` says which inputs it claims and how it opens them:
where the project keys live (the registry) and how the extract is built once the
key is known. ``connect()`` asks every entry; exactly one must claim the input.

============  =====================================================  =================
engine        claims                                                 registry
============  =====================================================  =================
duckdb        a path (node file or folder), without ``spark=``       default: beside
postgresql    a ``postgresql://`` URL or a libpq ``key=value`` DSN   ``registry=`` URL
spark         ``spark=`` (a SparkSession); path is the warehouse     ``registry=`` URL
============  =====================================================  =================

An input two entries claim (a folder named like a DSN, a URL with ``spark=``) is
refused, never guessed.

>>> [s.engine for s in SOURCES]
['duckdb', 'postgresql', 'spark']
>>> is_postgres_address("host=db dbname=sde"), is_postgres_address("data/lth.duckdb")
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sde.errors import AccessDenied, ConfigurationError
from sde.proxy.barrier import Extract
from sde.proxy.barrier.plan import ExtractPlan
from sde.scope import Scope

_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


@dataclass(frozen=True)
class ExtractRequest:
    """What ``sde.connect()`` was given, for the sources to judge and open."""

    path: str | None
    scope: Scope
    plan: ExtractPlan
    registry: str | None = None
    cache_dir: Path | None = None
    node: str | None = None
    schema: str = "public"
    spark: Any = None
    refresh: bool = False

    @property
    def text(self) -> str:
        return self.path or ""


@dataclass(frozen=True)
class Opened:
    """An opened source: where its project keys live and how its extract is built."""

    #: SQLAlchemy URL of the registry.
    registry: str
    #: Builds the extract, given the project key.
    build: Callable[[bytes], Extract]
    #: The engine, its build version and what names the source's data (files and their
    #: sizes and times, or database and schema): with the scope's version and the key's
    #: fingerprint, the key of a shared extract (:mod:`sde.proxy.barrier.cache`).
    identity: tuple[str, ...]


@dataclass(frozen=True)
class ExtractSource:
    """One engine's way from ``connect()``'s arguments to a built extract."""

    engine: str
    #: What it accepts, for error messages.
    accepts: str
    claims: Callable[[ExtractRequest], bool]
    open: Callable[[ExtractRequest], Opened]


def is_postgres_address(text: str) -> bool:
    """A PostgreSQL URL, or a libpq DSN (``key=value`` pairs psycopg can parse)."""
    if text.startswith(_SCHEMES):
        return True
    if "=" not in text:
        return False
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(text)
    except ProgrammingError:
        return False
    return True


def source_for(request: ExtractRequest) -> ExtractSource:
    """The one source that claims ``request``; none or several is a ConfigurationError."""
    found = [s for s in SOURCES if s.claims(request)]
    if len(found) == 1:
        return found[0]
    choices = "; ".join(f"{s.accepts} ({s.engine})" for s in found or SOURCES)
    if not found:
        raise ConfigurationError(
            "connect.path", f"{request.text!r} is not a node this workbench can open: {choices}"
        )
    raise ConfigurationError(
        "connect.ambiguous",
        f"{request.text!r} could mean {' or '.join(s.engine for s in found)}: {choices}; "
        "rename the folder, or pass spark= only with a warehouse folder",
    )


# -- the engines -----------------------------------------------------------------------


def node_in_scope(name: str, scope: Scope) -> str:
    """``name``, if the project's scope allows that node."""
    if scope.nodes is not None and name not in scope.nodes:
        raise AccessDenied(
            "nodes.not-allowed",
            f"node {name} is not in the scope of project {scope.project}",
            node=name,
        )
    return name


def duckdb_nodes(data: Path, scope: Scope) -> dict[str, Path]:
    """The node files of the scope: ``data`` itself, or the ``*.duckdb`` files in it."""
    if data.is_file():
        return {node_in_scope(data.stem, scope): data}
    if not data.is_dir():
        raise ConfigurationError("connect.path", f"{data} is neither a node file nor a folder")
    found = {
        p.stem: p for p in sorted(data.glob("*.duckdb")) if not p.name.startswith((".", "sde-"))
    }
    if scope.nodes is not None:
        missing = [n for n in scope.nodes if n not in found]
        if missing:
            raise ConfigurationError(
                "nodes.missing", f"node {missing[0]} of the project's scope is not in {data}"
            )
        found = {n: p for n, p in found.items() if n in scope.nodes}
    if not found:
        raise ConfigurationError("nodes.none", f"no node files (*.duckdb) in {data}")
    return found


def _require_registry(registry: str | None, what: str) -> str:
    if not registry:
        raise ConfigurationError(
            "connect.registry", f"a {what} node needs registry=URL (where project keys live)"
        )
    return registry


def _open_duckdb(req: ExtractRequest) -> Opened:
    from sde.proxy.barrier.duckdb import BUILD_VERSION, DuckDBExtract, node_identity
    from sde.registry.db import registry_url_beside

    data = Path(req.text)
    nodes = duckdb_nodes(data, req.scope)
    url = req.registry or registry_url_beside(data)
    cache = str(Path(req.cache_dir).resolve()) if req.cache_dir is not None else ""
    return Opened(
        url,
        lambda key: DuckDBExtract(nodes, req.plan, key, cache_dir=req.cache_dir),
        ("duckdb", BUILD_VERSION, cache, *node_identity(nodes)),
    )


def _dbname(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(dsn).get("dbname", "postgres"))


def _open_postgres(req: ExtractRequest) -> Opened:
    from psycopg.conninfo import conninfo_to_dict

    from sde.proxy.barrier.postgres import BUILD_VERSION, PostgresExtract

    url = _require_registry(req.registry, "PostgreSQL")
    dsn = req.text.replace("postgresql+psycopg://", "postgresql://")
    default = req.schema if req.schema != "public" else _dbname(dsn)
    name = node_in_scope(req.node or default, req.scope)
    info = conninfo_to_dict(dsn)  # the server, database and user; never the password
    server = [str(info.get(k) or "") for k in ("host", "hostaddr", "port", "dbname", "user")]
    return Opened(
        url,
        lambda key: PostgresExtract(dsn, name, req.schema, req.plan, key, refresh=req.refresh),
        ("postgresql", BUILD_VERSION, *server, req.schema, name),
    )


def _open_spark(req: ExtractRequest) -> Opened:
    from sde.proxy.barrier.spark import BUILD_VERSION, SparkExtract, store_identity

    if req.path is None or req.node is None:
        raise ConfigurationError(
            "connect.spark", "a Spark node needs its warehouse folder (path) and node="
        )
    url = _require_registry(req.registry, "Spark")
    name = node_in_scope(req.node, req.scope)
    root = Path(req.text).resolve() / name
    # Sessions of one Spark application share the JVM: the extract lives in a new session
    # of whichever the caller passes, so the application names where it can be shared.
    app = str(req.spark.sparkContext.applicationId)
    tables = req.plan.required_source_tables()
    return Opened(
        url,
        lambda key: SparkExtract(req.spark, Path(req.text), name, req.plan, key),
        ("spark", BUILD_VERSION, app, str(root), *store_identity(root, tables)),
    )


#: Every engine ``connect()`` can open, and what each claims.
SOURCES: tuple[ExtractSource, ...] = (
    ExtractSource(
        "duckdb",
        "a node file or folder of node files",
        lambda r: (
            r.spark is None
            and r.path is not None
            and (Path(r.text).exists() or not is_postgres_address(r.text))
        ),
        _open_duckdb,
    ),
    ExtractSource(
        "postgresql",
        "a postgresql:// URL or libpq DSN",
        lambda r: is_postgres_address(r.text),
        _open_postgres,
    ),
    ExtractSource(
        "spark",
        "spark= with the warehouse folder and node=",
        lambda r: r.spark is not None,
        _open_spark,
    ),
)
