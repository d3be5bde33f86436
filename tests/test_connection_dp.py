"""`conn.sql_dp()` and `conn.budget()` end to end: proxy scope + DP engine + ledger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

import sde
from sde.audit import AuditLog
from sde.dp.ledger import Ledger
from sde.errors import (
    BudgetExhausted,
    ConfigurationError,
    DPRefusal,
    QueryFailed,
    ScopeViolation,
)


def _scope(access: str, dp: dict[str, float] | None) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "project": f"dp-{access}",
        "access": access,
        "tables": {
            "person": ["person_id", "gender_concept_id", "year_of_birth"],
            "measurement": ["person_id", "measurement_concept_id", "value_as_number"],
            "observation": ["person_id", "observation_concept_id", "value_as_number"],
        },
        "expires": "2099-12-31",
    }
    if dp is not None:
        scope["dp"] = dp
    return scope


@pytest.fixture
def dp_conn(synth_dir: Path, tmp_path: Path) -> Any:
    registry = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    conn = sde.connect(
        synth_dir,
        scope=_scope("dp", {"epsilon": 1.0, "delta": 1e-6}),
        registry=registry,
        cache_dir=tmp_path / "cache",
    )
    yield conn
    conn.close()


def test_dp_project_answers_noisy_counts_and_charges_the_budget(dp_conn: Any) -> None:
    exact_persons = 6000 * 0.95  # synth_dir: 6,000 persons, about 5% opted out
    df = dp_conn.sql_dp(
        "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id",
        epsilon=0.2,
    )
    assert set(df.columns) == {"gender_concept_id", "n"}
    assert set(df["gender_concept_id"]) == {8507, 8532}  # public key set: no threshold
    assert abs(df["n"].sum() - exact_persons) < 0.1 * exact_persons
    assert "dp" in df.attrs
    status = dp_conn.budget()
    assert status.epsilon_spent == pytest.approx(0.2)
    assert status.epsilon_remaining == pytest.approx(0.8)
    # The identical query is answered from the stored release at no cost.
    again = dp_conn.sql_dp(
        "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id",
        epsilon=0.2,
    )
    assert again["n"].tolist() == df["n"].tolist()
    assert dp_conn.budget().epsilon_spent == pytest.approx(0.2)


def test_dp_project_refuses_plain_sql(dp_conn: Any) -> None:
    with pytest.raises(ScopeViolation) as err:
        dp_conn.sql("SELECT COUNT(*) FROM person")
    assert err.value.rule == "access.dp-only"


def test_overspending_is_refused_and_spends_nothing(dp_conn: Any) -> None:
    dp_conn.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.7)
    with pytest.raises(BudgetExhausted):
        dp_conn.sql_dp("SELECT COUNT(*) AS n FROM measurement", epsilon=0.5)
    assert dp_conn.budget().epsilon_spent == pytest.approx(0.7)


def test_scope_still_applies_to_dp_queries(dp_conn: Any) -> None:
    # Never-exposed and unlisted columns stay invisible to the DP path too.
    with pytest.raises(ScopeViolation) as err:
        dp_conn.sql_dp(
            "SELECT race_concept_id, COUNT(*) AS n FROM person GROUP BY race_concept_id",
            epsilon=0.1,
        )
    assert "race_concept_id" in str(err.value)
    assert dp_conn.budget().epsilon_spent == 0


def test_a_project_without_a_budget_cannot_ask_dp(synth_dir: Path, tmp_path: Path) -> None:
    conn = sde.connect(
        synth_dir,
        scope=_scope("rows", None),
        registry=f"sqlite:///{tmp_path / 'r.sqlite'}",
        cache_dir=tmp_path / "cache",
    )
    with pytest.raises(ConfigurationError) as err:
        conn.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.1)
    assert err.value.rule == "dp.no-budget"


def test_an_aggregates_project_with_a_budget_can_publish_dp(
    synth_dir: Path, tmp_path: Path
) -> None:
    conn = sde.connect(
        synth_dir,
        scope=_scope("aggregates", {"epsilon": 1.0, "delta": 1e-6}),
        registry=f"sqlite:///{tmp_path / 'r.sqlite'}",
        cache_dir=tmp_path / "cache",
    )
    df = conn.sql_dp(
        "SELECT AVG(LEAST(GREATEST(value_as_number, 60), 250)) AS sbp FROM measurement "
        "WHERE measurement_concept_id = 3004249",
        epsilon=0.5,
    )
    assert 100 < float(df["sbp"].iloc[0]) < 180


def test_the_error_channel_is_closed_end_to_end(dp_conn: Any) -> None:
    """Issue 8: an error that depends on one person's value is refused before running."""
    probe = (
        "SELECT COUNT(*) AS n FROM person p JOIN measurement m ON m.person_id = p.person_id "
        "WHERE CAST(CASE WHEN m.value_as_number > {t} THEN 'x' ELSE '1' END AS INTEGER) = 1"
    )
    rules = set()
    for t in (0, 10**6):
        with pytest.raises(DPRefusal) as err:
            dp_conn.sql_dp(probe.format(t=t), epsilon=0.001)
        rules.add(err.value.rule)
    assert rules == {"dp.not-total"}
    assert dp_conn.budget().epsilon_spent == 0


def test_the_row_cap_never_cuts_the_exact_totals_of_a_dp_query(
    synth_dir: Path, tmp_path: Path
) -> None:
    """The row cap bounds what a researcher sees; the DP engine's exact run used to be cut
    at it too (``LIMIT cap + 1`` in its SQL, then the cut), so a query with more groups than
    the cap silently lost totals: their keys were released as noise around zero."""
    registry = f"sqlite:///{tmp_path / 'r.sqlite'}"
    sql = "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY year_of_birth"
    with sde.connect(
        synth_dir, scope=_scope("rows", None), registry=registry, cache_dir=tmp_path / "c"
    ) as rows:
        exact = rows.sql(sql).set_index("year_of_birth")["n"]
    years = sorted(int(y) for y in exact.index[exact >= 50])
    assert len(years) > 10  # many more groups than the cap
    capped = sde.connect(
        synth_dir,
        scope=_scope("dp", {"epsilon": 10.0, "delta": 1e-6}),
        registry=registry,
        cache_dir=tmp_path / "c",
        row_cap=3,
    )
    with capped:
        df = capped.sql_dp(sql, epsilon=5.0, keys={"year_of_birth": years})
    got = df.set_index("year_of_birth")["n"]
    assert sorted(int(y) for y in got.index) == years
    for year in years:  # Laplace noise at epsilon 5 is a few persons, not a whole group
        assert abs(float(got[year]) - int(exact[year])) < 25, (year, got[year], exact[year])


def _entries(conn: Any) -> int:
    return AuditLog(conn.registry).count()


def _outcome(conn: Any) -> tuple[str, str, str | None]:
    last = AuditLog(conn.registry).entries()[-1]
    return last.action, last.outcome, last.rule


COUNT = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id"

#: Each researcher action on a dp project, in order, and the one entry it writes.
Action = tuple[str, Callable[[Any], object], type[Exception] | None, tuple[str, str, str | None]]
ACTIONS: list[Action] = [
    ("sql refused", lambda c: c.sql("SELECT 1"), ScopeViolation,
     ("sql", "refused", "access.dp-only")),
    ("explain", lambda c: c.explain("SELECT COUNT(*) FROM person"), None, ("explain", "ok", None)),
    ("answered", lambda c: c.sql_dp(COUNT, epsilon=0.2), None, ("sql_dp", "ok", None)),
    ("from release", lambda c: c.sql_dp(COUNT, epsilon=0.2), None, ("sql_dp", "ok", None)),
    ("scope refusal", lambda c: c.sql_dp("SELECT COUNT(note_text) FROM note", epsilon=0.1),
     ScopeViolation, ("sql_dp", "refused", "tables.not-allowed")),
    ("dp refusal", lambda c: c.sql_dp("SELECT * FROM person", epsilon=0.1),
     DPRefusal, ("sql_dp", "refused", "dp.non-aggregate")),
    ("not confirmed", lambda c: c.sql_dp(COUNT, accuracy=3), DPRefusal,
     ("sql_dp", "refused", "dp.not-confirmed")),
    ("over budget", lambda c: c.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.9),
     BudgetExhausted, ("sql_dp", "refused", "dp.budget")),
    ("budget view", lambda c: c.budget(), None, ("budget", "ok", None)),
]  # fmt: skip


def test_every_action_writes_exactly_one_audit_entry(dp_conn: Any) -> None:
    """Issue: only scope refusals of sql_dp were audited. Now every call a researcher makes
    writes one entry, whatever its outcome, and the chain still verifies."""
    for name, action, error, expected in ACTIONS:
        before = _entries(dp_conn)
        if error is None:
            action(dp_conn)
        else:
            with pytest.raises(error):
                action(dp_conn)
        assert _entries(dp_conn) == before + 1, name
        assert _outcome(dp_conn) == expected, name
    entries = AuditLog(dp_conn.registry).entries()
    answered, cached = entries[2], entries[3]
    assert answered.detail == "release 1: spent epsilon=0.2, delta=0"
    assert answered.rows == 2
    assert answered.rewritten_sha256  # the exact run's rewritten SQL, as for sql()
    assert cached.detail == "served from release 1, nothing spent"
    assert entries[-1].rows == 1  # the budget view: one release
    assert AuditLog(dp_conn.registry).verify().ok


def test_an_edited_scope_budget_is_refused_until_the_custodian_applies_it(
    synth_dir: Path, tmp_path: Path
) -> None:
    """Embedded mode: the registry beside the data holds the budget of record. A scope file
    whose budget was edited is refused (naming both budgets), audited, and spends nothing;
    the custodian's ``Ledger.set_totals`` applies an approved change."""
    registry = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    cache = tmp_path / "cache"
    with sde.connect(synth_dir, scope=_scope("dp", {"epsilon": 1.0, "delta": 1e-6}),
                     registry=registry, cache_dir=cache) as first:  # fmt: skip
        first.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.5)
    edited = _scope("dp", {"epsilon": 100.0, "delta": 1e-6})
    with sde.connect(synth_dir, scope=edited, registry=registry, cache_dir=cache) as conn:
        for action in (lambda: conn.sql_dp(COUNT, epsilon=0.1), conn.budget):
            before = _entries(conn)
            with pytest.raises(ConfigurationError) as err:
                action()
            assert err.value.rule == "dp.budget-mismatch"
            assert "epsilon=100, delta=1e-06" in err.value.message
            assert "epsilon=1, delta=1e-06" in err.value.message
            assert _entries(conn) == before + 1
            assert _outcome(conn)[1:] == ("refused", "dp.budget-mismatch")
        Ledger(conn.registry).set_totals("dp-dp", 100.0, 1e-6, actor="custodian")
        status = conn.budget()
    assert (status.epsilon_total, status.epsilon_spent) == (100.0, 0.5)


def test_a_failed_audit_entry_leaves_the_answer_unshown(dp_conn: Any) -> None:
    """The settlement and its entry are one transaction: when the entry cannot be written
    the answer is neither stored nor shown (the reservation stays charged: data was read)."""
    with dp_conn.registry.begin() as c:
        c.exec_driver_sql(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log WHEN NEW.action = 'sql_dp' "
            "BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END"
        )
    with pytest.raises(IntegrityError):
        dp_conn.sql_dp(COUNT, epsilon=0.2)
    status = dp_conn.budget()
    assert status.history[0].result.get("pending") is True
    assert not [e for e in AuditLog(dp_conn.registry).entries() if e.action == "sql_dp"]


def test_a_dp_run_the_engine_fails_audits_the_engine_words_only(
    dp_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extract lets the backend's ``EngineFailure`` through: the DP engine's audit entry
    keeps the engine's own message (which quotes a value), the error raised never does."""
    real = dp_conn._extract.run

    def failing(sql: str, **kwargs: Any) -> Any:  # a real DuckDB failure quoting a value
        return real("SELECT CAST('NHS 9990001234' AS INTEGER) AS x", **kwargs)

    monkeypatch.setattr(dp_conn._extract, "run", failing)
    with pytest.raises(QueryFailed) as info:
        dp_conn.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.1)
    assert info.value.rule == "dp.engine-error"
    assert "9990001234" not in repr(info.value.to_dict())
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    entry = AuditLog(dp_conn.registry).entries(project="dp-dp")[-1]
    assert (entry.outcome, entry.rule) == ("error", "dp.engine-error")
    assert entry.detail is not None
    assert "9990001234" in entry.detail
    assert dp_conn.budget().epsilon_spent == pytest.approx(0.1)  # a failure is charged
