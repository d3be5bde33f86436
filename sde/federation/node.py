"""A node's query path: one verified request, run inside the project's scope on this node.

The node never trusts its coordinator beyond the signature: it rebuilds the project's
:class:`~sde.scope.Scope` from the request and checks it names this node
(``nodes.not-allowed``), builds (once per project, scope version and key) the project's
extract from its own store with the workbench's extract sources, and runs the SQL through
its own proxy (:func:`sde.proxy.pipeline.prepare`):

- ``aggregate``: the outermost SELECT must have the node-part shape of docs/federation.md
  (``f_k*`` then ``f_a*`` outputs, ``GROUP BY`` the keys, no ``HAVING``, ``ORDER BY``,
  ``LIMIT``, ``OFFSET``, ``DISTINCT``, ``QUALIFY`` or window at its top), else
  ``federation.node-shape``. In an ``aggregates`` project the access mode adds the hidden
  person counts (the proxy's threshold rule is off: ``RuleContext.node_part``) and
  :mod:`sde.federation.node_sdc` keeps the groups that are not small only (round 1): a
  small group's keys do not leave the node. More such groups than ``max_rows`` is refused
  (``federation.too-many-groups``), never cut; small groups do not count. With
  ``probe_keys`` (round 2) the answer is one ``__sde_small`` per probed key.
- ``exact``: only for a project with a privacy budget; every rule but the access mode.
- ``rows``: only in a ``rows`` project; the row cap applies and a cut is reported.

An engine failure is logged on the node with the engine's words; the answer carries only
the workbench's generic sentence.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlglot import exp

from sde.backends.failures import EngineFailure
from sde.errors import AccessDenied, ConfigurationError, InvalidInput, QueryFailed, ScopeViolation
from sde.federation import node_sdc
from sde.federation.sealing import unseal
from sde.federation.wire import MAX_ROWS, NodeRequest, arrow_to_frame, frame_to_arrow
from sde.proxy.barrier.cache import ExtractCache, ExtractKey, Lease
from sde.proxy.barrier.plan import ExtractPlan
from sde.proxy.barrier.sources import (
    ExtractRequest,
    Opened,
    is_postgres_address,
    node_in_scope,
    source_for,
)
from sde.proxy.context import Limits, RuleContext
from sde.proxy.frames import normalise
from sde.proxy.parse import parse
from sde.proxy.pipeline import Prepared, prepare
from sde.scope import Scope

log = logging.getLogger("sde.federation.node")

#: Engines a node serves, and the sqlglot dialect each runs.
BACKENDS: dict[str, str] = {"duckdb": "duckdb", "postgresql": "postgres", "spark": "spark"}
#: Rows a node returns at most for ``rows`` (whatever the request asks).
NODE_ROW_CAP = Limits.row_cap
#: Small groups a probe (round 2) may match at most before it is refused: the most a
#: frame holds. What it matches is bounded by the probed values (each key column's), not
#: by how many other small groups the node has.
PROBE_SCAN = MAX_ROWS
#: Select clauses a node part may have at its top (anything else is refused by name).
_PART_CLAUSES = frozenset({"expressions", "from_", "joins", "where", "group", "with_"})
_CLAUSE_NAMES = {"order": "ORDER BY", "windows": "WINDOW", "distinct": "DISTINCT"}
#: The sentence an engine failure shows (the engine's own words stay in the node's log).
_ENGINE_ERROR = (
    "the node's database could not run this query (for example a value that cannot be "
    "cast, or a division by zero); the node's operators have the details"
)


@dataclass(frozen=True)
class NodeStore:
    """Where this node's OMOP data lives."""

    name: str
    #: A DuckDB node file, a PostgreSQL URL, or a Spark warehouse folder.
    data: str
    backend: str
    #: PostgreSQL: the schema holding the node's tables (default: the node's name).
    schema: str | None = None

    def check(self) -> None:
        """Refuse a store that cannot be served, naming what is wrong."""
        if self.backend not in BACKENDS:
            raise ConfigurationError(
                "node.backend",
                f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}",
            )
        if self.backend == "duckdb":
            path = Path(self.data)
            if not path.is_file():
                raise ConfigurationError("node.data", f"node file {path} does not exist")
            if path.stem != self.name:
                raise ConfigurationError(
                    "node.data", f"node file {path} is not named after node {self.name}"
                )
        if self.backend == "postgresql" and not is_postgres_address(self.data):
            raise ConfigurationError(
                "node.data", "a PostgreSQL node's data is a postgresql:// URL or a libpq DSN"
            )
        if self.backend == "spark" and not (Path(self.data) / self.name).is_dir():
            raise ConfigurationError(
                "node.data", f"warehouse {self.data} has no folder for node {self.name}"
            )


@dataclass
class Answer:
    """What the node sends back: a frame, and whether it was cut at the row cap."""

    frame: pd.DataFrame
    truncated: bool = False
    row_cap: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Node:
    """One node's query path over its own store; thread-safe."""

    def __init__(self, store: NodeStore, secret: bytes, *, spark: Any = None) -> None:
        store.check()
        self.store = store
        self.name = store.name
        self._secret = secret
        self._spark = spark
        if store.backend == "spark" and spark is None:
            from sde.backends.spark import local_session

            self._spark = local_session()
        self._extracts = _Extracts()

    # -- the two routes ---------------------------------------------------------------

    def query(self, request: NodeRequest) -> Answer:
        """Run ``request``; its checked answer, or an :class:`~sde.errors.SDEError`.

        An aggregate part of an ``aggregates`` project keeps its large groups only (the
        cap counts those); with ``probe_keys`` it is round 2: one ``__sde_small`` per key.
        """
        scope, key, prepared = self._checked(request)
        protected = request.kind == "aggregate" and scope.access == "aggregates"
        if request.probe_keys is not None and not protected:
            raise ScopeViolation(
                "federation.kind",
                f"project {scope.project}: probe_keys are asked of an aggregate part in an "
                "aggregates project only",
            )
        lease = self._extracts.get(self._opened(scope), scope, key)
        if request.probe_keys is not None:
            return self._probe(lease, prepared, request, scope.threshold)
        cap = self._cap(request)
        if protected:
            prepared = node_sdc.large_only(prepared, scope.threshold)
        frame = self._run(lease, prepared, request, cap + 1)
        if request.kind == "rows":
            return self._rows(frame, cap)
        if len(frame) > cap:
            what = "groups" if request.kind == "aggregate" else "exact totals"
            raise ScopeViolation(
                "federation.too-many-groups",
                f"the node part has more than {cap:,} {what} on node {self.name}; "
                "a node part is never cut",
            )
        if protected:
            frame = node_sdc.protect(frame, scope.threshold)
        elif any(str(c).lower().startswith("__sde") for c in frame.columns):
            raise QueryFailed("aggregates.unchecked", "the node part has an internal column")
        return Answer(frame)

    def explain(self, request: NodeRequest) -> dict[str, Any]:
        """The node's rewritten SQL for ``request`` (checked as :meth:`query` checks it)."""
        if request.probe_keys is not None:
            raise InvalidInput(
                "federation.bad-request", "bad request: probe_keys are for /v1/query only"
            )
        scope, _, prepared = self._checked(request)
        dialect = BACKENDS[self.store.backend]
        return {
            "node": self.name,
            "kind": request.kind,
            "engine": self.store.backend,
            "sql": prepared.sql(dialect),
            "threshold": scope.threshold if scope.access == "aggregates" else None,
        }

    def close(self) -> None:
        self._extracts.close()

    # -- checks -----------------------------------------------------------------------

    def _checked(self, request: NodeRequest) -> tuple[Scope, bytes, Prepared]:
        scope = _scope(request)
        node_in_scope(self.name, scope)
        _check_kind(request.kind, scope)
        key = unseal(self._secret, request.project, request.key)
        ctx = RuleContext(
            scope,
            request.dialect,
            Limits(row_cap=self._cap(request), timeout_s=request.timeout_s),
            enforce_access=request.kind != "exact",
            node_part=request.kind == "aggregate",
        )
        if request.kind in ("aggregate", "exact"):
            check_shape(parse(request.sql, ctx), scope.project)
        return scope, key, prepare(request.sql, ctx)

    def _cap(self, request: NodeRequest) -> int:
        return min(request.max_rows, NODE_ROW_CAP) if request.kind == "rows" else request.max_rows

    # -- running ----------------------------------------------------------------------

    def _opened(self, scope: Scope) -> Opened:
        store = self.store
        request = ExtractRequest(
            path=store.data,
            scope=scope,
            plan=ExtractPlan.of(scope),
            registry="sqlite://",  # never opened: the key comes sealed in the request
            node=self.name,
            schema=store.schema or self.name,
            spark=self._spark if store.backend == "spark" else None,
        )
        source = source_for(request)
        if source.engine != store.backend:
            raise ConfigurationError(
                "node.backend", f"{store.data!r} is a {source.engine} node, not {store.backend}"
            )
        return source.open(request)

    def _run(
        self, lease: Lease, prepared: Prepared, request: NodeRequest, max_rows: int
    ) -> pd.DataFrame:
        engine_sql = prepared.sql(lease.dialect)
        try:
            raw = lease.run(engine_sql, timeout_s=request.timeout_s, max_rows=max_rows)
        except EngineFailure as caught:
            failure = caught
        else:
            return normalise(raw)
        # The engine's words go to the node's log only, never into the answer.
        log.warning(
            "node %s: project %s: engine failure %s: %s",
            self.name,
            request.project,
            failure.rule,
            failure.engine_message,
        )
        if failure.rule == "engine.timeout":
            raise QueryFailed(
                "limits.timeout",
                f"the query ran longer than {request.timeout_s:g} s on node {self.name} "
                "and was stopped",
            )
        raise QueryFailed("engine.error", _ENGINE_ERROR)

    def _probe(
        self, lease: Lease, prepared: Prepared, request: NodeRequest, threshold: int
    ) -> Answer:
        """Round 2: for each probed key, whether it is a small group here; nothing else.

        The node reads the keys of its small groups whose every key value is among the
        probed ones (:func:`node_sdc.small_only`: what it reads depends on the probe, not
        on how many other small groups it has) and matches them exactly, as keys travel
        (:func:`sde.federation.wire.key_of`)."""
        probed = request.probe_keys or []
        keys = sum(1 for c in _output_names(prepared) if node_sdc.KEY.match(c))
        query = node_sdc.small_only(prepared, threshold, probed)
        small = self._run(lease, query, request, PROBE_SCAN + 1)
        if len(small) > PROBE_SCAN:  # never cut: a cut could drop a probed small key
            raise ScopeViolation(
                "federation.too-many-groups",
                f"a probe matched more than {PROBE_SCAN:,} groups on node {self.name}",
            )
        small = arrow_to_frame(frame_to_arrow(small))  # the values as the coordinator reads them
        answers = node_sdc.probe(small, probed, keys_count=keys)
        frame = pd.DataFrame({node_sdc.SMALL: pd.array(answers, dtype="boolean")})
        return Answer(frame)

    def _rows(self, frame: pd.DataFrame, cap: int) -> Answer:
        if any(str(c).lower().startswith("__sde") for c in frame.columns):
            raise QueryFailed("aggregates.unchecked", "the result has an internal column")
        if len(frame) > cap:
            return Answer(frame.iloc[:cap].reset_index(drop=True), truncated=True, row_cap=cap)
        return Answer(frame, row_cap=cap)


def _output_names(prepared: Prepared) -> list[str]:
    tree = prepared.expression
    return list(tree.named_selects) if isinstance(tree, exp.Select) else []


def _scope(request: NodeRequest) -> Scope:
    try:
        scope = Scope.from_dict(request.scope)
    except ConfigurationError as err:
        raise InvalidInput("federation.bad-request", f"bad request: scope: {err.message}") from None
    if scope.project != request.project:
        raise InvalidInput(
            "federation.bad-request",
            f"bad request: the scope is project {scope.project}'s, not {request.project}'s",
        )
    if scope.version != request.scope_version:
        raise InvalidInput(
            "federation.bad-request",
            "bad request: scope_version is not the version of the scope sent",
        )
    if scope.is_expired():
        raise AccessDenied(
            "access.expired", f"project {scope.project}'s approval expired on {scope.expires}"
        )
    return scope


def _check_kind(kind: str, scope: Scope) -> None:
    """Which kinds a project's access allows (docs/federation.md, "The wire")."""
    project = scope.project
    if kind == "exact" and not scope.dp:
        raise ScopeViolation(
            "federation.kind",
            f"project {project} has no privacy budget: a node sends exact totals only "
            "for differentially private answers",
        )
    if kind == "rows" and scope.access != "rows":
        raise ScopeViolation(
            "federation.kind",
            f"project {project} receives {scope.access} only: a node sends record-level "
            "rows only to a rows project",
        )
    if kind == "aggregate" and scope.access == "dp":
        raise ScopeViolation(
            "access.dp-only",
            f"project {project} is approved for differentially private queries only",
        )


# -- the node part's shape ---------------------------------------------------------------


def check_shape(tree: exp.Expression, project: str) -> None:
    """Refuse (``federation.node-shape``) a tree that is not an aggregate node part:
    one SELECT whose outputs are ``f_k0..`` then ``f_a0..``, grouped by exactly the keys,
    with nothing at its top that acts across groups."""
    if not isinstance(tree, exp.Select):
        raise _shape(project, "its top is not one SELECT")
    for arg, value in tree.args.items():
        if value and arg not in _PART_CLAUSES:
            clause = _CLAUSE_NAMES.get(arg, arg.rstrip("_").upper())
            raise _shape(project, f"it has {clause} at its top")
    keys, partials = _outputs(tree, project)
    group = tree.args.get("group")
    if group is not None and any(v for k, v in group.args.items() if k != "expressions"):
        raise _shape(project, "it groups with ALL, ROLLUP, CUBE or GROUPING SETS")
    grouped = list(group.expressions) if group is not None else []
    if any(isinstance(g, exp.Rollup | exp.Cube | exp.GroupingSets) for g in grouped):
        raise _shape(project, "it groups with ROLLUP, CUBE or GROUPING SETS")
    if len(grouped) != len(keys) or not all(_is_key(g, keys) for g in grouped):
        raise _shape(project, "it is not grouped by exactly its keys f_k0..")
    if not partials:
        raise _shape(project, "it has no partial aggregate f_a0..")


def _outputs(tree: exp.Select, project: str) -> tuple[list[exp.Expression], list[exp.Expression]]:
    keys: list[exp.Expression] = []
    partials: list[exp.Expression] = []
    for projection in tree.expressions:
        name = projection.alias_or_name if isinstance(projection, exp.Alias) else ""
        value = projection.unalias()
        if _top_level(value, exp.Window):
            raise _shape(project, f"output {name or projection.sql()[:40]} is a window")
        if name == f"f_k{len(keys)}" and not partials:
            if _top_level(value, exp.AggFunc):
                raise _shape(project, f"key {name} is an aggregate")
            keys.append(value)
        elif name == f"f_a{len(partials)}":
            if not _top_level(value, exp.AggFunc):
                raise _shape(project, f"{name} is not an aggregate")
            partials.append(value)
        else:
            raise _shape(
                project,
                f"output {name or projection.sql()[:40]!r} is not the next of f_k0.. then f_a0..",
            )
    return keys, partials


def _top_level(node: exp.Expression, kind: type) -> bool:
    """``node`` holds a ``kind`` of this query (not of a subquery inside it)."""
    return any(isinstance(n, kind) for n in node.walk(prune=lambda n: isinstance(n, exp.Query)))


def _is_key(grouped: exp.Expression, keys: list[exp.Expression]) -> bool:
    if isinstance(grouped, exp.Literal) and grouped.is_int:
        return 1 <= int(grouped.this) <= len(keys)
    names = {f"f_k{i}" for i in range(len(keys))}
    if isinstance(grouped, exp.Column) and not grouped.table and grouped.name in names:
        return True
    return any(grouped == key for key in keys)


def _shape(project: str, why: str) -> ScopeViolation:
    return ScopeViolation(
        "federation.node-shape",
        f"the node part for project {project} is refused: {why} (docs/federation.md, "
        "'The node part's columns')",
    )


# -- extracts ------------------------------------------------------------------------------


class _Extracts:
    """The node's built extracts: one per project, scope version and key, the most recent
    ``keep`` of them held open."""

    def __init__(self, keep: int = 8) -> None:
        self._cache = ExtractCache(max_entries=keep)
        self._held: OrderedDict[ExtractKey, Lease] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def get(self, opened: Opened, scope: Scope, key: bytes) -> Lease:
        ident = ExtractKey.of(opened.identity, scope, key)
        with self._lock:
            held = self._held.get(ident)
            if held is not None:
                self._held.move_to_end(ident)
                return held
        lease = self._cache.lease(ident, lambda: opened.build(key))
        released: list[Lease] = []
        with self._lock:
            if ident in self._held:
                released.append(lease)
                lease = self._held[ident]
            else:
                self._held[ident] = lease
            while len(self._held) > self._keep:
                released.append(self._held.popitem(last=False)[1])
        for old in released:
            old.close()
        return lease

    def close(self) -> None:
        with self._lock:
            leases = list(self._held.values())
            self._held.clear()
        for lease in leases:
            lease.close()
        self._cache.clear()


__all__ = ["BACKENDS", "Answer", "Node", "NodeStore", "check_shape"]
