"""The privacy budget ledger: per project totals, every release recorded before it is answered.

Two registry tables: ``dp_budget`` (one row per project: totals from the scope, running
spend) and ``dp_release`` (one row per answered query: hash, cost, user, time and the
released noisy result itself).

:meth:`Ledger.record` is the only way to spend. In one transaction it locks the project's
budget row (``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite, which
serialises writers), returns the stored release if the same query was already answered
(no cost), refuses with :class:`~sde.errors.BudgetExhausted` if the cost would exceed what
remains (nothing is written), and otherwise inserts the release and adds its cost. The
engine answers *from the returned record*, so an answer is never returned unrecorded: a
crash before the commit spends nothing and shows nothing; a crash after it leaves the
release stored, and asking again returns it free.

Every method that spends or refunds takes the query's audit entry (``audit=``) and appends
it in its own transaction (:meth:`BudgetTx.audit <sde.dp.store.BudgetTx.audit>`): a spend
and its entry commit together or not at all. The registry holds the budget of record:
:meth:`Ledger.ensure_project` creates a project's row but never changes its totals (a scope
that disagrees is refused, ``dp.budget-mismatch``); :meth:`Ledger.set_totals` is the admin
path, audited in the same transaction. The ledger holds the rules only: the tables, locks
and transactions are :class:`~sde.dp.store.BudgetStore`'s.

Epsilon and delta are stored as integers (1e-12 and 1e-18 units): costs round up, totals
round down, so float rounding can never let the sum of many small costs exceed the budget.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import Engine

from sde.audit import AuditRecord
from sde.dp.store import Budget, BudgetStore, BudgetTx, StoredRelease
from sde.errors import BudgetExhausted, ConfigurationError

EPS_UNIT = Decimal("1e-12")
DELTA_UNIT = Decimal("1e-18")


def to_units(value: float, unit: Decimal, *, up: bool) -> int:
    """``value`` in integer units, rounded up (costs) or down (totals)."""
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(
            "dp.budget-invalid", f"privacy amounts must be finite and >= 0, got {value}"
        )
    q = (Decimal(repr(float(value))) / unit).to_integral_value(
        rounding=ROUND_CEILING if up else ROUND_FLOOR
    )
    return int(q)


def from_units(units: int, unit: Decimal) -> float:
    return float(Decimal(units) * unit)


@dataclass(frozen=True)
class Release:
    id: int
    query_hash: str
    user: str
    sql: str
    epsilon: float
    delta: float
    created_at: datetime
    result: dict[str, Any]
    #: True when this call found the release already recorded (nothing spent now).
    reused: bool = False


@dataclass(frozen=True)
class BudgetStatus:
    project: str
    epsilon_total: float
    delta_total: float
    epsilon_spent: float
    delta_spent: float
    history: tuple[Release, ...]

    @property
    def epsilon_remaining(self) -> float:
        return max(self.epsilon_total - self.epsilon_spent, 0.0)

    @property
    def delta_remaining(self) -> float:
        return max(self.delta_total - self.delta_spent, 0.0)


class Ledger:
    """Budget accounting over a :class:`~sde.dp.store.BudgetStore` (or a registry engine,
    wrapped in one): the rules here, every statement and transaction in the store."""

    def __init__(self, store: BudgetStore | Engine) -> None:
        self.store = store if isinstance(store, BudgetStore) else BudgetStore(store)

    @property
    def engine(self) -> Engine:
        """The registry's engine (for audit entries written on their own)."""
        return self.store.engine

    # -- service -----------------------------------------------------------------------

    def ensure_project(self, project: str, epsilon_total: float, delta_total: float) -> None:
        """Create the project's budget row with these totals, or check they are its totals.

        The registry holds the budget of record: an existing row is never changed here.
        Totals that differ from it (a scope file edited, an old approval) are refused with
        ``dp.budget-mismatch`` naming both; only :meth:`set_totals` changes them.
        """
        totals = (
            to_units(epsilon_total, EPS_UNIT, up=False),
            to_units(delta_total, DELTA_UNIT, up=False),
        )
        with self.store.write(project) as tx:
            if tx.budget is None:
                tx.create(totals, datetime.now(UTC))
                return
            row = tx.budget
        if (row.epsilon_total, row.delta_total) != totals:
            raise _mismatch(project, totals, row)

    def set_totals(self, project: str, epsilon: float, delta: float, *, actor: str) -> None:
        """Set a project's budget totals (an approved amendment): the admin path.

        Spending is unchanged (a total below it leaves nothing to spend). The change and
        its audit event (``dp.budget-set`` by ``actor``, old and new totals) commit in one
        transaction.
        """
        eps = to_units(epsilon, EPS_UNIT, up=False)
        dlt = to_units(delta, DELTA_UNIT, up=False)
        now = datetime.now(UTC)
        with self.store.write(project) as tx:
            row = tx.budget
            if row is None:
                tx.create((eps, dlt), now)
            else:
                tx.set_totals((eps, dlt), now)
            old = None if row is None else _totals(row.epsilon_total, row.delta_total)
            event = AuditRecord.event(
                actor,
                "dp.budget-set",
                f"project:{project}",
                project=project,
                details={"from": old, "to": _totals(eps, dlt)},
            )
            tx.audit(event)

    def find(self, project: str, query_hash: str) -> Release | None:
        found = self.store.find(project, query_hash)
        return None if found is None else _release(found, reused=True)

    def check(self, project: str, epsilon: float, delta: float) -> None:
        """Refuse early (no lock) when the cost clearly exceeds what remains."""
        status = self.status(project, history=False)
        self._refuse_if_over(
            (status.epsilon_total, status.delta_total),
            (status.epsilon_spent, status.delta_spent),
            (epsilon, delta),
            units=False,
        )

    def record(
        self,
        project: str,
        query_hash: str,
        *,
        user: str,
        sql: str,
        epsilon: float,
        delta: float,
        result: dict[str, Any],
        audit: AuditRecord | None = None,
    ) -> Release:
        """Spend and store atomically; the returned record is what the caller answers with.

        ``audit``: the query's audit entry, appended in the same transaction (a repeat is
        noted as served from the stored release, a refusal writes nothing).
        """
        eps = to_units(epsilon, EPS_UNIT, up=True)
        dlt = to_units(delta, DELTA_UNIT, up=True)
        payload = json.dumps(result, separators=(",", ":"), allow_nan=True)
        with self._change(project, audit) as change:
            existing = change.tx.find(query_hash)
            if existing is not None:
                change.note = f"served from release {existing.id}"
                return _release(existing, reused=True)
            change.refuse_if_over((eps, dlt))
            release = change.tx.insert(query_hash, user, sql, (eps, dlt), payload)
            change.note = f"release {release.id}: spent {_cost(eps, dlt)}"
        return _release(release, reused=False)

    def reserve(
        self, project: str, query_hash: str, *, user: str, sql: str, epsilon: float, delta: float
    ) -> int:
        """Spend a query's cost *before* its exact run; the id of the pending release.

        Checking the budget, running, then charging leaves a window in which concurrent
        queries all pass the check and all run: the ones the budget can no longer pay would
        run unpaid (a failure capped at what remains, an answer refused after the data were
        read, its outcome still visible). Reserving first means nothing runs unpaid: the
        budget refuses (:class:`~sde.errors.BudgetExhausted`, nothing spent) before data is
        read. :meth:`settle` turns the reservation into the release; :meth:`fail` keeps it
        as a charged failure.
        """
        eps = to_units(epsilon, EPS_UNIT, up=True)
        dlt = to_units(delta, DELTA_UNIT, up=True)
        salted = hashlib.sha256(f"pending:{query_hash}:{uuid.uuid4()}".encode()).hexdigest()
        payload = json.dumps({"pending": True, "query": query_hash})
        with self._change(project) as change:
            change.refuse_if_over((eps, dlt))
            release = change.tx.insert(salted, user, sql, (eps, dlt), payload)
        return release.id

    def settle(
        self,
        project: str,
        reservation: int,
        query_hash: str,
        result: dict[str, Any],
        audit: AuditRecord | None = None,
    ) -> Release:
        """The reserved release becomes the answer to ``query_hash``; the record to answer from.

        If a concurrent run of the same query was recorded first, its release is returned
        and this reservation refunded: only that stored answer is ever shown. ``audit``, the
        query's entry, commits with the spend (or not at all, and neither does the spend).
        """
        payload = json.dumps(result, separators=(",", ":"), allow_nan=True)
        with self._change(project, audit) as change:
            existing = change.tx.find(query_hash)
            row = change.reservation(reservation)
            if existing is not None:
                change.tx.remove(row)
                change.note = (
                    f"served from release {existing.id}; reservation {reservation} refunded"
                )
                return _release(existing, reused=True)
            change.tx.update(reservation, query_hash=query_hash, result=payload)
            change.note = f"release {reservation}: spent {_cost(row.epsilon, row.delta)}"
        return _release(replace(row, query_hash=query_hash, result=payload), reused=False)

    def refund(self, project: str, reservation: int, audit: AuditRecord | None = None) -> None:
        """Undo a reservation whose query read no data (a refusal before it ran); ``audit``,
        the query's entry, commits with the refund."""
        with self._change(project, audit) as change:
            row = change.tx.release(reservation)
            if row is not None:
                change.tx.remove(row)
            change.note = f"reservation {reservation} refunded, nothing spent"

    def fail(
        self, project: str, reservation: int, query_hash: str, audit: AuditRecord | None = None
    ) -> None:
        """A reserved query's exact run failed: its release stays, charged, marked failed;
        ``audit``, the query's entry, commits with it."""
        payload = json.dumps({"failed": True, "rule": "dp.engine-error", "query": query_hash})
        with self._change(project, audit) as change:
            row = change.reservation(reservation)
            change.tx.update(reservation, result=payload)
            change.note = f"release {reservation}: failed, charged {_cost(row.epsilon, row.delta)}"

    def record_failure(
        self,
        project: str,
        query_hash: str,
        *,
        user: str,
        sql: str,
        epsilon: float,
        delta: float,
        audit: AuditRecord | None = None,
    ) -> Release:
        """Charge a query whose exact run failed, atomically, and store the failure.

        A failure is never free (an error that depends on data would otherwise be a free,
        exact bit) and never refused: when a concurrent query left less than the cost, what
        remains is spent. Each failure is its own release (its hash is salted), so asking
        again runs, and is charged, again.
        """
        eps = to_units(epsilon, EPS_UNIT, up=True)
        dlt = to_units(delta, DELTA_UNIT, up=True)
        salted = hashlib.sha256(f"failed:{query_hash}:{uuid.uuid4()}".encode()).hexdigest()
        payload = json.dumps({"failed": True, "rule": "dp.engine-error", "query": query_hash})
        with self._change(project, audit) as change:
            budget = change.budget
            eps = min(eps, max(budget.epsilon_total - budget.epsilon_spent, 0))
            dlt = min(dlt, max(budget.delta_total - budget.delta_spent, 0))
            release = change.tx.insert(salted, user, sql, (eps, dlt), payload)
            change.note = f"release {release.id}: failed, charged {_cost(eps, dlt)}"
        return _release(release, reused=False)

    @contextmanager
    def _change(self, project: str, audit: AuditRecord | None = None) -> Iterator[_Change]:
        """One change to ``project``'s spend, in one transaction: its budget row locked
        (refused, ``dp.no-budget``, if it has none), the body's writes, then ``audit`` with
        the body's ``note`` on what it did. An error anywhere commits nothing."""
        with self.store.write(project) as tx:
            if tx.budget is None:
                raise _no_budget(project)
            change = _Change(tx, tx.budget)
            yield change
            _audit(tx, audit, change.note)

    @staticmethod
    def _refuse_if_over(
        total: tuple[Any, Any], spent: tuple[Any, Any], cost: tuple[Any, Any], *, units: bool
    ) -> None:
        (eps_total, dlt_total), (eps_spent, dlt_spent), (eps, dlt) = total, spent, cost
        if eps_spent + eps <= eps_total and dlt_spent + dlt <= dlt_total:
            return
        scale_e = float(EPS_UNIT) if units else 1.0
        scale_d = float(DELTA_UNIT) if units else 1.0
        raise BudgetExhausted(
            "dp.budget",
            f"this query costs epsilon={eps * scale_e:.6g}, delta={dlt * scale_d:.3g} but the "
            f"project has epsilon={max(eps_total - eps_spent, 0) * scale_e:.6g}, "
            f"delta={max(dlt_total - dlt_spent, 0) * scale_d:.3g} left; nothing was spent",
            epsilon_cost=eps * scale_e,
            delta_cost=dlt * scale_d,
            epsilon_remaining=max(eps_total - eps_spent, 0) * scale_e,
            delta_remaining=max(dlt_total - dlt_spent, 0) * scale_d,
        )

    def status(self, project: str, *, history: bool = True) -> BudgetStatus:
        row, releases = self.store.snapshot(project, history=history)
        if row is None:
            raise _no_budget(project)
        return BudgetStatus(
            project,
            from_units(row.epsilon_total, EPS_UNIT),
            from_units(row.delta_total, DELTA_UNIT),
            from_units(row.epsilon_spent, EPS_UNIT),
            from_units(row.delta_spent, DELTA_UNIT),
            tuple(_release(r, reused=False) for r in releases),
        )


@dataclass
class _Change:
    """A change in progress (:meth:`Ledger._change`): the transaction, the project's locked
    budget row, and the ``note`` its audit entry will carry."""

    tx: BudgetTx
    budget: Budget
    note: str = ""

    def refuse_if_over(self, cost: tuple[int, int]) -> None:
        """Refuse (:class:`~sde.errors.BudgetExhausted`) a cost, in units, that the locked
        budget cannot pay."""
        b = self.budget
        Ledger._refuse_if_over(
            (b.epsilon_total, b.delta_total), (b.epsilon_spent, b.delta_spent), cost, units=True
        )

    def reservation(self, reservation: int) -> StoredRelease:
        """The pending release ``reservation``; an error if there is none."""
        row = self.tx.release(reservation)
        if row is None:
            raise ConfigurationError("dp.no-reservation", f"no reserved release {reservation}")
        return row


def _no_budget(project: str) -> ConfigurationError:
    return ConfigurationError("dp.no-budget", f"project {project} has no DP budget")


def _release(row: StoredRelease, *, reused: bool) -> Release:
    return Release(
        row.id,
        row.query_hash,
        row.user,
        row.sql,
        from_units(row.epsilon, EPS_UNIT),
        from_units(row.delta, DELTA_UNIT),
        row.created_at,
        json.loads(row.result),
        reused,
    )


def _totals(eps: int, dlt: int) -> dict[str, float]:
    return {"epsilon": from_units(eps, EPS_UNIT), "delta": from_units(dlt, DELTA_UNIT)}


def _mismatch(project: str, scope: tuple[int, int], row: Budget) -> ConfigurationError:
    ours, theirs = _totals(*scope), _totals(row.epsilon_total, row.delta_total)
    return ConfigurationError(
        "dp.budget-mismatch",
        f"the scope gives project {project} a privacy budget of epsilon={ours['epsilon']:.6g}, "
        f"delta={ours['delta']:.3g} but the registry holds epsilon={theirs['epsilon']:.6g}, "
        f"delta={theirs['delta']:.3g}, the budget of record; a budget changes only through "
        "an approved amendment, which the data custodian applies (Ledger.set_totals); "
        "nothing was spent",
        scope_epsilon=ours["epsilon"],
        scope_delta=ours["delta"],
        registry_epsilon=theirs["epsilon"],
        registry_delta=theirs["delta"],
    )


def _audit(tx: BudgetTx, record: AuditRecord | None, note: str) -> None:
    """Append ``record`` (with the ledger's ``note`` on what it did to the budget) inside
    the transaction ``tx``: the spend and its audit entry commit, or fail, together."""
    if record is None:
        return
    detail = note if not record.detail else f"{record.detail}; {note}"
    tx.audit(replace(record, detail=detail))


def _cost(eps: int, dlt: int) -> str:
    return f"epsilon={from_units(eps, EPS_UNIT):.6g}, delta={from_units(dlt, DELTA_UNIT):.3g}"
