"""Optimisation barriers: a materialised project extract per engine.

Each engine module builds the extract described by
:class:`~sde.proxy.barrier.plan.ExtractPlan` and runs rewritten queries on it
under that engine's second guard (DuckDB: external access, extensions and
replacement scans off, configuration locked; PostgreSQL: a read-only role and
a statement timeout; Spark: a private session holding only the project views).
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd


class Extract(Protocol):
    """A built project extract that runs rewritten SQL."""

    #: sqlglot dialect of the engine.
    dialect: str
    #: Nodes whose rows the extract holds.
    nodes: tuple[str, ...]

    def run(self, sql: str, *, timeout_s: float, max_rows: int) -> pd.DataFrame:
        """Run one rewritten SELECT; engine errors raise :class:`EngineError`."""
        ...

    def close(self) -> None: ...


class EngineError(Exception):
    """An engine refused or failed a query. ``detail`` is for the audit log only."""

    def __init__(self, detail: str, *, timeout: bool = False) -> None:
        super().__init__("engine error")
        self.detail = detail
        self.timeout = timeout
