"""``sde load``: copy a node's DuckDB file (or a folder of them) into PostgreSQL or Spark.

    sde load --backend postgresql --node DIR/lth.duckdb --url postgresql://... [--schema lth]
    sde load --backend spark --node DIR --warehouse WAREHOUSE

A folder loads every ``*.duckdb`` node in it, each into its own schema
(PostgreSQL) or folder ``WAREHOUSE/<node>`` (Spark), named after the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sde.backends.base import Backend
from sde.errors import ConfigurationError

TARGETS = ("postgresql", "spark")


def _nodes(node: Path | None, schema: str | None) -> list[tuple[Path, str]]:
    if node is None:
        raise ConfigurationError("load.no-node", "--node is required: a node file or a folder")
    if node.is_dir():
        if schema is not None:
            raise ConfigurationError("load.schema-for-folder", "--schema applies to one node file")
        files = sorted(node.glob("*.duckdb"))
        if not files:
            raise ConfigurationError("load.no-node", f"there are no *.duckdb node files in {node}")
        return [(f, f.stem) for f in files]
    if not node.is_file():
        raise ConfigurationError("load.no-node", f"there is no node file or folder at {node}")
    return [(node, schema or node.stem)]


def _target(backend: str, name: str, url: str | None, warehouse: Path | None) -> Backend:
    from sde.backends import open_backend
    from sde.settings import get_settings

    if backend == "postgresql":
        if warehouse is not None:
            raise ConfigurationError("load.bad-option", "--warehouse is for --backend spark")
        url = url or get_settings().pg_url
        if not url:
            raise ConfigurationError(
                "load.no-url", "--url is required for postgresql (or set SDE_PG_URL)"
            )
        return open_backend("postgresql", url=url, schema=name)
    if url is not None:
        raise ConfigurationError("load.bad-option", "--url is for --backend postgresql")
    if warehouse is None:
        raise ConfigurationError("load.no-warehouse", "--warehouse is required for spark")
    return open_backend("spark", warehouse=warehouse, node=name, create=True)


def load(
    backend: Annotated[str | None, typer.Option(help="Target engine: postgresql or spark.")] = None,
    node: Annotated[
        Path | None, typer.Option(help="A node file (DIR/lth.duckdb) or a folder of them.")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="PostgreSQL libpq URL or DSN (default $SDE_PG_URL).")
    ] = None,
    warehouse: Annotated[
        Path | None, typer.Option(help="Spark: folder of node stores (WAREHOUSE/<node>/).")
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="Schema or folder name for one node (default: file stem).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Load OMOP nodes into PostgreSQL (one schema each) or Spark (parquet folders)."""
    from sde.backends.load import load_node

    if backend is None:
        raise ConfigurationError("load.no-backend", "--backend is required: postgresql or spark")
    if backend not in TARGETS:
        raise ConfigurationError(
            "backend.unknown", f"unknown backend {backend!r}; choose one of {', '.join(TARGETS)}"
        )
    for path, name in _nodes(node, schema):
        target = _target(backend, name, url, warehouse)
        try:
            result = load_node(path, target, progress=progress)
        finally:
            target.close()
        where = f"schema {name}" if backend == "postgresql" else f"{warehouse}/{name}"
        skipped = f" (not CDM, left behind: {', '.join(result.skipped)})" if result.skipped else ""
        typer.echo(
            f"{path.name} -> {backend} {where}: {result.total_rows:,} rows "
            f"in {result.seconds:.1f} s{skipped}"
        )


def register(app: typer.Typer) -> None:
    app.command("load")(load)
