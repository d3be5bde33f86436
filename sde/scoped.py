"""What the embedded :class:`~sde.connection.Connection` and the federated
:class:`~sde.federation.coordinator.FederatedConnection` share: a researcher's connection
scoped to one approved project, one audit entry per call, the project's DP engine.

Subclasses say how a prepared query runs (:meth:`ScopedConnection._run_exact` for the DP
engine), what :meth:`~ScopedConnection.close` releases and which nodes they answer for.
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Self

import pandas as pd
from sqlalchemy import Engine

from sde.audit import AuditLog, AuditRecord
from sde.backends.failures import EngineFailure
from sde.errors import (
    AccessDenied,
    ConfigurationError,
    QueryFailed,
    ResultTruncated,
    ScopeViolation,
    SDEError,
)
from sde.proxy.context import DIALECTS, Limits, RuleContext
from sde.proxy.pipeline import Prepared, prepare
from sde.scope import Scope

if TYPE_CHECKING:
    from sde.dp.engine import AuditFor, DPEngine, Outcome
    from sde.dp.ledger import BudgetStatus

#: Exact runs whose rewritten-SQL hash a connection remembers for the DP engine's entries.
_EXACT_REMEMBERED = 64


class ScopedConnection:
    """A project-scoped connection: the audit entries, the scope checks, the DP engine.

    Every call a researcher makes writes exactly one audit entry, whatever its outcome.
    """

    #: Rules of an :class:`SDEError` audited as an ``error`` rather than a refusal.
    _ERROR_RULES: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        scope: Scope,
        registry: Engine,
        *,
        user: str,
        dialect: str = "postgres",
        limits: Limits | None = None,
    ) -> None:
        self.scope = scope
        self.user = user
        self.dialect = _dialect(dialect)
        self.limits = limits or Limits()
        self.registry = registry
        self._audit = AuditLog(registry)
        self._closed = False
        self._contexts: dict[tuple[str, bool], RuleContext] = {}
        self._dp_engine: DPEngine | None = None
        #: Rewritten-SQL hashes of the DP engine's recent exact runs, for their audit entries.
        self._exact_hashes: OrderedDict[str, str | None] = OrderedDict()

    # -- the researcher's surface -------------------------------------------------------

    @property
    def project(self) -> str:
        return self.scope.project

    @property
    def nodes(self) -> tuple[str, ...]:
        raise NotImplementedError

    def budget(self) -> BudgetStatus:
        """The project's privacy budget: total, spent, remaining and every release."""
        start = time.perf_counter()
        try:
            self._check_open()
            status = self._dp().budget()
        except SDEError as err:
            self._record("budget", "", start, err=err)
            raise
        self._record("budget", "", start, rows=len(status.history))
        return status

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for the subclasses -------------------------------------------------------------

    def _release(self) -> None:
        """What :meth:`close` releases (once)."""

    def _run_exact(self, sql: str, dialect: str | None) -> pd.DataFrame:
        """The DP engine's exact rows: every scope rule but the access mode, no row cap, no
        audit entry of its own."""
        raise NotImplementedError

    @staticmethod
    def _warned(frame: pd.DataFrame) -> pd.DataFrame:
        """``frame``, with a :class:`~sde.errors.ResultTruncated` warning (pointing at the
        caller of ``sql``) when it was cut at the row cap."""
        info = frame.attrs["sde"]
        if info.get("truncated"):
            warnings.warn(ResultTruncated(info["message"]), stacklevel=3)
        return frame

    def _dp_begin(
        self,
        sql: str,
        start: float,
        dialect: str | None,
        *,
        ready: Callable[[], None] | None = None,
    ) -> DPEngine:
        """An ``sql_dp`` call's checks before the engine takes over (a refusal audited here):
        the researcher's own query meets every scope rule first, so a refusal names their
        table or column rather than something in the DP engine's rewrite. ``ready``: a last
        check before any spend (raises to refuse the query free)."""
        try:
            self._check_open()
            self._prepare(sql, dialect, enforce_access=False)
            engine = self._dp()
            if ready is not None:
                ready()
        except SDEError as err:
            self._record("sql_dp", sql, start, err=err)
            raise
        return engine

    def _dp_detail(self, outcome: Outcome) -> str | None:
        """What a ``sql_dp`` call's audit entry says of its outcome."""
        return outcome.detail

    # -- for the dp layer ---------------------------------------------------------------

    def _dp_audit(self, sql: str, start: float) -> AuditFor:
        """How the DP engine builds this ``sql_dp`` call's audit entry from its outcome."""

        def entry(o: Outcome) -> AuditRecord:
            rewritten = self._exact_hashes.get(o.exact_sql) if o.exact_sql else None
            result = (o.outcome, o.rule, self._dp_detail(o))
            return self._entry("sql_dp", sql, start, result, rows=o.rows, rewritten=rewritten)

        return entry

    def _dp(self) -> DPEngine:
        """The project's DP engine, built on first use over an :class:`ExactRunner`."""
        if self._dp_engine is None:
            if not self.scope.dp:
                raise ConfigurationError(
                    "dp.no-budget",
                    f"project {self.project} has no privacy budget: its scope file needs "
                    "dp: {epsilon: ..., delta: ...}",
                )
            from sde.dp.engine import DPEngine

            self._dp_engine = DPEngine(
                ExactRunner(self),
                registry=self.registry,
                project=self.project,
                budget=(self.scope.dp["epsilon"], self.scope.dp.get("delta", 0.0)),
                user=self.user,
                dialect=self.dialect,
            )
        return self._dp_engine

    def _remember_hash(self, sql: str, rewritten: str | None) -> None:
        """Keep the hash of an exact run's SQL for the DP engine's audit entry."""
        self._exact_hashes[sql] = rewritten
        while len(self._exact_hashes) > _EXACT_REMEMBERED:
            self._exact_hashes.popitem(last=False)

    # -- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise AccessDenied("connection.closed", "this connection is closed")
        if self.scope.is_expired():
            raise AccessDenied(
                "access.expired",
                f"project {self.project}'s approval expired on {self.scope.expires}",
            )

    def _check_sql(self) -> None:
        """:meth:`_check_open`, and ``sql`` is not for a ``dp`` project."""
        self._check_open()
        if self.scope.access == "dp":
            raise ScopeViolation(
                "access.dp-only",
                f"project {self.project} is approved for differentially private queries "
                "only; use conn.sql_dp(...)",
            )

    def _context(self, dialect: str | None, *, enforce_access: bool = True) -> RuleContext:
        name = _dialect(dialect or self.dialect)
        ctx = self._contexts.get((name, enforce_access))
        if ctx is None:
            ctx = RuleContext(self.scope, name, self.limits, enforce_access=enforce_access)
            self._contexts[(name, enforce_access)] = ctx
        return ctx

    def _prepare(self, sql: str, dialect: str | None, *, enforce_access: bool = True) -> Prepared:
        return prepare(sql, self._context(dialect, enforce_access=enforce_access))

    def _record(
        self,
        action: str,
        sql: str,
        start: float,
        *,
        err: SDEError | None = None,
        failure: EngineFailure | None = None,
        rows: int | None = None,
        note: str | None = None,
        rewritten: str | None = None,
    ) -> None:
        """Append one call's audit entry (``note``: what an ``ok`` outcome should say)."""
        result: tuple[str, str | None, str | None]
        if err is not None:
            outcome = "error" if err.rule in self._ERROR_RULES else "refused"
            result = (outcome, err.rule, err.message)
        elif failure is not None:  # the engine's own words: for the audit log only
            rule = "limits.timeout" if failure.rule == "engine.timeout" else "engine.error"
            result = ("error", rule, failure.engine_message)
        else:
            result = ("ok", None, note)
        self._audit.append(self._entry(action, sql, start, result, rows=rows, rewritten=rewritten))

    def _entry(
        self,
        action: str,
        sql: str,
        start: float,
        result: tuple[str, str | None, str | None],
        rows: int | None,
        rewritten: str | None,
    ) -> AuditRecord:
        outcome, rule, detail = result
        return AuditRecord(
            user=self.user,
            project=self.project,
            scope_version=self.scope.version,
            action=action,
            sql=_storable(sql if isinstance(sql, str) else repr(sql)),
            outcome=outcome,
            rule=rule,
            detail=_storable(detail) if detail is not None else None,
            rows=rows,
            rewritten_sha256=rewritten,
            duration_ms=(time.perf_counter() - start) * 1000,
        )


class ExactRunner:
    """The :class:`~sde.dp.engine.ScopedRunner` a connection gives its DP engine.

    Exact rows under every scope rule but the access mode (a ``dp`` project's exact totals
    go only to the engine, which noises them), never cut at the row cap. Not part of the
    researcher's surface.
    """

    def __init__(self, conn: ScopedConnection) -> None:
        self._conn = conn

    def run_exact(self, sql: str, dialect: str) -> pd.DataFrame:
        return self._conn._run_exact(sql, dialect)


def _storable(text: str) -> str:
    """``text`` with NUL shown as ``\\x00``: a PostgreSQL registry cannot store NUL, and a
    refusal must be audited, not turned into a driver error."""
    return text.replace("\x00", "\\x00")


def _dialect(dialect: str) -> str:
    name = {"postgresql": "postgres", "sparksql": "spark"}.get(dialect, dialect)
    if name not in DIALECTS:
        raise ConfigurationError(
            "connect.dialect", f"dialect {dialect!r} is not supported; use one of {DIALECTS}"
        )
    return name


def _threshold_note(frame: pd.DataFrame, prepared: Prepared) -> None:
    """Say in ``frame.attrs["sdc"]`` that groups under the threshold were removed (an
    ``aggregates`` project); a result still holding an internal column fails closed."""
    if prepared.threshold is None:
        return
    # Groups under the threshold were removed inside the query, before ordering,
    # limits and the row cap (sde.proxy.rules.threshold). How many is not said:
    # that number depends on the removed groups' contents.
    if any(str(c).lower().startswith("__sde") for c in frame.columns):
        raise QueryFailed(  # fail closed: an internal column must never be shown
            "aggregates.unchecked",
            "the persons behind this result could not be counted; rename its outputs",
        )
    frame.attrs["sdc"] = {
        "rule": "aggregates.threshold",
        "threshold": prepared.threshold,
        "message": f"groups of fewer than {prepared.threshold} persons are never "
        "shown; whether any existed is not reported",
    }
