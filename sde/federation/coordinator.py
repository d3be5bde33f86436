"""The coordinator: one researcher's query split, sent to every node agent, merged.

A :class:`FederatedConnection` has the pooled :class:`~sde.connection.Connection`'s surface
(``sql``, ``explain``, ``sql_dp``, ``budget``, ``close``, ``project``, ``nodes``; one audit
entry per call, naming the scope version) and reads no data itself. A query:

1. meets the whole pooled proxy pipeline first (:func:`sde.proxy.pipeline.prepare`), so
   its refusals are exactly the pooled ones;
2. is split (:func:`sde.federation.plan.plan_query`) into a node part and a merge part;
3. the node part goes to every node of the scope at once, signed, with the project key
   sealed for the nodes; each node runs it through its own proxy and disclosure control;
4. each answer's signature and columns are checked and the parts merged
   (:func:`sde.federation.merge.merge`).

A node that is down, slower than the timeout, refuses or answers garbage fails the query
with ``federation.node-unavailable`` naming it, unless the call says ``partial=True``: then
the other nodes' answer comes back with ``attrs["sde"]["missing_nodes"]``. Never a silent
partial answer. Differentially private answers run the DP engine over the merged exact
totals of every node, so noise is added once and the budget charged once.

>>> import sde  # doctest: +SKIP
>>> conn = sde.connect(nodes={"lth": "http://127.0.0.1:9001/"}, secret_file="fed.secret",
...                    scope="scope.yaml", registry="sqlite:///registry.sqlite")  # doctest: +SKIP
"""

from __future__ import annotations

import getpass
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlglot
import sqlglot.errors
from sqlalchemy import Engine, select
from sqlglot import exp

from sde.connection import EXACT_ROWS
from sde.errors import (
    AccessDenied,
    ConfigurationError,
    QueryFailed,
    ScopeViolation,
    SDEError,
)
from sde.federation.client import (
    UNAVAILABLE,
    NodeClient,
    NodeFailure,
    check_part,
    small_flags,
    unavailable,
)
from sde.federation.merge import merge
from sde.federation.plan import FederatedPlan, plan_query
from sde.federation.sealing import seal
from sde.federation.wire import NodeRequest, frame_keys, probe_batches
from sde.proxy.context import Limits
from sde.proxy.frames import normalise
from sde.proxy.pipeline import Prepared
from sde.registry.audit_log import AuditEntry
from sde.registry.db import open_registry
from sde.registry.keys import KeyStore
from sde.scope import Scope
from sde.scoped import ExactRunner, ScopedConnection, _dialect, _threshold_note

if TYPE_CHECKING:
    from sde.dp.engine import Outcome

#: Seconds a node has to answer ``GET healthz`` before a DP query (at most the timeout).
HEALTH_S = 5.0


@dataclass
class _Call:
    """What one call learnt on its way (per thread: a connection may serve several)."""

    partial: bool = False
    missing: dict[str, NodeFailure] = field(default_factory=dict)
    failed: dict[str, NodeFailure] = field(default_factory=dict)


class FederatedConnection(ScopedConnection):
    """A project-scoped connection over node agents. Build with :func:`connect_federated`
    (or ``sde.connect(nodes=...)``).

    Every call writes exactly one audit entry, whatever its outcome; a partial answer's
    entry names the missing nodes.
    """

    #: A node that gave no usable answer is an error, not a refusal, in the audit log.
    _ERROR_RULES = frozenset({UNAVAILABLE})

    def __init__(
        self,
        scope: Scope,
        client: NodeClient,
        registry: Engine,
        sealed_key: str,
        *,
        user: str,
        nodes: tuple[str, ...],
        dialect: str = "postgres",
        limits: Limits | None = None,
    ) -> None:
        super().__init__(scope, registry, user=user, dialect=dialect, limits=limits)
        self._nodes = nodes
        self._client = client
        self._sealed = sealed_key
        self._local = threading.local()

    # -- the researcher's surface -------------------------------------------------------

    @property
    def nodes(self) -> tuple[str, ...]:
        return self._nodes

    def sql(self, sql: str, dialect: str | None = None, *, partial: bool = False) -> pd.DataFrame:
        """Run one SELECT across the nodes; a pandas DataFrame, as the pooled connection.

        Raises the pooled connection's refusals, and :class:`~sde.errors.BackendUnavailable`
        (``federation.node-unavailable``, naming the nodes) when a node gives no usable
        answer, unless ``partial=True``: then the answering nodes' result, with
        ``attrs["sde"]["missing_nodes"]``. No node answering fails even then.
        """
        return self._warned(self._execute(sql, dialect, partial))

    def explain(self, sql: str, dialect: str | None = None) -> dict[str, str]:
        """Each node's own rewrite of its part (asked of the node), ``merge``: the merge
        SQL, ``kind``: the plan's kind, and for a per-node plan ``why``. In a ``dp``
        project, the plan of the exact totals a node would send for the query."""
        start = time.perf_counter()
        plan: FederatedPlan | None = None
        exact = self.scope.access == "dp"
        try:
            self._check_open()
            self._prepare(sql, dialect, enforce_access=not exact)
            plan = plan_query(sql, self._context(dialect, enforce_access=not exact))
            kind = "exact" if exact else _kind(plan)
            answers = self._ask_all(
                lambda node: self._client.document(
                    node,
                    "v1/explain",
                    self._body(plan, kind, node, "explain"),
                    timeout_s=self.limits.timeout_s,
                ),
                partial=False,
            )
            out = {node: _explained(node, answers[node]) for node in self.nodes}
        except SDEError as err:
            self._record("explain", sql, start, err=err, rewritten=_plan_hash(plan))
            raise
        out.update(_describe(plan))
        self._record("explain", sql, start, rewritten=_plan_hash(plan))
        return out

    def sql_dp(
        self,
        sql: str,
        epsilon: float | None = None,
        delta: float | None = None,
        accuracy: float | Mapping[str, float] | None = None,
        alpha: float = 0.05,
        *,
        partial: bool = False,
        **options: Any,
    ) -> pd.DataFrame:
        """A differentially private answer over every node's exact totals, noised once and
        charged once; the options are :meth:`sde.connection.Connection.sql_dp`'s.

        A node that fails its health check first fails the query free
        (``federation.node-unavailable``); one that fails during the exact run fails it
        charged, like any failed DP run (the failure might depend on the data). With
        ``partial=True`` there is no health check: the answering nodes' totals are noised
        and ``attrs["sde"]["missing_nodes"]`` names the others.
        """
        start = time.perf_counter()

        def ready() -> None:
            if not partial:  # a node known to be down fails the query before any spend
                self._ask_all(self._health, partial=False)

        engine = self._dp_begin(sql, start, options.get("dialect"), ready=ready)
        call = self._begin(partial)
        try:
            frame = engine.sql_dp(
                sql, epsilon, delta, accuracy, alpha, audit=self._dp_audit(sql, start), **options
            )
        except QueryFailed as err:
            if err.rule == "dp.engine-error" and call.failed:
                raise unavailable(call.failed, charged=True) from None
            raise
        finally:
            self._local.call = None
        info = self._info(None, call)
        _partial_release(self.registry, self.project, frame.attrs.get("dp", {}), info)
        frame.attrs["sde"] = info
        return frame

    def __repr__(self) -> str:
        return (
            f"<sde.FederatedConnection project={self.project} access={self.scope.access} "
            f"nodes={self.nodes}>"
        )

    # -- the query ------------------------------------------------------------------------

    def _execute(self, sql: str, dialect: str | None, partial: bool) -> pd.DataFrame:
        """:meth:`sql` and its one audit entry."""
        start = time.perf_counter()
        plan: FederatedPlan | None = None
        call = _Call(partial)
        try:
            self._check_sql()
            prepared = self._prepare(sql, dialect)
            plan = plan_query(sql, self._context(dialect))
            parts = self._gather(plan, _kind(plan), call)
            frame = self._merged(plan, parts, prepared)
        except SDEError as err:
            self._record("sql", sql, start, err=err, rewritten=_plan_hash(plan))
            raise
        frame.attrs["sde"] = info = {**frame.attrs.get("sde", {}), **self._info(plan, call)}
        note = "; ".join(n for n in (_missing_note(call), info.get("message")) if n) or None
        self._record("sql", sql, start, rewritten=_plan_hash(plan), rows=len(frame), note=note)
        return frame

    def _gather(self, plan: FederatedPlan, kind: str, call: _Call) -> dict[str, pd.DataFrame]:
        """Every node's checked part (or the failure, unless partial and someone answered);
        in an ``aggregates`` project, without the groups small at some node (round 2)."""

        def ask(node: str) -> pd.DataFrame:
            body = self._body(plan, kind, node, "query")
            frame = self._client.frame(node, "v1/query", body, timeout_s=self.limits.timeout_s)
            check_part(node, frame, plan)
            return frame

        parts = self._ask_all(ask, partial=call.partial, call=call)
        if kind == "aggregate" and plan.persons:
            parts = self._without_small(plan, parts)
        return parts

    def _without_small(
        self, plan: FederatedPlan, parts: dict[str, pd.DataFrame]
    ) -> dict[str, pd.DataFrame]:
        """Round 2 of the cross-node rule (docs/federation.md): a node sends its large groups
        only, so each node is asked which of the groups the others sent are small at it
        (nothing else comes back); a group small at any node is dropped from every part,
        before the merge, as if it never was."""
        keys = {node: frame_keys(part, plan.keys) for node, part in parts.items()}
        every = set().union(*(set(k) for k in keys.values()))
        asked = {node: sorted(every - set(mine), key=repr) for node, mine in keys.items()}
        asked = {node: probe for node, probe in asked.items() if probe}
        if not asked:
            return parts

        def ask(node: str) -> list[tuple[Any, ...]]:
            # In batches a node takes: at most its max_rows keys, under its body limit.
            found: list[tuple[Any, ...]] = []
            keys_left = iter(asked[node])
            for probe in probe_batches(asked[node], max_keys=self.limits.row_cap + 1):
                chunk = [next(keys_left) for _ in probe]
                body = self._body(plan, "aggregate", node, "query", probe_keys=probe)
                frame = self._client.frame(node, "v1/query", body, timeout_s=self.limits.timeout_s)
                flags = small_flags(node, frame, probe)
                found += [k for k, small in zip(chunk, flags, strict=True) if small]
            return found

        answers, failures = self._client.fan_out(
            tuple(asked), ask, timeout_s=self.limits.timeout_s, fail_fast=True
        )
        if failures:
            raise unavailable(failures)
        small = set().union(*(set(found) for found in answers.values()))
        return {
            node: part.loc[[k not in small for k in keys[node]]].reset_index(drop=True)
            for node, part in parts.items()
        }

    def _ask_all(self, ask: Any, *, partial: bool, call: _Call | None = None) -> dict[str, Any]:
        """``ask`` of every node; the failures raise, unless ``partial`` may leave them out.

        An ``aggregates`` project gets no partial answers: every cell of one holds the
        other nodes' persons only, so the full answer (before or after) minus the partial
        one is the missing node's own count of each cell, which the cross-node rule exists
        to withhold; a researcher may even make a node fail at will (too many groups, a
        cast that fails on its data only). Rows projects see the rows anyway, and each DP
        answer is noised and charged.
        """
        answers, failures = self._client.fan_out(
            self.nodes, ask, timeout_s=self.limits.timeout_s, fail_fast=not partial
        )
        if call is not None:
            call.failed = failures
        refused = partial and self.scope.access == "aggregates"
        if failures and (not partial or not answers or refused):
            raise unavailable(failures, partial_refused=refused)
        if call is not None:
            call.missing = failures
        return answers

    def _merged(
        self, plan: FederatedPlan, parts: Mapping[str, pd.DataFrame], prepared: Prepared
    ) -> pd.DataFrame:
        threshold = self.scope.threshold if self.scope.access == "aggregates" else None
        cut = sorted(node for node, part in parts.items() if part.attrs.get("truncated"))
        try:
            frame = normalise(merge(plan, parts, threshold=threshold))
        except SDEError:
            raise
        except Exception:  # parts that passed every check but do not stack: fail closed
            raise QueryFailed(
                "federation.merge",
                f"the answers of nodes {', '.join(parts)} could not be merged (their values "
                "do not fit together); ask the nodes' custodians",
            ) from None
        return _finish(frame, prepared, self.limits.row_cap, cut)

    def _body(
        self,
        plan: FederatedPlan,
        kind: str,
        node: str,
        action: str,
        *,
        probe_keys: list[list[Any]] | None = None,
    ) -> bytes:
        """The signed body for ``node``'s ``action`` route (it refuses one meant for another
        node or route, so a captured request is good there only)."""
        max_rows = EXACT_ROWS if kind == "exact" else self.limits.row_cap + 1
        request = NodeRequest(
            project=self.project,
            scope=self.scope.to_dict(),
            scope_version=self.scope.version,
            key=self._sealed,
            sql=plan.node_sql,
            dialect=plan.dialect,
            kind=kind,
            timeout_s=self.limits.timeout_s,
            max_rows=max_rows,
            node=node,
            action=action,
            probe_keys=probe_keys,
        )
        return request.to_bytes()

    def _info(self, plan: FederatedPlan | None, call: _Call) -> dict[str, Any]:
        info: dict[str, Any] = {"project": self.project, "nodes": list(self.nodes)}
        if plan is not None:
            info["federation"] = plan.kind
            if plan.kind == "per-node":
                info["why"] = plan.why
        if call.partial:
            info["missing_nodes"] = sorted(call.missing)
        return info

    # -- for the dp layer ---------------------------------------------------------------

    def _health(self, node: str) -> None:
        self._client.check_health(node, timeout_s=min(self.limits.timeout_s, HEALTH_S))

    def _begin(self, partial: bool) -> _Call:
        call = _Call(partial)
        self._local.call = call
        return call

    def _run_exact(self, sql: str, dialect: str | None) -> pd.DataFrame:
        """The DP engine's exact totals: every scope rule but the access mode, at every node
        (kind ``exact``); no row cap, no audit entry of its own.

        The split of :func:`plan_query` when it has one (merged exactly); otherwise, since
        the engine's exact SQL handles one person at a time and a person lives on one node,
        each node's totals as they are, stacked: the engine sums partial totals per cell
        itself (:func:`sde.dp.release.merge`) and adds its noise once, to the sums.
        """
        self._check_open()
        call = getattr(self._local, "call", None) or _Call()
        name = _dialect(dialect or self.dialect)
        self._prepare(sql, name, enforce_access=False)
        try:
            plan = plan_query(sql, self._context(name, enforce_access=False))
        except ScopeViolation:
            plan = None
        if plan is not None and plan.kind == "aggregate":
            self._remember_exact(sql, plan)
            return normalise(merge(plan, self._gather(plan, "exact", call), threshold=None))
        stacked = exact_part(sql, name)
        self._remember_exact(sql, stacked)
        parts = self._gather(stacked, "exact", call)
        names = list(stacked.columns)
        frames = [part.set_axis(names, axis=1) for part in parts.values()]
        return normalise(pd.concat(frames, ignore_index=True))

    def _remember_exact(self, sql: str, plan: FederatedPlan) -> None:
        self._remember_hash(sql, _plan_hash(plan))

    def _dp_detail(self, outcome: Outcome) -> str | None:
        """A partial answer's entry names the missing nodes."""
        call = getattr(self._local, "call", None)
        if outcome.outcome == "ok" and call is not None and call.missing:
            return _missing_note(call)
        return outcome.detail

    # -- internals ----------------------------------------------------------------------

    def _release(self) -> None:
        self._client.close()


#: The DP engine's :class:`~sde.dp.engine.ScopedRunner` over the nodes.
_ExactRunner = ExactRunner


# -- helpers ------------------------------------------------------------------------------

#: How a partial answer's audit entry begins (the nodes, then why, in brackets).
PARTIAL_NOTE = "partial answer without node(s) "


def _partial_release(
    registry: Engine, project: str, dp: Mapping[str, Any], info: dict[str, Any]
) -> None:
    """Mark a DP answer served from a stored release that was made with ``partial=True``.

    The DP engine answers an identical query from its stored release at no cost; if that
    release lacked nodes, the answer says so. Which releases were partial is in the audit
    log: the entry of the query that made release N begins with :data:`PARTIAL_NOTE` and
    carries the ledger's note ``release N: spent ...`` (written in the spend's transaction).
    """
    release = dp.get("release_id")
    if not dp.get("cached") or not isinstance(release, int):
        return
    pattern = f"{PARTIAL_NOTE}%; release {release}: spent %"
    with registry.connect() as conn:
        detail = conn.execute(
            select(AuditEntry.detail)
            .where(
                AuditEntry.project == project,
                AuditEntry.action == "sql_dp",
                AuditEntry.outcome == "ok",
                AuditEntry.detail.like(pattern),
            )
            .limit(1)
        ).scalar()
    if detail is None:
        return
    missing = detail[len(PARTIAL_NOTE) :].split(" (", 1)[0].split(", ")
    info["missing_nodes"] = missing
    info["message"] = (
        f"served from release {release}, made without node(s) {', '.join(missing)} (partial=True)"
    )


def exact_part(sql: str, dialect: str) -> FederatedPlan:
    """The DP engine's exact-totals query as a node part that keeps each node's totals:
    ``SELECT <key> AS f_k0 .., MAX(<total>) AS f_a0 .. FROM (<sql>) GROUP BY <keys>``.

    The outer query already groups by its keys, so each group is one row and ``MAX`` gives
    it back unchanged (the node part's shape needs an aggregate). ``columns``: the exact
    query's own output names, to put back on each node's part.

    >>> part = exact_part("SELECT k AS _dp_k0, SUM(n) AS n_rows FROM t GROUP BY k", "postgres")
    >>> part.node_sql.split(" FROM (")[0]
    'SELECT "_dp_k0" AS "f_k0", MAX("n_rows") AS "f_a0"'
    >>> part.node_sql.rsplit(") AS ", 1)[1]
    '"exact_totals" GROUP BY "_dp_k0"'
    >>> part.columns
    ('_dp_k0', 'n_rows')
    """
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.ParseError:
        tree = None
    if not isinstance(tree, exp.Select):
        raise _dp_shape("it is not one SELECT")
    group = tree.args.get("group")
    grouped = list(group.expressions) if group is not None else []
    keys, totals = [], []
    for output in tree.expressions:
        inner = output.this if isinstance(output, exp.Alias) else output
        name = output.alias_or_name
        if not name:
            raise _dp_shape("an output has no name")
        if any(inner == g or (isinstance(g, exp.Column) and g.name == name) for g in grouped):
            keys.append(name)
        elif inner.find(exp.AggFunc) is not None:
            totals.append(name)
        else:
            raise _dp_shape(f"output {name} is neither a key nor a total")
    source = tree.subquery("exact_totals")
    outputs = [
        *(
            exp.alias_(exp.column(k, quoted=True), f"f_k{i}", quoted=True)
            for i, k in enumerate(keys)
        ),
        *(
            exp.alias_(exp.Max(this=exp.column(t, quoted=True)), f"f_a{j}", quoted=True)
            for j, t in enumerate(totals)
        ),
    ]
    node = exp.select(*outputs).from_(source)
    if keys:
        node = node.group_by(*(exp.column(k, quoted=True) for k in keys))
    part = (*(f"f_k{i}" for i in range(len(keys))), *(f"f_a{j}" for j in range(len(totals))))
    return FederatedPlan(
        kind="aggregate",
        node_sql=node.sql(dialect=dialect, identify=True),
        dialect=dialect,
        merge_sql="-- stacked: the DP engine sums each cell's partial totals",
        columns=(*keys, *totals),
        part_columns=part,
        part_types=tuple("" for _ in part),
        keys=len(keys),
    )


def _dp_shape(why: str) -> QueryFailed:
    return QueryFailed(
        "federation.dp-shape", f"the DP engine's exact totals cannot be sent to the nodes: {why}"
    )


def _kind(plan: FederatedPlan) -> str:
    """The wire kind of a plan's node part."""
    return "aggregate" if plan.kind == "aggregate" else "rows"


def _plan_hash(plan: FederatedPlan | None) -> str | None:
    """The hash of a plan's SQL (node part and merge), for the audit entry."""
    if plan is None:
        return None
    text = plan.node_sql + "\n-- merge\n" + plan.merge_sql
    return hashlib.sha256(text.encode()).hexdigest()


def _describe(plan: FederatedPlan | None) -> dict[str, str]:
    if plan is None:
        return {}
    out = {"merge": plan.merge_sql, "kind": plan.kind}
    if plan.why:
        out["why"] = plan.why
    return out


def _explained(node: str, doc: Mapping[str, Any]) -> str:
    sql = doc.get("sql")
    if not isinstance(sql, str):
        raise unavailable(
            {node: NodeFailure(node, "answered an explain without its SQL")}, charged=False
        )
    return sql


def _finish(frame: pd.DataFrame, prepared: Prepared, cap: int, cut: list[str]) -> pd.DataFrame:
    """The pooled connection's finishing: the row cap, the threshold note, no internals.
    ``cut``: nodes that cut their rows at their own row cap (the result may miss rows)."""
    info: dict[str, Any] = {}
    if len(frame) > cap or cut:
        frame = frame.iloc[:cap]
        info["truncated"] = True
        info["message"] = f"the result was cut to the first {cap} rows (the row cap)"
        if cut:
            info["message"] += f"; node(s) {', '.join(cut)} cut their rows at their row cap"
    _threshold_note(frame, prepared)
    frame.attrs["sde"] = info
    return frame


def _missing_note(call: _Call) -> str | None:
    if not call.missing:
        return None
    names = sorted(call.missing)
    why = "; ".join(f"{n}: {call.missing[n].reason}" for n in names)
    return f"{PARTIAL_NOTE}{', '.join(names)} ({why})"


# -- construction -------------------------------------------------------------------------


def connect_federated(
    scope: Scope | Mapping[str, Any] | str | Path,
    nodes: Mapping[str, str],
    secret: bytes,
    registry: Engine | str,
    *,
    user: str | None = None,
    dialect: str = "postgres",
    limits: Limits | None = None,
) -> FederatedConnection:
    """A :class:`FederatedConnection` for one project.

    ``scope``: the project's scope (a :class:`~sde.scope.Scope`, dict, YAML text or file).
    ``nodes``: node name -> base URL of its agent (``http://127.0.0.1:9001/``); the
    project's own ``nodes`` choose among them (default all). ``secret``: the secret shared
    with the agents (signatures, the sealed project key). ``registry``: the registry (an
    Engine or a SQLAlchemy URL) holding the project key, the budget ledger and the audit
    log. ``limits``: row cap and per-node timeout (``timeout_s``) among them.
    """
    the_scope = Scope.load(scope)
    if the_scope.is_expired():
        raise AccessDenied(
            "access.expired",
            f"project {the_scope.project}'s approval expired on {the_scope.expires}",
        )
    names = _scope_nodes(the_scope, nodes)
    engine = registry if isinstance(registry, Engine) else open_registry(registry)
    key = KeyStore(engine).project_key(the_scope.project)
    client = NodeClient({n: nodes[n] for n in names}, secret)
    return FederatedConnection(
        the_scope,
        client,
        engine,
        seal(secret, the_scope.project, key),
        user=user or getpass.getuser(),
        nodes=names,
        dialect=dialect,
        limits=limits,
    )


def _scope_nodes(scope: Scope, nodes: Mapping[str, str]) -> tuple[str, ...]:
    if not nodes:
        raise ConfigurationError("federation.no-nodes", "pass at least one node (nodes={...})")
    if scope.nodes is None:
        return tuple(nodes)
    unknown = [n for n in scope.nodes if n not in nodes]
    if unknown:
        raise ConfigurationError(
            "federation.unknown-node",
            f"project {scope.project}'s nodes {', '.join(unknown)} have no agent address "
            f"(known: {', '.join(nodes)})",
        )
    return tuple(scope.nodes)


__all__ = ["UNAVAILABLE", "FederatedConnection", "connect_federated"]
