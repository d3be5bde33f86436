"""The hash-chained audit log and ``sde audit verify``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from sde.audit import HASHED_FIELDS, AuditLog, AuditRecord
from sde.cli import app
from sde.registry import open_registry
from sde.registry.audit_log import AuditEntry


def _log(tmp_path: Path, n: int = 5) -> tuple[AuditLog, str]:
    url = f"sqlite:///{tmp_path / 'sde-registry.sqlite'}"
    log = AuditLog(open_registry(url))
    for i in range(n):
        log.append(
            AuditRecord(
                user="ana",
                project="demo",
                scope_version="v",
                action="sql",
                sql=f"SELECT {i}",
                outcome="ok",
                rows=i,
                duration_ms=1.5,
            )
        )
    return log, url


def test_chain_verifies(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    result = log.verify()
    assert result.ok
    assert result.entries == 5
    assert len(result.head) == 64
    assert [e.seq for e in log.entries()] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (
            update(AuditEntry).where(AuditEntry.seq == 3).values(sql="SELECT 42"),
            "entry 3 was changed",
        ),
        (
            update(AuditEntry).where(AuditEntry.seq == 2).values(outcome="refused"),
            "entry 2 was changed",
        ),
        (update(AuditEntry).where(AuditEntry.seq == 4).values(rows=0), "entry 4 was changed"),
        (delete(AuditEntry).where(AuditEntry.seq == 3), "entries 3..3 are missing"),
        (delete(AuditEntry).where(AuditEntry.seq == 1), "entries 1..1 are missing"),
    ],
)
def test_tampering_is_detected(tmp_path: Path, tamper, problem: str) -> None:  # type: ignore[no-untyped-def]
    log, _ = _log(tmp_path)
    with Session(log.engine) as session:
        session.execute(tamper)
        session.commit()
    result = log.verify()
    assert not result.ok
    assert any(problem in p for p in result.problems), result.problems


def test_rehashed_entry_breaks_the_next_link(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    from sde.audit import entry_hash

    with Session(log.engine) as session:
        entry = session.get(AuditEntry, 2)
        assert entry is not None
        entry.sql = "SELECT 'forged'"
        values = {k: getattr(entry, k) for k in HASHED_FIELDS}
        entry.entry_hash = entry_hash(entry.prev_hash, values)
        session.commit()
    result = log.verify()
    assert not result.ok
    assert any("entry 3 does not follow" in p for p in result.problems)


def test_truncated_tail_needs_the_head(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    head = log.verify().head
    with Session(log.engine) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
        session.commit()
    assert log.verify().ok  # a chain cut at the end still verifies on its own...
    assert not log.verify(expect_head=head).ok  # ...but not against the remembered head


def test_cli_verify(tmp_path: Path) -> None:
    log, url = _log(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--registry", url])
    assert ok.exit_code == 0, ok.output
    assert "5 entries" in ok.output
    by_path = runner.invoke(app, ["audit", "verify", str(tmp_path)])
    assert by_path.exit_code == 0, by_path.output
    with Session(log.engine) as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 1).values(user="eve"))
        session.commit()
    bad = runner.invoke(app, ["audit", "verify", "--registry", url])
    assert bad.exit_code == 1
    assert "entry 1 was changed" in bad.output


def test_lock_joins_a_transaction_that_holds_the_write_lock(tmp_path: Path) -> None:
    """The budget ledger begins with BEGIN IMMEDIATE, then appends its entry: lock() must not
    BEGIN again there, and the entry commits (or rolls back) with the ledger's change."""
    log, _ = _log(tmp_path, n=1)
    record = AuditRecord.event("custodian", "dp.budget-set", "project:demo", project="demo")
    with log.engine.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        AuditLog.lock(conn)
        log.append(record, conn=conn)
        conn.rollback()
    assert log.count() == 1
    with log.engine.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        AuditLog.lock(conn)
        assert log.append(record, conn=conn) == 2
        conn.commit()
    assert log.verify().ok


def test_lock_takes_the_write_lock_in_a_reading_transaction(tmp_path: Path) -> None:
    """A transaction that has only read (SQLite's deferred BEGIN) gets the write lock from
    lock(): another writer waits until it ends, so the head it read stays the head."""
    log, url = _log(tmp_path, n=1)
    other = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0.05)
    with log.engine.connect() as conn:
        conn.exec_driver_sql("BEGIN")
        conn.exec_driver_sql("SELECT COUNT(*) FROM audit_log").fetchall()
        AuditLog.lock(conn)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        log.append(AuditRecord.event("ana", "x", "y"), conn=conn)
        conn.commit()
    other.execute("BEGIN IMMEDIATE")  # free again
    other.rollback()
    other.close()
    assert log.count() == 2
