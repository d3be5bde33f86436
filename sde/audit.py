"""The hash-chained audit log: every query a project runs, refusals included.

Each entry records who ran what under which scope, the hash of the SQL that
actually ran, the outcome (``ok``, ``refused`` with the rule id, ``error`` with
the engine's own message, which goes nowhere else), rows returned and duration.
Entries are numbered 1, 2, 3... and each carries
``entry_hash = SHA-256(prev_hash || canonical JSON of the entry)``, so
:func:`verify` detects an entry changed, deleted or inserted anywhere before
the head. Truncating the tail is detected only against a remembered head:
``sde audit verify`` prints the head hash to record elsewhere (``--expect-head``).

>>> from sde.registry import open_registry
>>> log = AuditLog(open_registry("sqlite://"))
>>> _ = log.append(AuditRecord(user="ana", project="demo", scope_version="v1",
...     action="sql", sql="SELECT 1", outcome="ok", rows=1, duration_ms=2.0))
>>> log.verify().ok
True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field

from sqlalchemy import Engine, func, select
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


@dataclass(frozen=True)
class AuditRecord:
    """What the connection reports about one query."""

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


@dataclass(frozen=True)
class Verification:
    """Result of :func:`AuditLog.verify`."""

    ok: bool
    entries: int
    head: str
    problems: tuple[str, ...] = ()


def entry_hash(prev_hash: str, values: dict[str, object]) -> str:
    canonical = json.dumps(
        {k: values[k] for k in HASHED_FIELDS}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


class AuditLog:
    """Append and verify the audit log in a registry database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, record: AuditRecord, *, attempts: int = 20) -> int:
        """Append ``record``; its sequence number. Retries if another writer got there first."""
        for _ in range(attempts):
            with Session(self.engine) as session:
                head = session.execute(
                    select(AuditEntry.seq, AuditEntry.entry_hash)
                    .order_by(AuditEntry.seq.desc())
                    .limit(1)
                ).first()
                seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
                values: dict[str, object] = {"seq": seq, **asdict(record)}
                values["duration_ms"] = round(float(record.duration_ms), 3)
                entry = AuditEntry(**values, prev_hash=prev, entry_hash=entry_hash(prev, values))
                session.add(entry)
                try:
                    session.commit()
                    return seq
                except IntegrityError:
                    session.rollback()
        raise RuntimeError("could not append to the audit log: too much contention")

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
        n = 0
        for entry in self.entries():
            n += 1
            if entry.seq != expected_seq:
                problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing")
            if entry.prev_hash != prev:
                problems.append(f"entry {entry.seq} does not follow the entry before it")
            values = {k: getattr(entry, k) for k in HASHED_FIELDS}
            if entry_hash(entry.prev_hash, values) != entry.entry_hash:
                problems.append(f"entry {entry.seq} was changed after it was written")
            prev = entry.entry_hash
            expected_seq = entry.seq + 1
        if expect_head is not None and expect_head != prev:
            problems.append("the log's head is not the expected one (entries removed at the end?)")
        return Verification(not problems, n, prev, tuple(problems))
