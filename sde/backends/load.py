"""Copy a node's DuckDB file into another engine (PostgreSQL, Spark).

Every CDM and custodian table is created in the target from the DDL (empty if
the node lacks it), then its rows stream across as Arrow record batches:
PostgreSQL receives them through ``COPY ... FROM STDIN`` as CSV, Spark as
parquet files. Tables the node holds that are neither CDM nor custodian tables
are left behind and reported in :attr:`LoadResult.skipped`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from sde.backends.base import Backend
from sde.backends.duckdb import DuckDBBackend
from sde.backends.failures import EngineFailure, LoadFailed
from sde.errors import ConfigurationError
from sde.omop.ddl import all_tables

ROWS_PER_BATCH = 100_000


@dataclass(frozen=True)
class LoadResult:
    """What a load copied: rows per table, tables skipped, time taken."""

    node: str
    engine: str
    rows: dict[str, int]
    skipped: tuple[str, ...]
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def load_node(
    source_duckdb: Path,
    target: Backend,
    *,
    progress: bool = True,
    rows_per_batch: int = ROWS_PER_BATCH,
) -> LoadResult:
    """Create every CDM + custodian table in ``target`` and copy the node's rows into it."""
    source_duckdb = Path(source_duckdb)
    if not source_duckdb.is_file():
        raise ConfigurationError("load.no-node", f"there is no node file at {source_duckdb}")
    started = time.perf_counter()
    source = DuckDBBackend(source_duckdb, read_only=True)
    try:
        present = source.table_names()
        tables = all_tables()
        counts = {t: source.row_count(t) for t in tables if t in present}
        with _progress(progress) as bar:
            task = bar.add_task(f"{source_duckdb.stem} → {target.name}", total=sum(counts.values()))
            rows: dict[str, int] = {}
            for table in tables:
                target.create_table(table)
                if counts.get(table):
                    batches = _advancing(source.export_batches(table, rows_per_batch), bar, task)
                    rows[table] = _load_table(target, table, batches)
                else:
                    rows[table] = 0
        analyze = getattr(target, "analyze", None)
        if callable(analyze):
            analyze(tables)
    finally:
        source.close()
    return LoadResult(
        node=source_duckdb.stem,
        engine=target.name,
        rows=rows,
        skipped=tuple(sorted(present - set(tables))),
        seconds=time.perf_counter() - started,
    )


def _load_table(target: Backend, table: str, batches: Iterator[pa.RecordBatch]) -> int:
    try:
        return target.load_arrow(table, batches)
    except EngineFailure as err:
        raise LoadFailed(table, target.name, err.engine_message) from None


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _advancing(
    batches: pa.RecordBatchReader, bar: Progress, task: TaskID
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield batch
        bar.advance(task, batch.num_rows)
