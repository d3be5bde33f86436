"""Spark barrier: a private session holding only checkpointed project views.

Build: in a new session of the caller's SparkSession (sessions share the JVM
and cached data, not temporary views or SQL settings), the node's parquet
tables are read, filtered to scope and pseudonymised (:mod:`sde.proxy.barrier.plan`)
and each result is ``localCheckpoint``-ed: materialised, its lineage cut, so the
optimiser has no source scan left to push a researcher's predicate into. The
build views are dropped and only the project tables remain, as temporary views.

Run: the session reads no files through SQL (``spark.sql.runSQLOnFiles`` off);
a watchdog cancels the query's job group at the timeout.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from sde.errors import ConfigurationError
from sde.proxy.barrier import EngineError
from sde.proxy.barrier.plan import ExtractPlan
from sde.pseudonym import pads


class SparkExtract:
    """A project extract of one Spark node (a folder of parquet tables)."""

    dialect = "spark"

    def __init__(
        self, spark: Any, warehouse: Path, node: str, plan: ExtractPlan, key: bytes
    ) -> None:
        from pyspark.sql.types import BinaryType, StructField, StructType

        from sde.backends.tables import spark_schema

        self.nodes: tuple[str, ...] = (node,)
        root = Path(warehouse) / node
        if not root.is_dir():
            raise ConfigurationError("nodes.missing", f"there is no Spark node store at {root}")
        session = spark.newSession()
        self._session = session
        self._group = f"sde-extract-{uuid.uuid4().hex[:10]}"
        self._lock = threading.Lock()
        build_views = []
        for name in plan.required_source_tables():
            folder = root / name
            if not folder.is_dir():
                raise ConfigurationError(
                    "nodes.incomplete",
                    f"node {node} has no table {name}; the project cannot be scoped safely",
                    node=node,
                )
            view = f"src_{name}"
            session.read.schema(spark_schema(name)).parquet(str(folder)).createOrReplaceTempView(
                view
            )
            build_views.append(view)
        node_pads = pads(key, node, plan.namespaces)
        fields, values = [], []
        for ns, pad in node_pads.items():
            fields += [StructField(f"{ns}_i", BinaryType()), StructField(f"{ns}_o", BinaryType())]
            values += [bytearray(pad.inner), bytearray(pad.outer)]
        with warnings.catch_warnings():  # pyspark warns about pandas >= 3 it does not use here
            warnings.simplefilter("ignore", FutureWarning)
            keys = session.createDataFrame([tuple(values)], StructType(fields))
        keys.createOrReplaceTempView("keys")
        build_views.append("keys")

        def src(table: str) -> str:
            return f"src_{table}"

        persons = session.sql(plan.persons_sql(src)).localCheckpoint(eager=True)
        persons.createOrReplaceTempView("persons")
        build_views.append("persons")
        frames = {}
        for table in plan.tables:
            select = plan.select_sql(table, src, "spark", keys="keys", persons="persons")
            frames[table.name] = session.sql(select).localCheckpoint(eager=True)
        for view in build_views:
            session.catalog.dropTempView(view)
        for table in plan.person_tables:
            own = f"{table.name}_id" if table.name != "person" else "person_id"
            if own in table.ids:
                frames[table.name].createOrReplaceTempView("collision_check")
                dup = session.sql(
                    f"SELECT COUNT({own}) - COUNT(DISTINCT {own}) FROM collision_check"
                ).collect()[0][0]
                session.catalog.dropTempView("collision_check")
                if dup:
                    raise ConfigurationError(
                        "pseudonym.collision",
                        f"two {table.name} rows received the same pseudonym; "
                        "rotate the project key",
                    )
        for name, frame in frames.items():
            frame.createOrReplaceTempView(name)
        session.conf.set("spark.sql.runSQLOnFiles", "false")

    def run(self, sql: str, *, timeout_s: float, max_rows: int) -> pd.DataFrame:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        from sde.backends.watchdog import Watchdog

        context = self._session.sparkContext
        with self._lock:
            context.setJobGroup(self._group, "sde project query", interruptOnCancel=True)
            with Watchdog(timeout_s, lambda: context.cancelJobGroup(self._group)) as dog:
                try:
                    table = self._session.sql(sql).limit(max_rows).toArrow()
                except (PySparkException, Py4JError) as err:
                    raise EngineError(str(err), timeout=dog.fired) from None
        return table.to_pandas()

    def close(self) -> None:
        for table in self._session.catalog.listTables():
            if table.isTemporary:
                self._session.catalog.dropTempView(table.name)
