"""``sde.connect()``: a researcher's connection, scoped to one approved project.

Embedded mode opens a node file or a folder of nodes (DuckDB, as ``sde synth``
writes them), a PostgreSQL node (``postgresql://`` URL) or a Spark node (a
SparkSession and the database holding the node's tables), builds the project
extract (:mod:`sde.proxy.barrier`) and sends every query through the proxy
(:mod:`sde.proxy.pipeline`). Every query, refused or not, is appended to the
registry's hash-chained audit log (:mod:`sde.audit`).

>>> import sde  # doctest: +SKIP
>>> conn = sde.connect("data/", scope="scope.yaml")  # doctest: +SKIP
>>> conn.sql("SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1")  # doctest: +SKIP
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Engine

from sde.backends.failures import EngineFailure
from sde.errors import (
    AccessDenied,
    ConfigurationError,
    QueryFailed,
    SDEError,
)
from sde.proxy.barrier import Extract
from sde.proxy.barrier.cache import ExtractCache, ExtractKey, shared_extracts
from sde.proxy.barrier.plan import ExtractPlan
from sde.proxy.barrier.sources import ExtractRequest, Opened, source_for
from sde.proxy.context import Limits
from sde.proxy.frames import normalise
from sde.proxy.pipeline import Prepared
from sde.registry.db import open_registry
from sde.registry.keys import KeyStore
from sde.scope import Scope
from sde.scoped import ExactRunner, ScopedConnection, _threshold_note

__all__ = ["EXACT_ROWS", "Connection", "ExactRunner", "connect"]

if TYPE_CHECKING:
    from sde.client import GatewayConnection
    from sde.federation.coordinator import FederatedConnection

#: Rows a DP exact run may return (Spark's LIMIT is a 32-bit integer); more is a failure,
#: which the DP engine charges, never a silent cut.
EXACT_ROWS = 2**31 - 2

_ENGINE_ERROR = (
    "the database could not run this query (for example a value that cannot be cast, "
    "or a division by zero); the details are in the audit log, ask your data custodian"
)


class Connection(ScopedConnection):
    """A project-scoped connection. Build with :func:`connect`.

    Every call a researcher makes (:meth:`sql`, :meth:`explain`, :meth:`sql_dp`,
    :meth:`budget`) writes exactly one audit entry, whatever its outcome. The engine's own
    message of a failed query goes into that entry only: never into an exception (nor its
    cause or context), a result or its ``attrs``.
    """

    def __init__(
        self,
        scope: Scope,
        extract: Extract,
        registry: Engine,
        *,
        user: str,
        dialect: str = "postgres",
        limits: Limits | None = None,
    ) -> None:
        super().__init__(scope, registry, user=user, dialect=dialect, limits=limits)
        self._extract = extract

    # -- the researcher's surface -------------------------------------------------------

    @property
    def nodes(self) -> tuple[str, ...]:
        return self._extract.nodes

    def sql(self, sql: str, dialect: str | None = None) -> pd.DataFrame:
        """Run one SELECT inside the project's scope; a pandas DataFrame.

        Raises :class:`~sde.errors.ScopeViolation` (naming the rule and the offending
        name) for anything outside the scope, :class:`~sde.errors.QueryFailed` with a
        generic message when the engine fails. A result cut at the row cap warns
        (:class:`~sde.errors.ResultTruncated`) and says so in ``attrs["sde"]`` and in the
        query's audit entry.
        """
        return self._warned(self._execute(sql, dialect))

    def explain(self, sql: str, dialect: str | None = None) -> dict[str, str]:
        """The rewritten SQL, keyed by where it runs (a node, or ``a+b`` for a pooled extract)."""
        start = time.perf_counter()
        try:
            self._check_open()
            prepared = self._prepare(sql, dialect)
            out = {self._target: prepared.sql(self._extract.dialect)}
        except SDEError as err:
            self._record("explain", sql, start, err=err)
            raise
        self._record("explain", sql, start, rewritten=self._rewritten(prepared))
        return out

    def sql_dp(
        self,
        sql: str,
        epsilon: float | None = None,
        delta: float | None = None,
        accuracy: float | Mapping[str, float] | None = None,
        alpha: float = 0.05,
        **options: Any,
    ) -> pd.DataFrame:
        """A differentially private answer to an aggregate query, charged to the budget.

        A DataFrame shaped like the query's result with noisy values in place; per-cell
        confidence half-widths at ``1 - alpha`` and the cost are in ``df.attrs["dp"]``.
        ``accuracy=`` asks for a target half-width instead of an epsilon. Other options
        (``bounds``, ``keys``, ``max_rows_per_person``, ``max_groups_per_person``,
        ``noise``, ``confirm``, ``dialect``) are those of :meth:`sde.dp.engine.DPEngine.sql_dp`.
        Raises :class:`~sde.errors.BudgetExhausted` (spending nothing) when the project
        cannot afford it.
        """
        start = time.perf_counter()
        engine = self._dp_begin(sql, start, options.get("dialect"))
        # From here the engine writes the query's one entry, whatever the outcome; with a
        # spend or a refund, in the ledger's transaction.
        audit = self._dp_audit(sql, start)
        return engine.sql_dp(sql, epsilon, delta, accuracy, alpha, audit=audit, **options)

    def __repr__(self) -> str:
        return (
            f"<sde.Connection project={self.project} access={self.scope.access} nodes={self.nodes}>"
        )

    # -- for the dp layer ---------------------------------------------------------------

    def _run_exact(self, sql: str, dialect: str | None) -> pd.DataFrame:
        """Every scope rule except the access mode, no row cap, no audit entry of its own
        (the DP engine's entry for the query covers it); :class:`ExactRunner` serves it."""
        self._check_open()
        prepared = self._prepare(sql, dialect, enforce_access=False)
        self._remember_hash(sql, self._rewritten(prepared))
        return self._fetch(prepared, EXACT_ROWS)

    # -- internals ----------------------------------------------------------------------

    def _release(self) -> None:
        self._extract.close()

    @property
    def _target(self) -> str:
        return "+".join(self._extract.nodes)

    def _execute(self, sql: str, dialect: str | None) -> pd.DataFrame:
        """:meth:`sql` and its one audit entry."""
        start = time.perf_counter()
        prepared: Prepared | None = None
        try:
            self._check_sql()
            prepared = self._prepare(sql, dialect)
            frame = self._fetch(prepared, self.limits.row_cap)
        except EngineFailure as failure:  # before SDEError: audited as an error, not a refusal
            self._record("sql", sql, start, rewritten=self._rewritten(prepared), failure=failure)
            timeout = failure.rule == "engine.timeout"
        except SDEError as err:
            self._record("sql", sql, start, rewritten=self._rewritten(prepared), err=err)
            raise
        else:
            info = frame.attrs["sde"]
            note = info["message"] if info.get("truncated") else None
            self._record(
                "sql", sql, start, rewritten=self._rewritten(prepared), rows=len(frame), note=note
            )
            return frame
        # Raised here, outside the handler: the error carries no cause or context that holds
        # the engine's message.
        if timeout:
            raise QueryFailed(
                "limits.timeout",
                f"the query ran longer than {self.limits.timeout_s:g} s and was stopped",
            )
        raise QueryFailed("engine.error", _ENGINE_ERROR)

    def _fetch(self, prepared: Prepared, cap: int) -> pd.DataFrame:
        """Run ``prepared`` on the extract: at most ``cap`` rows (more: cut, or refused for
        an exact run). Raises :class:`~sde.backends.failures.EngineFailure` (the engine failed)
        or another :class:`SDEError`."""
        engine_sql = prepared.sql(self._extract.dialect)
        raw = self._extract.run(engine_sql, timeout_s=self.limits.timeout_s, max_rows=cap + 1)
        return self._finish(normalise(raw), prepared, cap)

    def _finish(self, frame: pd.DataFrame, prepared: Prepared, cap: int) -> pd.DataFrame:
        info: dict[str, Any] = {"project": self.project, "nodes": list(self.nodes)}
        if len(frame) > cap and cap == EXACT_ROWS:
            raise QueryFailed("limits.exact-rows", f"more than {cap} exact totals")
        if len(frame) > cap:
            frame = frame.iloc[:cap]
            info["truncated"] = True
            info["message"] = f"the result was cut to the first {cap} rows (the row cap)"
        _threshold_note(frame, prepared)
        frame.attrs["sde"] = info
        return frame

    def _rewritten(self, prepared: Prepared | None) -> str | None:
        """The hash of the SQL that ran (or would have), for the audit entry."""
        if prepared is None:
            return None
        try:
            return prepared.sha256(self._extract.dialect)
        except SDEError:
            return None


def connect(
    path: str | Path | None = None,
    scope: Scope | dict[str, Any] | str | Path | None = None,
    *,
    user: str | None = None,
    registry: str | None = None,
    dialect: str = "postgres",
    row_cap: int = Limits.row_cap,
    timeout_s: float = Limits.timeout_s,
    cache_dir: str | Path | None = None,
    node: str | None = None,
    schema: str = "public",
    spark: Any = None,
    refresh: bool = False,
    shared: bool = True,
    cache: ExtractCache | None = None,
    gateway: str | None = None,
    token: str | None = None,
    project: str | None = None,
    nodes: Mapping[str, str] | None = None,
    secret_file: str | Path | None = None,
) -> Connection | GatewayConnection | FederatedConnection:
    """Open a connection scoped to one approved project.

    With ``gateway=`` (a URL; ``token=`` and ``project=`` beside it), or with no data at all
    (a notebook: ``SDE_GATEWAY_URL``, ``JUPYTERHUB_API_TOKEN`` and ``SDE_PROJECT``), a
    :class:`~sde.client.GatewayConnection` with the same methods and errors.

    ``path``: a node file or a folder of node files (DuckDB); or a PostgreSQL URL or
    libpq DSN of one node's database (``schema`` holds its tables, ``node`` names it,
    default the schema's name); or, with ``spark=`` (a SparkSession) and ``node=``,
    the warehouse folder holding ``<node>/<table>/*.parquet``.
    ``registry``: SQLAlchemy URL of the registry (default: a SQLite file beside the
    data). ``dialect``: the SQL dialect you write (postgres, duckdb or spark).
    The engine is the one entry of :data:`sde.proxy.barrier.sources.SOURCES` that
    claims the input; an input two entries claim is refused (``connect.ambiguous``).
    ``shared``: connections of one process that need the same extract (same source
    data, scope version and project key) share one, built once, closed with the last of
    them (:mod:`sde.proxy.barrier.cache`; ``cache`` defaults to the process's);
    ``shared=False`` builds a private extract. ``refresh=True`` rebuilds it.

    With ``nodes=`` (node name -> base URL of its agent, ``sde serve node``), a
    :class:`~sde.federation.coordinator.FederatedConnection` that sends every query to the
    node agents and merges their answers; ``secret_file`` holds the secret shared with
    them and ``registry`` (required) the project key, budget and audit log.
    """
    if nodes is not None:
        return _connect_federated(
            nodes,
            secret_file,
            scope,
            registry,
            user=user,
            dialect=dialect,
            limits=Limits(row_cap=row_cap, timeout_s=timeout_s),
        )
    if gateway is not None or (path is None and spark is None):
        from sde.client import connect_gateway

        return connect_gateway(gateway, token=token, project=project)
    if scope is None:
        raise ConfigurationError("connect.scope", "pass the project's scope (scope=...)")
    the_scope = Scope.load(scope)
    if the_scope.is_expired():
        raise AccessDenied(
            "access.expired",
            f"project {the_scope.project}'s approval expired on {the_scope.expires}",
        )
    limits = Limits(row_cap=row_cap, timeout_s=timeout_s)
    user = user or getpass.getuser()
    request = ExtractRequest(
        path=str(path) if path is not None else None,
        scope=the_scope,
        plan=ExtractPlan.of(the_scope),
        registry=registry,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        node=node,
        schema=schema,
        spark=spark,
        refresh=refresh,
    )
    opened = source_for(request).open(request)
    engine = open_registry(opened.registry)
    key = KeyStore(engine).project_key(the_scope.project)
    extract = _extract(opened, the_scope, key, refresh=refresh, shared=shared, cache=cache)
    try:
        return Connection(the_scope, extract, engine, user=user, dialect=dialect, limits=limits)
    except BaseException:
        extract.close()
        raise


def _connect_federated(
    nodes: Mapping[str, str],
    secret_file: str | Path | None,
    scope: Scope | dict[str, Any] | str | Path | None,
    registry: str | None,
    *,
    user: str | None,
    dialect: str,
    limits: Limits,
) -> FederatedConnection:
    """``connect(nodes=...)``: the coordinator in this process (:mod:`sde.federation`)."""
    from sde.federation.coordinator import connect_federated
    from sde.federation.signing import read_secret

    if scope is None:
        raise ConfigurationError("connect.scope", "pass the project's scope (scope=...)")
    if secret_file is None or registry is None:
        raise ConfigurationError(
            "connect.federation",
            "a federated connection needs secret_file= (the secret shared with the node "
            "agents) and registry= (the registry holding the project key)",
        )
    return connect_federated(
        scope,
        nodes,
        read_secret(secret_file),
        registry,
        user=user,
        dialect=dialect,
        limits=limits,
    )


def _extract(
    opened: Opened,
    scope: Scope,
    key: bytes,
    *,
    refresh: bool,
    shared: bool,
    cache: ExtractCache | None,
) -> Extract:
    """A lease on the shared extract (from ``cache``, default the process's), or a private
    extract when not ``shared``."""
    if not shared:
        return opened.build(key)
    the_cache = cache if cache is not None else shared_extracts()
    ident = ExtractKey.of(opened.identity, scope, key)
    return the_cache.lease(ident, lambda: opened.build(key), refresh=refresh)
