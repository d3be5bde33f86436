"""Apache Spark: the scale-out engine (pyspark; local mode here, a cluster in production).

A node's store is a folder of parquet tables, ``WAREHOUSE/<node>/<table>/*.parquet``,
one folder per CDM table, written from Arrow batches by :meth:`SparkBackend.load_arrow`
with the CDM's types. A backend works in its own ``SparkSession.newSession()``
(shared JVM and cache, separate temporary views and settings) where each table
is a temporary view over its folder, read with the schema from the DDL. Nodes
therefore never collide, even with the same table names in one Spark application.

The session is started only when a query needs it: loading a node writes parquet
with pyarrow and needs no JVM.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sde.backends.base import frame_batches
from sde.backends.failures import query_failed
from sde.backends.frames import arrow_to_frame
from sde.backends.tables import arrow_schema, conform, spark_schema
from sde.backends.watchdog import Watchdog
from sde.errors import BackendUnavailable, ConfigurationError
from sde.omop.ddl import all_tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JAVA_HINT = "Spark needs Java 17 or newer: install it with `apt-get install default-jre-headless`"

#: The local-mode settings (see ENVIRONMENT.md): two cores, no web UI, few shuffle
#: partitions, loopback only, and UTC so timestamps mean the same on every engine.
LOCAL_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.showConsoleProgress": "false",
}


def local_session(master: str = "local[2]", app_name: str = "sde-workbench") -> SparkSession:
    """The process's local SparkSession (created on first call with :data:`LOCAL_SETTINGS`)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise BackendUnavailable(
            "spark.not-installed",
            "pyspark is not installed: pip install 'sde-workbench[spark]'",
        ) from None
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise BackendUnavailable("spark.no-java", JAVA_HINT)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in LOCAL_SETTINGS.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as err:  # the JVM gateway failed to start
        raise BackendUnavailable(
            "spark.start-failed", f"Spark did not start ({JAVA_HINT})"
        ) from err
    _quiet(session)
    return session


def _quiet(session: SparkSession) -> None:
    """Keep engine error text (which can quote data values) out of the console logs.

    Failed tasks log the failing value at ERROR level in the JVM, and pyspark logs
    the message of every SQL error; the workbench keeps that text for the audit
    log only (``QueryFailed.engine_message``).
    """
    session.sparkContext.setLogLevel("FATAL")
    try:
        from pyspark.logger import PySparkLogger
    except ImportError:  # pyspark < 4
        return
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).disabled = True


def _spark_errors() -> tuple[type[BaseException], ...]:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JError)


class SparkBackend:
    """A node stored as a folder of parquet tables, queried with Spark SQL."""

    name: ClassVar[str] = "spark"
    dialect: ClassVar[str] = "spark"

    def __init__(
        self,
        warehouse: str | Path,
        node: str,
        *,
        session: SparkSession | None = None,
        create: bool = False,
        statement_timeout: float | None = None,
        tables: Iterable[str] | None = None,
    ) -> None:
        """``WAREHOUSE/node`` must exist unless ``create``; ``session`` defaults to local.

        ``tables`` limits the node tables registered as views (default: every one).
        """
        self.root = Path(warehouse) / node
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise ConfigurationError(
                "spark.no-node", f"there is no node store at {self.root} (load one with sde load)"
            )
        self.node = node
        self.statement_timeout = statement_timeout
        self._parent = session
        self._session: SparkSession | None = None
        known = set(all_tables()) if tables is None else set(tables)
        self._stale = {p.name for p in self.root.iterdir() if p.is_dir() and p.name in known}
        self._lock = threading.RLock()

    @property
    def spark(self) -> SparkSession:
        """This backend's own session (started on first use), views registered."""
        if self._session is None:
            parent = self._parent if self._parent is not None else local_session()
            self._session = parent.newSession()
        for table in sorted(self._stale):
            reader = self._session.read.schema(spark_schema(table))
            reader.parquet(str(self.root / table)).createOrReplaceTempView(table)
        self._stale.clear()
        return self._session

    # -- queries ---------------------------------------------------------------

    def query(
        self, sql: str, *, timeout_s: float | None = None, max_rows: int | None = None
    ) -> pd.DataFrame:
        spark = self.spark
        context = spark.sparkContext
        errors = _spark_errors()
        # A fresh group per query: cancellation is asynchronous, and a late cancel
        # must not hit the next query.
        group = f"sde-{self.node}-{uuid.uuid4().hex[:12]}"
        cancel = lambda: context.cancelJobGroup(group)  # noqa: E731
        seconds = self.statement_timeout if timeout_s is None else timeout_s
        with self._lock:
            context.setJobGroup(group, "sde query", interruptOnCancel=True)
            with Watchdog(seconds, cancel, repeat=0.1) as dog:
                try:
                    frame = spark.sql(sql)
                    table = _to_arrow(frame if max_rows is None else frame.limit(max_rows))
                except errors as err:
                    rule = "engine.timeout" if dog.fired else "engine.error"
                    raise query_failed(self.name, err, rule) from None
        return arrow_to_frame(table)

    def harden(self) -> None:
        """SQL of this session reads no files (``spark.sql.runSQLOnFiles`` off)."""
        self.spark.conf.set("spark.sql.runSQLOnFiles", "false")

    def drop_views(self) -> None:
        """Drop every temporary view of this backend's session."""
        if self._session is None:
            return
        for table in self._session.catalog.listTables():
            if table.isTemporary:
                self._session.catalog.dropTempView(table.name)

    def execute(self, sql: str) -> None:
        try:
            self.spark.sql(sql)
        except _spark_errors() as err:
            raise query_failed(self.name, err) from None

    def table_names(self) -> set[str]:
        return {t.name for t in self.spark.catalog.listTables() if t.isTemporary}

    # -- loading ---------------------------------------------------------------

    def create_table(self, table: str) -> None:
        folder = self.root / table
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        # An empty file carries the schema, so the empty table can be read.
        pq.write_table(arrow_schema(table).empty_table(), folder / "part-00000.parquet")
        self._stale.add(table)

    def load_arrow(self, table: str, batches: Iterable[pa.RecordBatch]) -> int:
        """Write the batches as one more parquet file of the table's folder."""
        folder = self.root / table
        if not folder.is_dir():
            raise ConfigurationError(
                "spark.no-table", f"table {table} was not created in {self.root}"
            )
        target = folder / f"part-{uuid.uuid4().hex}.parquet"
        written = 0
        try:
            with pq.ParquetWriter(target, arrow_schema(table)) as writer:
                for batch in batches:
                    writer.write_batch(conform(batch, table))
                    written += batch.num_rows
        except BaseException:
            target.unlink(missing_ok=True)  # all of the batches or none of them
            raise
        self._stale.add(table)
        return written

    def load_frame(self, table: str, frame: pd.DataFrame) -> None:
        self.load_arrow(table, frame_batches(frame))

    def close(self) -> None:
        # The views go with the session; the shared JVM belongs to whoever started it.
        self.drop_views()
        self._session = None


def _to_arrow(frame: Any) -> pa.Table:
    # DataFrame.toArrow arrived in pyspark 4.0.
    table: pa.Table = frame.toArrow()
    return table
