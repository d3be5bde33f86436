"""The DP engine: analyse, cost, run exact totals, noise once, record, answer from the record.

Decoupled from the connection: it takes a :class:`ScopedRunner`, whose
``run_exact(sql, dialect) -> DataFrame`` runs *scope-checked* SQL (the proxy applies tables,
columns, cohort, opt-outs and pseudonyms) and returns exact rows (a plain callable of the
same shape also works). In a federation it may return the row-wise union of every node's
partial totals: the engine merges them by addition and adds noise once, so a federated
query costs the same budget as a pooled one.

Given ``audit=`` (a function building the query's :class:`~sde.audit.AuditRecord` from an
:class:`Outcome`), :meth:`DPEngine.sql_dp` writes exactly one audit entry per call, whatever
the outcome: refused, answered, served from a stored release, failed. An entry that goes
with a spend or a refund is written in the ledger's transaction (:mod:`sde.dp.ledger`).

Order of a query (nothing is spent until step 6, nothing is shown before it):

1. analyse the SQL and refuse what DP cannot answer (no data read);
2. choose epsilon (given, or computed from ``accuracy=`` and confirmed) and build every
   OpenDP measurement, so the cost is known;
3. if the identical query was released before, answer from that record at no cost;
4. refuse early if the budget clearly cannot pay;
5. run the rewritten exact-totals SQL and noise the merged totals;
6. record the noisy result in the ledger (atomic check-and-spend), then render the answer
   from the stored record.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pandas as pd
from sqlalchemy import Engine

from sde.audit import AuditLog, AuditRecord
from sde.backends.failures import EngineFailure
from sde.dp import accuracy as acc
from sde.dp.analyse import Analysis, analyse
from sde.dp.arguments import check_all
from sde.dp.ledger import BudgetStatus, Ledger
from sde.dp.locality import refuse
from sde.dp.metadata import Metadata
from sde.dp.plan import Plan, build
from sde.dp.release import privatise, render
from sde.dp.request import DPRequest
from sde.dp.rewrite import slots_of
from sde.errors import QueryFailed, ScopeViolation, SDEError

RunExact = Callable[[str, str], pd.DataFrame]


@runtime_checkable
class ScopedRunner(Protocol):
    """What the engine needs from a connection: exact rows of scope-checked SQL.

    ``run_exact`` applies every scope rule except the access mode (a ``dp`` project's
    exact totals never reach the researcher: the engine noises them) and is never cut at
    the row cap. A :class:`~sde.errors.ScopeViolation` means the proxy refused before
    reading data (free); any other exception is a failed run (charged). It writes no audit
    entry of its own: the engine's entry for the query covers the run.
    """

    def run_exact(self, sql: str, dialect: str) -> pd.DataFrame: ...


@dataclass(frozen=True)
class _CallableRunner:
    """A plain ``run_exact(sql, dialect)`` callable as a :class:`ScopedRunner`."""

    run: RunExact

    def run_exact(self, sql: str, dialect: str) -> pd.DataFrame:
        return self.run(sql, dialect)


@dataclass(frozen=True)
class Outcome:
    """How one DP query ended: what its audit entry records."""

    outcome: str  # ok | refused | error
    rule: str | None = None
    #: For custodians (the audit log) only: may hold the engine's own message.
    detail: str | None = None
    rows: int | None = None
    #: The exact-totals SQL the engine ran, when it ran.
    exact_sql: str | None = None


#: Builds the query's audit entry from its outcome (the caller knows user, scope, timing).
AuditFor = Callable[[Outcome], AuditRecord]


@dataclass(frozen=True)
class _Audit:
    engine: Engine
    entry: AuditFor | None

    def record(self, outcome: Outcome) -> AuditRecord | None:
        return None if self.entry is None else self.entry(outcome)

    def write(self, outcome: Outcome) -> None:
        """Append on its own: for outcomes that neither spend nor refund."""
        if self.entry is not None:
            AuditLog(self.engine).append(self.entry(outcome))


#: The one message of a DP query whose exact run failed: it never varies with the data.
ENGINE_ERROR = (
    "the database could not run this DP query; it was charged like an answer (a failure "
    "can depend on data, so it is never free). The details are in the audit log."
)

#: Prepared (analysed and planned) queries kept per engine.
PREPARED_CACHE = 256

#: Output kinds whose half-width is known before the data (so ``accuracy=`` can target them).
TARGETABLE = {"count", "count_persons", "count_value", "sum"}


@dataclass(frozen=True)
class Quote:
    """What a query would cost and how accurate its counts and sums would be."""

    sql: str
    epsilon: float
    delta: float
    alpha: float
    max_rows_per_person: int
    max_groups_per_person: int
    #: Half-width at 1 - alpha per output column where it does not depend on data.
    half_widths: dict[str, float | None]
    epsilon_remaining: float
    delta_remaining: float
    exact_sql: str = field(repr=False, default="")

    def __str__(self) -> str:
        widths = ", ".join(f"{k} ±{v:.4g}" for k, v in self.half_widths.items() if v is not None)
        return (
            f"This query costs epsilon={self.epsilon:.4g}"
            + (f", delta={self.delta:.3g}" if self.delta else "")
            + f" of epsilon={self.epsilon_remaining:.4g} remaining"
            + (f"; accuracy at {1 - self.alpha:.0%}: {widths}" if widths else "")
            + "."
        )


Confirm = Callable[[Quote], bool]


def in_notebook() -> bool:
    """Whether this process is an IPython kernel: a notebook, where a person can answer."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def ask_in_notebook(quote: Quote) -> bool:
    """Default confirmation: ask in a notebook (an IPython kernel), nowhere else.

    Elsewhere (scripts, CI, services, a server in a terminal's foreground) nobody may be
    there to answer and a prompt would hang the process, so the answer is no and the query
    is refused with the cost in the message: pass ``confirm=True`` to accept it, ``epsilon=``
    to spend a stated amount, or ``confirm=ask_at_terminal`` to be asked on standard input.
    """
    return in_notebook() and ask_at_terminal(quote)


def ask_at_terminal(quote: Quote) -> bool:
    """Ask on standard input; used only when chosen (``confirm=ask_at_terminal``)."""
    answer = input(f"{quote} Spend it? [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


class DPEngine:
    """Differentially private answers for one project, charged to its ledger."""

    def __init__(
        self,
        runner: ScopedRunner | RunExact,
        *,
        registry: Engine | Ledger,
        project: str,
        budget: tuple[float, float] | None = None,
        user: str = "researcher",
        metadata: Metadata | None = None,
        dialect: str = "postgres",
        confirm: Confirm = ask_in_notebook,
    ) -> None:
        self.runner = runner if isinstance(runner, ScopedRunner) else _CallableRunner(runner)
        self.ledger = registry if isinstance(registry, Ledger) else Ledger(registry)
        self.project = project
        self.user = user
        self.metadata = metadata or Metadata.default()
        self.dialect = dialect
        self.confirm = confirm
        if budget is not None:
            self.ledger.ensure_project(project, float(budget[0]), float(budget[1]))
        self._prepared: OrderedDict[str, tuple[Analysis, Plan, str]] = OrderedDict()

    # -- public API ------------------------------------------------------------------------

    def sql_dp(
        self,
        sql: str,
        epsilon: float | None = None,
        delta: float | None = None,
        accuracy: float | Mapping[str, float] | None = None,
        alpha: float = 0.05,
        *,
        bounds: Mapping[str, Sequence[float]] | None = None,
        keys: Mapping[str, Sequence[Any]] | None = None,
        max_rows_per_person: int | None = None,
        max_groups_per_person: int | None = None,
        noise: str = "laplace",
        confirm: bool | Confirm | None = None,
        dialect: str | None = None,
        audit: AuditFor | None = None,
    ) -> pd.DataFrame:
        """A DataFrame shaped like the query's result with noisy values; see the module doc."""
        request = DPRequest(
            sql,
            epsilon,
            delta,
            accuracy,
            alpha,
            bounds,
            keys,
            max_rows_per_person,
            max_groups_per_person,
            noise,
            dialect,
        )
        return self.answer(request, confirm=confirm, audit=audit)

    def answer(
        self,
        request: DPRequest,
        *,
        confirm: bool | Confirm | None = None,
        audit: AuditFor | None = None,
    ) -> pd.DataFrame:
        """:meth:`sql_dp` for a built request; one audit entry per call with ``audit``."""
        log = _Audit(self.ledger.engine, audit)
        try:
            a, plan, qhash = self._prepare(request)
            stored = self.ledger.find(self.project, qhash)
            if stored is not None:
                frame = self._answer(a, stored.result, request.alpha, qhash, stored.id, cached=True)
                note = f"served from release {stored.id}, nothing spent"
                log.write(Outcome("ok", detail=note, rows=len(frame)))
                return frame
            if request.accuracy is not None:
                self._confirm(self._quote(a, plan, request.alpha), confirm)
            # Paid before the data is read (atomically): concurrent queries cannot all pass a
            # check and then run unpaid; a budget that cannot pay refuses before anything runs.
            reservation = self.ledger.reserve(
                self.project,
                qhash,
                user=self.user,
                sql=request.sql,
                epsilon=plan.epsilon,
                delta=plan.delta,
            )
        except SDEError as err:
            log.write(Outcome("refused", err.rule, err.message))
            raise
        exact, hists = self._run(plan, qhash, reservation, log)
        record = privatise(plan, exact, hists)
        done = Outcome("ok", rows=_rows(a, record), exact_sql=_exact_sql(plan))
        release = self.ledger.settle(self.project, reservation, qhash, record, log.record(done))
        return self._answer(
            a, release.result, request.alpha, qhash, release.id, cached=release.reused
        )

    def _run(
        self, plan: Plan, qhash: str, reservation: int, log: _Audit
    ) -> tuple[pd.DataFrame, Mapping[int, pd.DataFrame]]:
        """Exact totals; a failure is charged and reported with one fixed message.

        Every expression of a DP query is total (:mod:`sde.dp.totality`), so an engine error
        should not depend on data; if one happens anyway (a bug, a resource limit) its
        outcome is still a bit about the data, so it costs the planned epsilon and delta like
        an answer, and its message never varies. A refusal by the proxy reads no data and
        is passed on unchanged and free. The engine's own message goes to the audit entry
        only: the error raised carries neither it nor the original exception.
        """
        sql = _exact_sql(plan)
        try:
            out = self.runner.run_exact(sql, plan.analysis.dialect)
            if plan.exact.combined is not None:  # totals and histograms in one pass
                return plan.exact.split(out)
            return out, {}
        except ScopeViolation as err:  # the proxy refused before reading data: nothing is spent
            refused = log.record(Outcome("refused", err.rule, err.message, exact_sql=sql))
            self.ledger.refund(self.project, reservation, refused)
            raise
        except Exception as err:  # any failure is charged and reported alike
            entry = log.record(Outcome("error", "dp.engine-error", _raw(err), exact_sql=sql))
        failure = self._charge_failure(reservation, qhash, entry)
        del entry  # the engine's message stays out of the traceback's frames
        raise failure

    def _charge_failure(
        self, reservation: int, qhash: str, entry: AuditRecord | None
    ) -> QueryFailed:
        """Mark the reservation failed (already paid in full); the error to raise."""
        try:
            self.ledger.fail(self.project, reservation, qhash, entry)
        except Exception:  # a registry error may quote the engine's message
            return QueryFailed(
                "dp.audit-failed",
                "this DP query failed and was charged, but the registry could not record the "
                "failure; ask your data custodian",
            )
        return QueryFailed("dp.engine-error", ENGINE_ERROR)

    def quote(
        self,
        sql: str,
        epsilon: float | None = None,
        delta: float | None = None,
        accuracy: float | Mapping[str, float] | None = None,
        alpha: float = 0.05,
        *,
        bounds: Mapping[str, Sequence[float]] | None = None,
        keys: Mapping[str, Sequence[Any]] | None = None,
        max_rows_per_person: int | None = None,
        max_groups_per_person: int | None = None,
        noise: str = "laplace",
        dialect: str | None = None,
    ) -> Quote:
        """Cost and data-independent accuracy of a query, without reading data or spending."""
        request = DPRequest(
            sql,
            epsilon,
            delta,
            accuracy,
            alpha,
            bounds,
            keys,
            max_rows_per_person,
            max_groups_per_person,
            noise,
            dialect,
        )
        a, plan, _ = self._prepare(request)
        return self._quote(a, plan, request.alpha)

    def budget(self) -> BudgetStatus:
        """Spent, remaining and every release of this project."""
        return self.ledger.status(self.project)

    # -- steps -------------------------------------------------------------------------

    def _prepare(self, request: DPRequest) -> tuple[Analysis, Plan, str]:
        check_all(
            epsilon=request.epsilon,
            delta=request.delta,
            accuracy=request.accuracy,
            alpha=request.alpha,
            bounds=request.bounds,
            keys=request.keys,
            rows=request.max_rows_per_person,
            groups=request.max_groups_per_person,
            noise=request.noise,
        )
        d = request.dialect or self.dialect
        # Analysis and plan depend only on the request (never on data or the ledger), so a
        # repeated query (a quote, then the query; a cached release) is prepared once.
        ckey = request.cache_key(d)
        hit = self._prepared.get(ckey)
        if hit is not None:
            self._prepared.move_to_end(ckey)
            return hit
        out = self._prepare_new(request, d)
        self._prepared[ckey] = out
        if len(self._prepared) > PREPARED_CACHE:
            self._prepared.popitem(last=False)
        return out

    def _prepare_new(self, request: DPRequest, d: str) -> tuple[Analysis, Plan, str]:
        a = analyse(
            request.sql, d, metadata=self.metadata, bounds=request.bounds, keys=request.keys
        )
        rows, groups = request.max_rows_per_person, request.max_groups_per_person
        r = int(rows) if rows is not None else self.metadata.rows_per_person(a.tables)
        g = int(groups) if groups is not None else self._default_groups(a)
        epsilon, accuracy = request.epsilon, request.accuracy
        if (epsilon is None) == (accuracy is None):
            raise refuse(
                "epsilon", "say how much to spend: give epsilon= or accuracy= (one of them)"
            )
        if accuracy is not None:
            epsilon = self._epsilon_for(a, accuracy, request, rows=r, groups=g)
        elif epsilon is None:  # unreachable: checked above; keeps the type precise
            raise refuse("epsilon", "give epsilon= or accuracy=")
        qhash = self._hash(a, request, epsilon, rows=r, groups=g)
        plan = build(
            a,
            epsilon=float(epsilon),
            delta=request.delta,
            rows=r,
            groups=g,
            salt=qhash[:16],
            defaults=self.metadata.defaults,
            noise=request.noise,
        )
        return a, plan, qhash

    def _default_groups(self, a: Analysis) -> int:
        if not a.keys:
            return 1
        d = self.metadata.defaults.max_groups_per_person
        return min(math.prod(k.groups_per_person or d for k in a.keys), 1000)

    def _epsilon_for(
        self,
        a: Analysis,
        accuracy: float | Mapping[str, float],
        request: DPRequest,
        *,
        rows: int,
        groups: int,
    ) -> float:
        alpha, noise = request.alpha, request.noise
        if noise != "laplace":
            raise refuse("accuracy-unsupported", "accuracy= is available with Laplace noise")
        targets = self._targets(a, accuracy)
        probe = build(
            a,
            epsilon=1.0,
            delta=request.delta,
            rows=rows,
            groups=groups,
            salt="probe",
            defaults=self.metadata.defaults,
            noise=noise,
        )
        slots, by_agg = slots_of(a)
        needed = 0.0
        spends = probe.spends()
        for i, agg in enumerate(a.aggregates):
            if agg.name not in targets:
                continue
            stat, res = _stat_of(agg.kind, by_agg.get(i), slots)
            scale_needed = acc.scale_for_half_width(
                targets[agg.name] / res, "discrete_laplace", alpha
            )
            needed = max(needed, spends[stat].scale / scale_needed)
        return needed * (1 + 1e-9)

    @staticmethod
    def _targets(a: Analysis, accuracy: float | Mapping[str, float]) -> dict[str, float]:
        if isinstance(accuracy, Mapping):
            targets = {str(k): float(v) for k, v in accuracy.items()}
        else:
            targets = {g.name: float(accuracy) for g in a.aggregates if g.kind in TARGETABLE}
        kinds = {g.name: g.kind for g in a.aggregates}
        for name, value in targets.items():
            if kinds.get(name) not in TARGETABLE:
                raise refuse(
                    "accuracy-unsupported",
                    f"accuracy= can target COUNT and SUM columns, whose error does not depend "
                    f"on the data; {name} needs epsilon= (its interval is in attrs['dp'])",
                )
            if not (math.isfinite(value) and value > 0):
                raise refuse("accuracy-unsupported", "accuracy must be a positive half-width")
        if not targets:
            raise refuse("accuracy-unsupported", "accuracy= needs a COUNT or SUM column")
        return targets

    @staticmethod
    def _hash(a: Analysis, request: DPRequest, epsilon: float, *, rows: int, groups: int) -> str:
        """The release's identity: what was asked and what it cost (not ``alpha``)."""
        delta, noise = request.delta, request.noise
        doc = {
            "sql": a.tree.sql(dialect=a.dialect),
            "dialect": a.dialect,
            "epsilon": repr(float(epsilon)),
            "delta": None if delta is None else repr(float(delta)),
            "rows": rows,
            "groups": groups,
            "noise": noise,
            "bounds": [
                None if g.bounds is None else [g.bounds.lower, g.bounds.upper, g.bounds.resolution]
                for g in a.aggregates
            ],
            "keys": [None if k.keys is None else list(map(str, k.keys)) for k in a.keys],
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def _quote(self, a: Analysis, plan: Plan, alpha: float) -> Quote:
        status = self.ledger.status(self.project, history=False)
        slots, by_agg = slots_of(a)
        spends = plan.spends()
        widths: dict[str, float | None] = {}
        for i, agg in enumerate(a.aggregates):
            if agg.kind not in TARGETABLE:
                widths[agg.name] = None
                continue
            stat, res = _stat_of(agg.kind, by_agg.get(i), slots)
            sp = spends[stat]
            mech = (
                "discrete_gaussian" if sp.mechanism == "discrete_gaussian" else "discrete_laplace"
            )
            widths[agg.name] = acc.count_half_width(sp.scale, mech, alpha) * res
        return Quote(
            a.tree.sql(dialect=a.dialect),
            plan.epsilon,
            plan.delta,
            alpha,
            plan.rows,
            plan.groups,
            widths,
            status.epsilon_remaining,
            status.delta_remaining,
            plan.exact.sql,
        )

    def _confirm(self, quote: Quote, confirm: bool | Confirm | None) -> None:
        decide = self.confirm if confirm is None else confirm
        ok = decide if isinstance(decide, bool) else bool(decide(quote))
        if not ok:
            raise refuse(
                "not-confirmed",
                f"{quote} Not confirmed, nothing spent: pass confirm=True to accept, or "
                f"epsilon={quote.epsilon:.6g} to spend that amount",
            )

    def _answer(
        self,
        a: Analysis,
        record: Mapping[str, Any],
        alpha: float,
        qhash: str,
        release_id: int,
        *,
        cached: bool,
    ) -> pd.DataFrame:
        frame = render(a, record, alpha)
        frame.attrs["dp"].update(query_hash=qhash, release_id=release_id, cached=cached)
        return frame


def _stat_of(kind: str, j: int | None, slots: list[Any]) -> tuple[str, float]:
    """The noisy statistic behind a COUNT/SUM output, and its grid resolution."""
    if kind == "count":
        return "n_rows", 1.0
    if kind == "count_persons":
        return ("n_persons" if j is None else f"np_{j}"), 1.0
    if kind == "count_value":
        return f"cnt_{j}", 1.0
    s = slots[j] if j is not None else None
    if s is None:
        raise ValueError(f"a {kind} output has no value column")
    return f"s_{j}", s.b.resolution


def _exact_sql(plan: Plan) -> str:
    """The exact-totals SQL the engine runs (totals and histograms in one pass when it can)."""
    return plan.exact.combined if plan.exact.combined is not None else plan.exact.sql


def _rows(a: Analysis, record: Mapping[str, Any]) -> int:
    """Rows of the answer rendered from ``record`` (its cells, then the query's LIMIT)."""
    cells = len(record["cells"])
    return cells if a.limit is None else min(cells, a.limit)


def _raw(err: BaseException) -> str:
    """The failure's own words, for the audit log (an engine's message when it has one)."""
    if isinstance(err, EngineFailure) and err.engine_message:
        return err.engine_message
    return f"{type(err).__name__}: {err}"
