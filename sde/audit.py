"""The hash-chained audit log: every query and every workflow event, refusals included.

A query's entry records who ran what under which scope, the hash of the SQL that
actually ran, the outcome (``ok``, ``refused`` with the rule id, ``error`` with
the engine's own message, which goes nowhere else), rows returned and duration.
A workflow event (a release request submitted, a vote, a download, an application
approved) records its actor, its event name, the object it touched and its details
(:meth:`AuditRecord.event`). Both live in one chain: entries are numbered 1, 2, 3...
and each carries ``entry_hash = SHA-256(prev_hash || canonical JSON of the entry)``,
so :func:`verify` detects an entry changed, deleted or inserted anywhere before
the head. Truncating the tail is detected only against a remembered head:
``sde audit verify`` prints the head hash to record elsewhere (``--expect-head``).

Appends are serialised, not retried: a writer takes the chain's lock (an advisory
transaction lock on PostgreSQL, SQLite's write lock) before it reads the head, so three
services appending at once queue rather than collide. A change and its audit entry commit
together: in the change's transaction call :meth:`AuditLog.lock`, then pass its connection
to :meth:`AuditLog.append` (the budget ledger does, so a spend is never unaudited).

>>> from sde.registry import open_registry
>>> log = AuditLog(open_registry("sqlite://"))
>>> _ = log.append(AuditRecord(user="ana", project="demo", scope_version="v1",
...     action="sql", sql="SELECT 1", outcome="ok", rows=1, duration_ms=2.0))
>>> _ = log.append(AuditRecord.event("bob", "request.submit", "request:1", project="demo",
...     details={"files": 2}))
>>> log.verify().ok
True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sde.registry.audit_log import AuditEntry

GENESIS = "0" * 64
#: The fields of an entry its hash covers, in the canonical order.
HASHED_FIELDS = (
    "seq",
    "at",
    "user",
    "project",
    "scope_version",
    "action",
    "sql",
    "rewritten_sha256",
    "outcome",
    "rule",
    "detail",
    "rows",
    "duration_ms",
)
#: Hashed too, when set (entries written before workflow events existed have neither).
OPTIONAL_HASHED_FIELDS = ("object", "details")
#: The advisory lock key that serialises appends on PostgreSQL ("sde-audt" in ASCII).
_PG_LOCK_KEY = 0x7364652D61756474


@dataclass(frozen=True)
class AuditRecord:
    """One entry: a query (what the connection reports) or a workflow event (:meth:`event`)."""

    user: str
    project: str
    scope_version: str
    action: str
    sql: str
    outcome: str  # ok | refused | error
    duration_ms: float
    rule: str | None = None
    detail: str | None = None
    rows: int | None = None
    rewritten_sha256: str | None = None
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    #: What a workflow event touched (``request:14``); None for a query.
    object: str | None = None
    #: A workflow event's details (canonical JSON); None for a query.
    details: str | None = None

    @classmethod
    def event(
        cls,
        actor: str,
        event: str,
        obj: str,
        *,
        project: str = "",
        details: Mapping[str, Any] | None = None,
        outcome: str = "ok",
        rule: str | None = None,
    ) -> AuditRecord:
        """A workflow event: ``actor`` did ``event`` to ``obj`` (e.g. ``request:14``)."""
        return cls(
            user=actor,
            project=project,
            scope_version="",
            action=event,
            sql="",
            outcome=outcome,
            duration_ms=0.0,
            rule=rule,
            object=obj,
            details=canonical_json(details or {}),
        )


def canonical_json(value: Mapping[str, Any]) -> str:
    """``value`` as the one JSON text that is hashed (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Verification:
    """Result of :func:`AuditLog.verify`."""

    ok: bool
    entries: int
    head: str
    problems: tuple[str, ...] = ()
    #: Of ``entries``, how many are workflow events (the rest are queries).
    events: int = 0


def _sqlite_in_transaction(conn: Connection) -> bool:
    """Whether SQLite has a transaction open on ``conn`` (begun by the caller)."""
    return bool(getattr(conn.connection.dbapi_connection, "in_transaction", False))


def entry_hash(prev_hash: str, values: Mapping[str, object]) -> str:
    hashed = {k: values[k] for k in HASHED_FIELDS}
    hashed |= {k: values[k] for k in OPTIONAL_HASHED_FIELDS if values.get(k) is not None}
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


class AuditLog:
    """Append and verify the audit log in a registry database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(
        self, record: AuditRecord, *, conn: Connection | None = None, attempts: int = 20
    ) -> int:
        """Append ``record``; its sequence number.

        With ``conn`` (an open transaction that has taken the chain's lock with
        :meth:`lock`, or holds SQLite's write lock), the entry joins that transaction and
        commits with it. Without, it is written and committed on its own.
        """
        if conn is not None:
            return self._insert(conn, record)
        for _ in range(attempts):
            with self.engine.connect() as own:
                self.lock(own)
                try:
                    seq = self._insert(own, record)
                    own.commit()
                    return seq
                except IntegrityError:  # a writer that does not lock got there first
                    own.rollback()
        raise RuntimeError("could not append to the audit log: too much contention")

    @staticmethod
    def lock(conn: Connection) -> None:
        """Take the chain's write lock, held until ``conn``'s transaction ends.

        On PostgreSQL: the log's advisory transaction lock. On SQLite the chain's lock is
        the database's one write lock, which every registry writer takes: outside a
        transaction this begins one as ``BEGIN IMMEDIATE``; inside one (the budget ledger
        begins its own with ``BEGIN IMMEDIATE``, and a second ``BEGIN`` would fail) a write
        that changes nothing takes the lock now if the transaction does not hold it yet,
        or fails if a writer changed the database since the transaction read it.
        """
        if conn.dialect.name != "sqlite":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        elif _sqlite_in_transaction(conn):
            conn.exec_driver_sql("UPDATE audit_log SET seq = seq WHERE 0")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    @staticmethod
    def _insert(conn: Connection, record: AuditRecord) -> int:
        head = conn.execute(
            select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        values: dict[str, object] = {"seq": seq, **asdict(record)}
        values["duration_ms"] = round(float(record.duration_ms), 3)
        conn.execute(
            insert(AuditEntry).values(**values, prev_hash=prev, entry_hash=entry_hash(prev, values))
        )
        return seq

    def entries(self, project: str | None = None) -> list[AuditEntry]:
        with Session(self.engine) as session:
            query = select(AuditEntry).order_by(AuditEntry.seq)
            if project is not None:
                query = query.where(AuditEntry.project == project)
            return list(session.scalars(query))

    def count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)

    def verify(self, expect_head: str | None = None) -> Verification:
        """Walk the chain; every problem found (changed, deleted, reordered entries)."""
        problems: list[str] = []
        prev = GENESIS
        expected_seq = 1
        n = events = 0
        for entry in self.entries():
            n += 1
            events += entry.object is not None
            if entry.seq != expected_seq:
                problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing")
            if entry.prev_hash != prev:
                problems.append(f"entry {entry.seq} does not follow the entry before it")
            values = {k: getattr(entry, k) for k in (*HASHED_FIELDS, *OPTIONAL_HASHED_FIELDS)}
            if entry_hash(entry.prev_hash, values) != entry.entry_hash:
                problems.append(f"entry {entry.seq} was changed after it was written")
            prev = entry.entry_hash
            expected_seq = entry.seq + 1
        if expect_head is not None and expect_head != prev:
            problems.append("the log's head is not the expected one (entries removed at the end?)")
        return Verification(not problems, n, prev, tuple(problems), events)
