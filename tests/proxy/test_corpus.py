"""The adversarial corpus: every query trips the rule it names, in every dialect.

Each case runs twice: through the pure pipeline (the rule id and the named
offender must match) and through a real scoped DuckDB connection, where the
refusal must carry the same rule and no planted sentinel. ``barrier`` cases
pass the rules by design and must return nothing out of scope. ``allow`` cases
are legitimate research SQL: they pass the rules and run on all three engines
(or are refused by name on an engine that cannot run them).
"""

from __future__ import annotations

import pytest

import sde
from sde.errors import SDEError
from sde.proxy.context import Limits, RuleContext
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.proxy.corpus import Case, entry_count, load, outcome
from tests.proxy.sentinel_data import SCOPE, sentinel_hits

CASES = load()
AGGREGATES_SCOPE = {**SCOPE, "project": "htn-aggregates", "access": "aggregates"}


def _scope(case: Case) -> Scope:
    return Scope.load(AGGREGATES_SCOPE if case.scope == "aggregates" else SCOPE)


def test_corpus_is_large_enough() -> None:
    assert entry_count() >= 200
    assert {c.dialect for c in CASES} == {"postgres", "duckdb", "spark"}


@pytest.fixture(scope="module")
def aggregates_conn(sentinel_nodes):  # type: ignore[no-untyped-def]
    conn = sde.connect(sentinel_nodes.folder, scope=AGGREGATES_SCOPE, user="tester")
    yield conn
    conn.close()


PASSING = (("barrier",), ("allow",))
ALLOWED = [c for c in CASES if c.allowed]


@pytest.mark.parametrize("case", [c for c in CASES if c.rules not in PASSING], ids=lambda c: c.id)
def test_rule_trips(case: Case) -> None:
    ctx = RuleContext(_scope(case), case.dialect, Limits())
    with pytest.raises(SDEError) as info:
        prepare(case.sql, ctx)
    err = info.value
    assert err.rule in case.rules, f"{err.rule}: {err.message}"
    if case.name is not None:
        assert case.name.lower() in err.message.lower(), err.message
    assert err.message
    assert not sentinel_hits(err.message)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_through_connection(case: Case, scoped, aggregates_conn) -> None:  # type: ignore[no-untyped-def]
    conn = aggregates_conn if case.scope == "aggregates" else scoped
    frame, error = outcome(lambda: conn.sql(case.sql, dialect=case.dialect))
    if error is not None:
        assert not sentinel_hits(error.message), error.message
        if case.rules != ("barrier",):
            assert error.rule in case.rules
        return
    assert case.rules in PASSING, f"not refused; returned {len(frame)} rows"
    assert not sentinel_hits(frame)


def test_corpus_has_allowed_research_sql() -> None:
    assert len({(c.file, c.index) for c in ALLOWED}) >= 10


@pytest.mark.parametrize("case", ALLOWED, ids=lambda c: c.id)
def test_allowed_passes_every_rule(case: Case) -> None:
    prepare(case.sql, RuleContext(_scope(case), case.dialect, Limits()))


@pytest.mark.parametrize("case", [c for c in ALLOWED if c.scope == "rows"], ids=lambda c: c.id)
def test_allowed_runs_on_every_engine(case: Case, engine_case) -> None:  # type: ignore[no-untyped-def]
    frame, error = outcome(lambda: engine_case.conn.sql(case.sql, dialect=case.dialect))
    if engine_case.engine in case.engines:
        assert error is None, f"{error.rule}: {error.message}" if error else ""
        assert frame is not None
        assert len(frame) > 0
        assert not sentinel_hits(frame)
        return
    assert error is not None
    assert error.rule == "engine.unsupported"
    assert engine_case.engine in error.message
