"""The DP engine: analyse, cost, run exact totals, noise once, record, answer from the record.

Decoupled from the connection: it takes ``run_exact(sql, dialect) -> DataFrame``, a callable
that runs *scope-checked* SQL (the proxy applies tables, columns, cohort, opt-outs and
pseudonyms) and returns exact rows. In a federation it may return the row-wise union of
every node's partial totals: the engine merges them by addition and adds noise once, so a
federated query costs the same budget as a pooled one.

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
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from sde.dp import accuracy as acc
from sde.dp.analyse import Analysis, analyse
from sde.dp.arguments import check_all
from sde.dp.ledger import BudgetStatus, Ledger
from sde.dp.locality import refuse
from sde.dp.metadata import Metadata
from sde.dp.plan import Plan, build
from sde.dp.release import privatise, render
from sde.dp.rewrite import slots_of
from sde.errors import QueryFailed, ScopeViolation

RunExact = Callable[[str, str], pd.DataFrame]

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


def ask_in_notebook(quote: Quote) -> bool:
    """Default confirmation: ask at an interactive prompt (Jupyter or a terminal).

    Elsewhere (scripts, CI, services) there is nobody to ask, so the answer is no and the
    query is refused with the cost in the message: pass ``confirm=True`` to accept it, or
    ``epsilon=`` to spend a stated amount.
    """
    interactive = "ipykernel" in sys.modules or (sys.stdin is not None and sys.stdin.isatty())
    if not interactive:
        return False
    answer = input(f"{quote} Spend it? [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


class DPEngine:
    """Differentially private answers for one project, charged to its ledger."""

    def __init__(
        self,
        run_exact: RunExact,
        *,
        registry: Engine | Ledger,
        project: str,
        budget: tuple[float, float] | None = None,
        user: str = "researcher",
        metadata: Metadata | None = None,
        dialect: str = "postgres",
        confirm: Confirm = ask_in_notebook,
    ) -> None:
        self.run_exact = run_exact
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
    ) -> pd.DataFrame:
        """A DataFrame shaped like the query's result with noisy values; see the module doc."""
        a, plan, qhash = self._prepare(
            sql,
            epsilon=epsilon,
            delta=delta,
            accuracy=accuracy,
            alpha=alpha,
            bounds=bounds,
            keys=keys,
            rows=max_rows_per_person,
            groups=max_groups_per_person,
            noise=noise,
            dialect=dialect,
        )
        stored = self.ledger.find(self.project, qhash)
        if stored is not None:
            return self._answer(a, stored.result, alpha, qhash, stored.id, cached=True)
        if accuracy is not None:
            self._confirm(self._quote(a, plan, alpha), confirm)
        # Paid before the data is read (atomically): concurrent queries cannot all pass a
        # check and then run unpaid; a budget that cannot pay refuses before anything runs.
        reservation = self.ledger.reserve(
            self.project, qhash, user=self.user, sql=sql, epsilon=plan.epsilon, delta=plan.delta
        )
        exact, hists = self._run(plan, qhash, reservation)
        record = privatise(plan, exact, hists)
        release = self.ledger.settle(self.project, reservation, qhash, record)
        return self._answer(a, release.result, alpha, qhash, release.id, cached=release.reused)

    def _run(
        self, plan: Plan, qhash: str, reservation: int
    ) -> tuple[pd.DataFrame, Mapping[int, pd.DataFrame]]:
        """Exact totals; a failure is charged and reported with one fixed message.

        Every expression of a DP query is total (:mod:`sde.dp.totality`), so an engine error
        should not depend on data; if one happens anyway (a bug, a resource limit) its
        outcome is still a bit about the data, so it costs the planned epsilon and delta like
        an answer, and its message never varies. A refusal by the proxy reads no data and
        is passed on unchanged and free.
        """
        d = plan.analysis.dialect
        try:
            if plan.exact.combined is not None:  # totals and histograms in one pass
                return plan.exact.split(self.run_exact(plan.exact.combined, d))
            return self.run_exact(plan.exact.sql, d), {}
        except ScopeViolation:  # the proxy refused before reading data: nothing is spent
            self.ledger.refund(self.project, reservation)
            raise
        except Exception:  # any failure is charged and reported alike
            self.ledger.fail(self.project, reservation, qhash)  # already paid in full
            raise QueryFailed("dp.engine-error", ENGINE_ERROR) from None

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
        a, plan, _ = self._prepare(
            sql,
            epsilon=epsilon,
            delta=delta,
            accuracy=accuracy,
            alpha=alpha,
            bounds=bounds,
            keys=keys,
            rows=max_rows_per_person,
            groups=max_groups_per_person,
            noise=noise,
            dialect=dialect,
        )
        return self._quote(a, plan, alpha)

    def budget(self) -> BudgetStatus:
        """Spent, remaining and every release of this project."""
        return self.ledger.status(self.project)

    # -- steps -------------------------------------------------------------------------

    def _prepare(
        self,
        sql: str,
        *,
        epsilon: float | None,
        delta: float | None,
        accuracy: float | Mapping[str, float] | None,
        alpha: float,
        bounds: Mapping[str, Sequence[float]] | None,
        keys: Mapping[str, Sequence[Any]] | None,
        rows: int | None,
        groups: int | None,
        noise: str,
        dialect: str | None,
    ) -> tuple[Analysis, Plan, str]:
        check_all(
            epsilon=epsilon,
            delta=delta,
            accuracy=accuracy,
            alpha=alpha,
            bounds=bounds,
            keys=keys,
            rows=rows,
            groups=groups,
            noise=noise,
        )
        d = dialect or self.dialect
        # Analysis and plan depend only on these arguments (never on data or the ledger), so
        # a repeated query (a quote, then the query; a cached release) is prepared once.
        ckey = json.dumps(
            [sql, d, epsilon, delta, accuracy, bounds, keys, rows, groups, noise],
            sort_keys=True,
            default=lambda v: list(v) if isinstance(v, tuple | list | set) else repr(v),
        )
        hit = self._prepared.get(ckey)
        if hit is not None:
            self._prepared.move_to_end(ckey)
            return hit
        out = self._prepare_new(
            sql,
            d,
            epsilon=epsilon,
            delta=delta,
            accuracy=accuracy,
            alpha=alpha,
            bounds=bounds,
            keys=keys,
            rows=rows,
            groups=groups,
            noise=noise,
        )
        self._prepared[ckey] = out
        if len(self._prepared) > PREPARED_CACHE:
            self._prepared.popitem(last=False)
        return out

    def _prepare_new(
        self,
        sql: str,
        d: str,
        *,
        epsilon: float | None,
        delta: float | None,
        accuracy: float | Mapping[str, float] | None,
        alpha: float,
        bounds: Mapping[str, Sequence[float]] | None,
        keys: Mapping[str, Sequence[Any]] | None,
        rows: int | None,
        groups: int | None,
        noise: str,
    ) -> tuple[Analysis, Plan, str]:
        a = analyse(sql, d, metadata=self.metadata, bounds=bounds, keys=keys)
        r = int(rows) if rows is not None else self.metadata.rows_per_person(a.tables)
        g = int(groups) if groups is not None else self._default_groups(a)
        if (epsilon is None) == (accuracy is None):
            raise refuse(
                "epsilon", "say how much to spend: give epsilon= or accuracy= (one of them)"
            )
        if accuracy is not None:
            epsilon = self._epsilon_for(
                a, accuracy, alpha=alpha, delta=delta, rows=r, groups=g, noise=noise
            )
        elif epsilon is None:  # unreachable: checked above; keeps the type precise
            raise refuse("epsilon", "give epsilon= or accuracy=")
        qhash = self._hash(a, epsilon, delta, rows=r, groups=g, noise=noise)
        plan = build(
            a,
            epsilon=float(epsilon),
            delta=delta,
            rows=r,
            groups=g,
            salt=qhash[:16],
            defaults=self.metadata.defaults,
            noise=noise,
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
        *,
        alpha: float,
        delta: float | None,
        rows: int,
        groups: int,
        noise: str,
    ) -> float:
        if noise != "laplace":
            raise refuse("accuracy-unsupported", "accuracy= is available with Laplace noise")
        targets = self._targets(a, accuracy)
        probe = build(
            a,
            epsilon=1.0,
            delta=delta,
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

    def _hash(
        self,
        a: Analysis,
        epsilon: float,
        delta: float | None,
        *,
        rows: int,
        groups: int,
        noise: str,
    ) -> str:
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
