"""Engines behind one protocol: DuckDB (embedded default), PostgreSQL, Spark.

>>> backend = open_backend("duckdb")
>>> backend.query("SELECT 1 AS one").dtypes["one"]
Int64Dtype()
>>> open_backend("oracle")
Traceback (most recent call last):
...
sde.errors.ConfigurationError: unknown backend 'oracle'; choose one of duckdb, postgresql, spark
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from sde.backends.base import Backend
from sde.errors import ConfigurationError

#: Engine name -> (module, class). Modules are imported on demand.
BACKENDS: dict[str, tuple[str, str]] = {
    "duckdb": ("sde.backends.duckdb", "DuckDBBackend"),
    "postgresql": ("sde.backends.postgresql", "PostgresBackend"),
    "spark": ("sde.backends.spark", "SparkBackend"),
}


def backend_class(kind: str) -> type[Any]:
    """The class implementing engine ``kind``."""
    try:
        module, cls = BACKENDS[kind]
    except KeyError:
        raise ConfigurationError(
            "backend.unknown",
            f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}",
            backend=kind,
        ) from None
    found: type[Any] = getattr(importlib.import_module(module), cls)
    return found


def open_backend(kind: str, **options: Any) -> Backend:
    """Open a node on engine ``kind`` (duckdb | postgresql | spark).

    Options are the engine class's keyword arguments: ``path``/``read_only`` for
    DuckDB, ``url``/``schema``/``read_only``/``statement_timeout`` for PostgreSQL,
    ``warehouse``/``node``/``session`` for Spark.
    """
    cls = backend_class(kind)
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigurationError(
            "backend.unknown-option",
            f"the {kind} backend has no option {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(accepted))}",
        )
    backend: Backend = cls(**options)
    return backend


__all__ = ["BACKENDS", "Backend", "backend_class", "open_backend"]
