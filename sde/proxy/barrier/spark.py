"""Spark barrier: a private session holding only checkpointed project views.

Build: a :class:`~sde.backends.spark.SparkBackend` over the node's store, in a new
session of the caller's SparkSession (sessions share the JVM and cached data, not
temporary views or SQL settings), registers the node tables the build reads; they
are filtered to scope and pseudonymised (:mod:`sde.proxy.barrier.plan`) and each
result is ``localCheckpoint``-ed: materialised, its lineage cut, so the optimiser
has no source scan left to push a researcher's predicate into. Every build view is
then dropped and only the project tables remain, as temporary views.

Run: the session reads no files through SQL (``spark.sql.runSQLOnFiles`` off);
the backend's watchdog cancels the query's job group at the timeout.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sde.backends.spark import SparkBackend
from sde.errors import ConfigurationError
from sde.proxy.barrier import BackendExtract
from sde.proxy.barrier.checks import check_pseudonyms, require_source_tables
from sde.proxy.barrier.plan import ExtractPlan
from sde.pseudonym import pads

#: Bump when the extract's layout or build SQL changes (a new shared extract).
BUILD_VERSION = "3"  # 2: provider/care_site ids keyed; 3: location ids keyed


def store_identity(root: Path, tables: Iterable[str]) -> tuple[str, ...]:
    """Every parquet file of the node tables the build reads (path, size, modification
    time): a re-loaded node names a new extract."""
    parts = []
    for table in sorted(tables):
        folder = Path(root) / table
        files = sorted(folder.rglob("*")) if folder.is_dir() else []
        for file in (f for f in files if f.is_file()):
            stat = file.stat()
            parts.append(f"{file.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return tuple(parts)


class SparkExtract(BackendExtract):
    """A project extract of one Spark node (a folder of parquet tables)."""

    backend: SparkBackend

    def __init__(
        self, spark: Any, warehouse: Path, node: str, plan: ExtractPlan, key: bytes
    ) -> None:
        root = Path(warehouse) / node
        if not root.is_dir():
            raise ConfigurationError("nodes.missing", f"there is no Spark node store at {root}")
        backend = SparkBackend(warehouse, node, session=spark, tables=plan.required_source_tables())
        try:
            require_source_tables(plan, node, backend.table_names())
            _build(backend, plan, key, node)
            check_pseudonyms(plan, backend, str)
            backend.harden()
        except BaseException:
            backend.close()
            raise
        super().__init__(backend, (node,))


def _build(backend: SparkBackend, plan: ExtractPlan, key: bytes, node: str) -> None:
    """Replace the session's node views by the checkpointed project tables."""
    session = backend.spark
    _keys_view(session, plan, key, node)
    persons = session.sql(plan.persons_sql(str)).localCheckpoint(eager=True)
    persons.createOrReplaceTempView("persons")
    frames = {}
    for table in plan.tables:
        select = plan.select_sql(table, str, "spark", keys="keys", persons="persons")
        frames[table.name] = session.sql(select).localCheckpoint(eager=True)
    backend.drop_views()  # node tables, keys, persons: nothing but the project is left
    for name, frame in frames.items():
        frame.createOrReplaceTempView(name)


def _keys_view(session: Any, plan: ExtractPlan, key: bytes, node: str) -> None:
    from pyspark.sql.types import BinaryType, StructField, StructType

    fields, values = [], []
    for ns, pad in pads(key, node, plan.namespaces).items():
        fields += [StructField(f"{ns}_i", BinaryType()), StructField(f"{ns}_o", BinaryType())]
        values += [bytearray(pad.inner), bytearray(pad.outer)]
    with warnings.catch_warnings():  # pyspark warns about pandas >= 3 it does not use here
        warnings.simplefilter("ignore", FutureWarning)
        keys = session.createDataFrame([tuple(values)], StructType(fields))
    keys.createOrReplaceTempView("keys")
