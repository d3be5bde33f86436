"""The registry behind the privacy budget ledger: transactions over ``dp_budget`` and
``dp_release`` that carry their audit entries.

:class:`BudgetStore` is the one object :class:`~sde.dp.ledger.Ledger` takes; it owns the
registry engine and every statement, so the ledger holds the accounting rules only. A
change runs in :meth:`BudgetStore.write`, which locks one project's budget row first
(``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite ``BEGIN IMMEDIATE``, which serialises
writers): everything done through the :class:`BudgetTx` it yields, audit entries included,
commits together or not at all. Reads (:meth:`BudgetStore.snapshot`,
:meth:`BudgetStore.find`) take no lock.

Amounts are integer units here (see :mod:`sde.dp.ledger`); rows come back as the frozen
snapshots :class:`Budget` and :class:`StoredRelease`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, delete, insert, select, update

from sde.audit import AuditLog, AuditRecord
from sde.registry import open_registry
from sde.registry.budget import DPBudget, DPRelease


@dataclass(frozen=True)
class Budget:
    """A project's budget row: totals and running spend, in units."""

    project: str
    epsilon_total: int
    delta_total: int
    epsilon_spent: int
    delta_spent: int


@dataclass(frozen=True)
class StoredRelease:
    """A ``dp_release`` row: cost in units, ``result`` the stored JSON text."""

    id: int
    project: str
    query_hash: str
    user: str
    sql: str
    epsilon: int
    delta: int
    created_at: datetime
    result: str


@dataclass(frozen=True)
class BudgetTx:
    """One write transaction on one project's budget, its row locked (``budget``: the row
    as locked, ``None`` if the project has none yet)."""

    conn: Connection
    project: str
    budget: Budget | None

    def create(self, totals: tuple[int, int], now: datetime) -> None:
        """The project's first budget row: its totals (in units), nothing spent yet."""
        self.conn.execute(
            insert(DPBudget).values(
                project=self.project,
                epsilon_total=totals[0],
                delta_total=totals[1],
                epsilon_spent=0,
                delta_spent=0,
                updated_at=now,
            )
        )

    def set_totals(self, totals: tuple[int, int], now: datetime) -> None:
        self.conn.execute(
            update(DPBudget)
            .where(DPBudget.project == self.project)
            .values(epsilon_total=totals[0], delta_total=totals[1], updated_at=now)
        )

    def find(self, query_hash: str) -> StoredRelease | None:
        return _find(self.conn, self.project, query_hash)

    def release(self, release_id: int) -> StoredRelease | None:
        row = (
            self.conn.execute(select(DPRelease.__table__).where(DPRelease.id == release_id))
            .mappings()
            .first()
        )
        return None if row is None else _stored(row)

    def insert(
        self, query_hash: str, user: str, sql: str, cost: tuple[int, int], payload: str
    ) -> StoredRelease:
        """Insert a release and add its cost (in units) to the project's spend."""
        eps, dlt = cost
        now = datetime.now(UTC)
        new_id = self.conn.execute(
            insert(DPRelease).values(
                project=self.project,
                query_hash=query_hash,
                user=user,
                sql=sql,
                epsilon=eps,
                delta=dlt,
                created_at=now,
                result=payload,
            )
        ).inserted_primary_key
        self.conn.execute(
            update(DPBudget)
            .where(DPBudget.project == self.project)
            .values(
                epsilon_spent=DPBudget.epsilon_spent + eps,
                delta_spent=DPBudget.delta_spent + dlt,
                updated_at=now,
            )
        )
        if new_id is None:
            raise RuntimeError("the registry did not return the new release id")
        return StoredRelease(
            int(new_id[0]), self.project, query_hash, user, sql, eps, dlt, now, payload
        )

    def update(self, release_id: int, *, result: str, query_hash: str | None = None) -> None:
        """Store a release's result (and, for a settled reservation, its query hash)."""
        values: dict[str, Any] = {"result": result}
        if query_hash is not None:
            values["query_hash"] = query_hash
        self.conn.execute(update(DPRelease).where(DPRelease.id == release_id).values(**values))

    def remove(self, release: StoredRelease) -> None:
        """Delete a release and give its cost back to the project's spend."""
        self.conn.execute(delete(DPRelease).where(DPRelease.id == release.id))
        self.conn.execute(
            update(DPBudget)
            .where(DPBudget.project == self.project)
            .values(
                epsilon_spent=DPBudget.epsilon_spent - release.epsilon,
                delta_spent=DPBudget.delta_spent - release.delta,
            )
        )

    def audit(self, record: AuditRecord) -> None:
        """Append ``record`` to the audit log inside this transaction: it commits with the
        change it records, or not at all."""
        AuditLog.lock(self.conn)
        AuditLog(self.conn.engine).append(record, conn=self.conn)


class BudgetStore:
    """The ``dp_budget`` and ``dp_release`` tables of one registry (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"

    @classmethod
    def open(cls, url: str) -> BudgetStore:
        """The store of the registry at ``url``, its schema brought to the newest revision."""
        return cls(open_registry(url))

    @contextmanager
    def write(self, project: str) -> Iterator[BudgetTx]:
        """A transaction holding ``project``'s budget row locked; committed if no error."""
        with self.engine.connect() as conn:
            try:
                if self._sqlite:
                    # Take the write lock now: concurrent spenders queue here, one at a time.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                stmt = select(DPBudget.__table__).where(DPBudget.project == project)
                if not self._sqlite:
                    stmt = stmt.with_for_update()
                row = conn.execute(stmt).mappings().first()
                yield BudgetTx(conn, project, None if row is None else _budget(row))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def snapshot(
        self, project: str, *, history: bool = True
    ) -> tuple[Budget | None, tuple[StoredRelease, ...]]:
        """``project``'s budget row and (with ``history``) its releases in order, read in
        one transaction."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(DPBudget.__table__).where(DPBudget.project == project))
                .mappings()
                .first()
            )
            if row is None or not history:
                return (None if row is None else _budget(row)), ()
            rows = (
                conn.execute(
                    select(DPRelease.__table__)
                    .where(DPRelease.project == project)
                    .order_by(DPRelease.id)
                )
                .mappings()
                .all()
            )
            return _budget(row), tuple(_stored(r) for r in rows)

    def find(self, project: str, query_hash: str) -> StoredRelease | None:
        with self.engine.connect() as conn:
            return _find(conn, project, query_hash)

    def __repr__(self) -> str:
        return f"BudgetStore({self.engine.url.render_as_string(hide_password=True)!r})"


def _find(conn: Connection, project: str, query_hash: str) -> StoredRelease | None:
    row = (
        conn.execute(
            select(DPRelease.__table__).where(
                DPRelease.project == project, DPRelease.query_hash == query_hash
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _stored(row)


def _budget(row: RowMapping) -> Budget:
    return Budget(
        row["project"],
        row["epsilon_total"],
        row["delta_total"],
        row["epsilon_spent"],
        row["delta_spent"],
    )


def _stored(row: RowMapping) -> StoredRelease:
    created = row["created_at"]
    if created.tzinfo is None:  # SQLite keeps no zone: the registry writes UTC
        created = created.replace(tzinfo=UTC)
    return StoredRelease(
        int(row["id"]),
        row["project"],
        row["query_hash"],
        row["user"],
        row["sql"],
        row["epsilon"],
        row["delta"],
        created,
        row["result"],
    )
