"""Optimisation barriers: a materialised project extract on each engine's backend.

Each engine module builds the extract described by
:class:`~sde.proxy.barrier.plan.ExtractPlan` through that engine's
:class:`~sde.backends.base.Backend` and then runs rewritten queries with the same
backend (:meth:`BackendExtract.run`), under that engine's second guard (DuckDB:
external access, extensions and replacement scans off, configuration locked;
PostgreSQL: a read-only role and a statement timeout; Spark: a private session
holding only the project views). Timeouts, row limits, result dtypes and the
mapping of engine errors to :class:`~sde.backends.failures.EngineFailure` are the
backend's. The checks every build makes are in :mod:`sde.proxy.barrier.checks`;
:mod:`sde.proxy.barrier.sources` picks the engine for ``sde.connect()``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

import pandas as pd

from sde.backends.base import Backend
from sde.backends.failures import EngineFailure


class Extract(Protocol):
    """A built project extract that runs rewritten SQL."""

    #: sqlglot dialect of the engine.
    dialect: str
    #: Nodes whose rows the extract holds.
    nodes: tuple[str, ...]

    def run(self, sql: str, *, timeout_s: float, max_rows: int) -> pd.DataFrame:
        """Run one rewritten SELECT. An engine failure raises the backend's
        :class:`~sde.backends.failures.EngineFailure` (its rule id one of
        ``sde.backends.failures.MESSAGES``, the engine's own text on ``engine_message``, for
        the audit log only) with no exception chain or traceback leading to that text."""
        ...

    def close(self) -> None: ...


class BackendExtract:
    """A built extract served by its engine's backend (the engine modules subclass it)."""

    def __init__(self, backend: Backend, nodes: tuple[str, ...]) -> None:
        self.backend = backend
        self.dialect: str = backend.dialect
        self.nodes = nodes

    def run(self, sql: str, *, timeout_s: float, max_rows: int) -> pd.DataFrame:
        """One rewritten SELECT on the extract, cancelled after ``timeout_s``; safe to call
        from several threads at once (see :meth:`serving`)."""
        with self.serving() as backend:
            try:
                return backend.query(sql, timeout_s=timeout_s, max_rows=max_rows)
            except EngineFailure as caught:
                failure = caught
        # Raised outside the handler, detached from the engine's own exception and from the
        # backend's frames: no exception chain or traceback leads to the engine's text (it
        # stays on ``failure.engine_message``, which the connection audits).
        failure.__cause__ = failure.__context__ = None
        raise failure.with_traceback(None)

    def serving(self) -> AbstractContextManager[Backend]:
        """The backend that runs one query: here the extract's own, whose lock takes one
        query at a time; DuckDB and PostgreSQL extracts serve several at once."""
        return nullcontext(self.backend)

    def close(self) -> None:
        self.backend.close()


__all__ = ["BackendExtract", "Extract"]
