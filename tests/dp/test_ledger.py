"""The budget can never be overspent: atomic spends, concurrency, crashes, repeats."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from sde.audit import AuditLog, AuditRecord
from sde.dp.engine import DPEngine
from sde.dp.ledger import EPS_UNIT, Ledger, Release, to_units
from sde.errors import BudgetExhausted, ConfigurationError
from sde.registry.db import open_registry


def _spend_all(ledger: Ledger, project: str, n: int, eps: float, workers: int) -> tuple[int, int]:
    barrier = threading.Barrier(workers)

    def one(i: int) -> bool:
        if i < workers:
            barrier.wait()
        try:
            ledger.record(
                project, f"q{i}", user="u", sql="SELECT 1", epsilon=eps, delta=0.0, result={"i": i}
            )
        except BudgetExhausted:
            return False
        return True

    with ThreadPoolExecutor(workers) as pool:
        answered = sum(pool.map(one, range(n)))
    return answered, n - answered


def test_costs_add_up_exactly(dp_registry: Engine) -> None:
    ledger = Ledger(dp_registry)
    ledger.ensure_project("p", 1.0, 1e-6)
    answered, refused = _spend_all(ledger, "p", 21, 0.05, 1)
    assert (answered, refused) == (20, 1)  # 20 x 0.05 is exactly 1.0 in ledger units
    assert ledger.status("p").epsilon_spent == 1.0


def test_refusal_spends_nothing(dp_registry: Engine) -> None:
    ledger = Ledger(dp_registry)
    ledger.ensure_project("p", 1.0, 1e-6)
    with pytest.raises(BudgetExhausted, match="nothing was spent") as err:
        ledger.record("p", "big", user="u", sql="x", epsilon=1.5, delta=0.0, result={})
    assert err.value.details["epsilon_remaining"] == 1.0
    status = ledger.status("p")
    assert status.epsilon_spent == 0
    assert status.history == ()
    with pytest.raises(BudgetExhausted):
        ledger.record("p", "delta", user="u", sql="x", epsilon=0.1, delta=2e-6, result={})


def test_fifty_concurrent_queries_spend_at_most_the_budget(
    dp_engine: Callable[..., DPEngine],
) -> None:
    engine = dp_engine(epsilon=1.0)
    results: dict[int, object] = {}

    def ask(i: int) -> None:
        try:
            results[i] = engine.sql_dp(f"SELECT COUNT(*) AS n{i} FROM person", epsilon=0.05)
        except BudgetExhausted as err:
            results[i] = err

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(ask, range(50)))
    answered = [i for i, r in results.items() if not isinstance(r, BudgetExhausted)]
    status = engine.budget()
    assert len(answered) == 20
    assert status.epsilon_spent == pytest.approx(1.0, abs=1e-12)
    assert status.epsilon_spent <= 1.0
    recorded = {r.sql for r in status.history}
    assert recorded == {f"SELECT COUNT(*) AS n{i} FROM person" for i in answered}


@pytest.mark.postgres
def test_fifty_concurrent_spends_on_postgresql(pg_server) -> None:  # type: ignore[no-untyped-def]
    dsn = pg_server.create_database()
    parts = dict(p.split("=") for p in dsn.split())
    url = f"postgresql+psycopg://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    engine = open_registry(url)
    try:
        ledger = Ledger(engine)
        ledger.ensure_project("p", 1.0, 1e-6)
        answered, refused = _spend_all(ledger, "p", 50, 0.05, 16)
        status = ledger.status("p")
        assert (answered, refused) == (20, 30)
        assert status.epsilon_spent == 1.0
        assert len(status.history) == 20
    finally:
        engine.dispose()


def test_crash_before_commit_returns_nothing_and_spends_nothing(
    dp_engine: Callable[..., DPEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = dp_engine(epsilon=1.0)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("process died inside the ledger transaction")

    monkeypatch.setattr(Ledger, "_refuse_if_over", staticmethod(crash))
    with pytest.raises(RuntimeError):
        engine.sql_dp("SELECT COUNT(*) FROM person", epsilon=0.5)
    monkeypatch.undo()
    status = engine.budget()
    assert status.epsilon_spent == 0
    assert status.history == ()


def test_crash_after_commit_keeps_the_release_and_answers_it_free(
    dp_engine: Callable[..., DPEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = dp_engine(epsilon=1.0)
    sql = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1"

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("process died before answering")

    monkeypatch.setattr(DPEngine, "_answer", crash)
    with pytest.raises(RuntimeError):
        engine.sql_dp(sql, epsilon=0.5)
    monkeypatch.undo()
    status = engine.budget()
    assert status.epsilon_spent == 0.5
    assert len(status.history) == 1
    again = engine.sql_dp(sql, epsilon=0.5)
    assert again.attrs["dp"]["cached"] is True
    assert engine.budget().epsilon_spent == 0.5
    assert again["n"].tolist() == status.history[0].result["noisy"]["n_rows"]


def test_answer_is_rendered_from_the_stored_record(
    dp_engine: Callable[..., DPEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = dp_engine(epsilon=1.0)
    real = Ledger.settle

    def settle(
        self: Ledger,
        project: str,
        reservation: int,
        qhash: str,
        result: dict[str, Any],
        audit: AuditRecord | None = None,
    ) -> Release:
        forged = {**result, "noisy": {"n_rows": [424242]}}
        return real(self, project, reservation, qhash, forged, audit)

    monkeypatch.setattr(Ledger, "settle", settle)
    out = engine.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.1)
    assert out["n"].tolist() == [424242]


def test_identical_query_is_free_and_different_epsilon_is_not(
    dp_engine: Callable[..., DPEngine],
) -> None:
    engine = dp_engine(epsilon=1.0, user="alice")
    first = engine.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.2)
    second = engine.sql_dp("select count(*) as n from person", epsilon=0.2, alpha=0.01)
    assert second["n"].tolist() == first["n"].tolist()
    assert second.attrs["dp"]["cached"]
    assert not first.attrs["dp"]["cached"]
    assert (
        second.attrs["dp"]["columns"]["n"]["half_width"][0]
        > first.attrs["dp"]["columns"]["n"]["half_width"][0]
    )  # re-rendered at 99%
    engine.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.3)
    status = engine.budget()
    assert status.epsilon_spent == pytest.approx(0.5)
    assert status.epsilon_remaining == pytest.approx(0.5)
    assert [r.user for r in status.history] == ["alice", "alice"]
    assert all(len(r.query_hash) == 64 and r.created_at for r in status.history)


def test_a_scope_never_changes_the_budget_of_record(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue: the totals were reset to whatever scope the caller passed. The registry holds
    the budget; a scope that disagrees is refused, naming both, and changes nothing."""
    engine = open_registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    ledger = Ledger(engine)
    ledger.ensure_project("p", 1.0, 1e-6)
    ledger.ensure_project("p", 1.0, 1e-6)  # the same totals: nothing to say
    ledger.record("p", "a", user="u", sql="x", epsilon=0.8, delta=0.0, result={})
    for eps, dlt in ((5.0, 1e-6), (0.5, 1e-6), (1.0, 1e-5)):
        with pytest.raises(ConfigurationError) as err:
            ledger.ensure_project("p", eps, dlt)
        assert err.value.rule == "dp.budget-mismatch"
        assert f"epsilon={eps:g}, delta={dlt:g}" in err.value.message  # the scope's
        assert "epsilon=1, delta=1e-06" in err.value.message  # the registry's
        assert err.value.details["registry_epsilon"] == 1.0
    status = ledger.status("p")
    assert (status.epsilon_total, status.delta_total, status.epsilon_spent) == (1.0, 1e-6, 0.8)


def test_set_totals_is_the_audited_admin_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = open_registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    ledger, log = Ledger(engine), AuditLog(engine)
    ledger.ensure_project("p", 1.0, 1e-6)
    ledger.record("p", "a", user="u", sql="x", epsilon=0.8, delta=0.0, result={})
    ledger.set_totals("p", 0.5, 1e-6, actor="custodian")  # the committee lowered it
    assert ledger.status("p").epsilon_remaining == 0.0
    with pytest.raises(BudgetExhausted):
        ledger.record("p", "b", user="u", sql="x", epsilon=0.01, delta=0.0, result={})
    ledger.ensure_project("p", 0.5, 1e-6)  # the amended scope now agrees
    (event,) = log.entries(project="p")
    assert (event.user, event.action, event.object) == ("custodian", "dp.budget-set", "project:p")
    assert json.loads(event.details or "") == {
        "from": {"epsilon": 1.0, "delta": 1e-6},
        "to": {"epsilon": 0.5, "delta": 1e-6},
    }
    # the change and its audit event commit together: no event, no change
    _break_audit_log(engine)
    with pytest.raises(IntegrityError, match="audit log unavailable"):
        ledger.set_totals("p", 3.0, 1e-6, actor="custodian")
    assert ledger.status("p").epsilon_total == 0.5
    assert log.count() == 1


def _break_audit_log(engine: Engine) -> None:
    """A real failure of the audit insert inside the spender's transaction (a trigger in
    the test's database, not a mock)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END"
        )


def _entry(sql: str) -> AuditRecord:
    return AuditRecord(
        user="u", project="p", scope_version="v", action="sql_dp", sql=sql, outcome="ok",
        duration_ms=1.0,
    )  # fmt: skip


def test_a_spend_and_its_audit_entry_commit_together(dp_registry: Engine) -> None:
    """Issue: the spend and its audit row committed in separate transactions. Now the
    ledger appends the entry in its own transaction: a failed audit insert rolls back the
    spend (record), the settlement (settle) and the failure mark (fail)."""
    ledger, log = Ledger(dp_registry), AuditLog(dp_registry)
    ledger.ensure_project("p", 1.0, 1e-6)
    ledger.record(
        "p", "q0", user="u", sql="x", epsilon=0.1, delta=0.0, result={}, audit=_entry("x")
    )
    assert [e.detail for e in log.entries()] == ["release 1: spent epsilon=0.1, delta=0"]
    held = ledger.reserve("p", "q1", user="u", sql="y", epsilon=0.2, delta=0.0)
    _break_audit_log(dp_registry)
    with pytest.raises(IntegrityError, match="audit log unavailable"):
        ledger.record(
            "p", "q2", user="u", sql="z", epsilon=0.3, delta=0.0, result={}, audit=_entry("z")
        )
    with pytest.raises(IntegrityError, match="audit log unavailable"):
        ledger.settle("p", held, "q1", {"noisy": 1}, _entry("y"))
    with pytest.raises(IntegrityError, match="audit log unavailable"):
        ledger.fail("p", held, "q1", _entry("y"))
    status = ledger.status("p")
    assert status.epsilon_spent == pytest.approx(0.3)  # q0 and the reservation, nothing else
    assert next(r.query_hash for r in status.history) == "q0"
    assert status.history[1].result["pending"] is True  # neither settled nor marked failed
    assert ledger.find("p", "q1") is None
    assert ledger.find("p", "q2") is None
    assert log.count() == 1
    assert log.verify().ok


@settings(max_examples=60, deadline=None)
@given(
    total=st.floats(min_value=1e-3, max_value=50, allow_nan=False),
    costs=st.lists(st.floats(min_value=1e-9, max_value=5, allow_nan=False), max_size=40),
)
def test_unit_rounding_never_admits_more_than_the_total(total: float, costs: list[float]) -> None:
    """Accepting costs by integer units never lets their exact (rational) sum pass the total."""
    budget = to_units(total, EPS_UNIT, up=False)
    spent, accepted = 0, []
    for c in costs:
        units = to_units(c, EPS_UNIT, up=True)
        if spent + units <= budget:
            spent += units
            accepted.append(c)
    assert sum((Fraction(c) for c in accepted), Fraction(0)) <= Fraction(total)


def test_a_refund_and_its_audit_entry_commit_together(dp_registry: Engine) -> None:
    """Every spend, settlement, failure mark and refund runs through one helper that locks
    the budget row, writes, then audits: a refund whose entry cannot be written is undone,
    and a project with no budget row is refused before anything is written."""
    ledger, log = Ledger(dp_registry), AuditLog(dp_registry)
    ledger.ensure_project("p", 1.0, 1e-6)
    held = ledger.reserve("p", "q1", user="u", sql="y", epsilon=0.2, delta=0.0)
    _break_audit_log(dp_registry)
    with pytest.raises(IntegrityError, match="audit log unavailable"):
        ledger.refund("p", held, _entry("y"))
    assert ledger.status("p").epsilon_spent == pytest.approx(0.2)  # still reserved
    for spend in (
        lambda: ledger.reserve("none", "q", user="u", sql="x", epsilon=0.1, delta=0.0),
        lambda: ledger.refund("none", held, _entry("y")),
    ):
        with pytest.raises(ConfigurationError) as err:
            spend()
        assert err.value.rule == "dp.no-budget"
    assert log.count() == 0
