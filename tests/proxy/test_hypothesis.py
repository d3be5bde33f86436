"""Hypothesis: generated queries never crash the proxy and never return a sentinel.

Queries are assembled from pieces a researcher (or an attacker) might use:
allowlisted and forbidden tables and columns, sentinel literals, casts that
fail on out-of-scope values, safe and unsafe functions, joins, subqueries, set
operations, and raw text mutations (unicode, semicolons, comments). Whatever
comes out, the proxy answers with a DataFrame free of sentinels or an
``SDEError`` whose message is free of them: never another exception.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sde.errors import SDEError
from sde.omop.cdm import CDM
from sde.proxy.context import Limits, RuleContext
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.proxy.corpus import outcome
from tests.proxy.sentinel_data import SCOPE, sentinel_hits

TABLES = [
    *SCOPE["tables"],
    "note",
    "sde_opt_out",
    "provider",
    "location",
    "main.person",
    "'x.csv'",
    "information_schema.tables",
    "pg_class",
    "read_csv('/etc/passwd')",
]
COLUMNS = sorted(
    {
        c
        for t in (
            "person",
            "measurement",
            "condition_occurrence",
            "visit_occurrence",
            "drug_exposure",
            "death",
        )
        for c in CDM.table(t).column_names
    }
)
LITERALS = [
    "1111",
    "1112",
    "31337.125",
    "900001",
    "'SENTINEL-OOC'",
    "'999000%'",
    "NULL",
    "0",
    "DATE '2010-01-01'",
    "DATE '2020-06-30'",
    "'x'",
    "140",
]
FUNCTIONS = [
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "LOWER",
    "ABS",
    "COALESCE",
    "pg_sleep",
    "read_text",
    "current_setting",
    "random",
    "LENGTH",
    "ROUND",
]
OPS = ["=", "<", ">", "<>", ">=", "LIKE", "IS NOT DISTINCT FROM"]
NOISE = [";", "--", "/*", "*/", "\u200b", "\u0435", "'", '"', "(", ")", "\x00", " UNION ", " DROP "]

ident = st.sampled_from(COLUMNS)
table = st.sampled_from(TABLES)


@st.composite
def expression(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 4))
    col = draw(ident)
    if kind == 0:
        return col
    if kind == 1:
        return f"CAST({col} AS {draw(st.sampled_from(['INTEGER', 'VARCHAR', 'DATE', 'DOUBLE']))})"
    if kind == 2:
        return f"{draw(st.sampled_from(FUNCTIONS))}({col})"
    if kind == 3:
        test = f"{col} {draw(st.sampled_from(OPS))} {draw(st.sampled_from(LITERALS))}"
        return f"CASE WHEN {test} THEN 1 ELSE 0 END"
    return draw(st.sampled_from(LITERALS))


@st.composite
def query(draw: st.DrawFn) -> str:
    t = draw(table)
    cols = ", ".join(draw(st.lists(expression(), min_size=1, max_size=3)))
    if draw(st.booleans()):
        cols = draw(st.sampled_from(["*", "COUNT(*)", "t0.*"]))
    sql = f"SELECT {cols} FROM {t} t0"
    if draw(st.booleans()):
        other = draw(table)
        sql += f" JOIN {other} t1 ON t1.person_id = t0.person_id"
    if draw(st.booleans()):
        op, literal = draw(st.sampled_from(OPS)), draw(st.sampled_from(LITERALS))
        sql += f" WHERE {draw(expression())} {op} {literal}"
    if draw(st.booleans()):
        sql += f" AND t0.person_id IN (SELECT person_id FROM {draw(table)})"
    if draw(st.integers(0, 3)) == 0:
        sql += f" GROUP BY {draw(ident)}"
    if draw(st.integers(0, 3)) == 0:
        sql = f"{sql} UNION ALL SELECT {draw(expression())} FROM {draw(table)}"
    if draw(st.integers(0, 3)) == 0:
        sql = f"WITH {draw(st.sampled_from(['person', 'x', 'note']))} AS ({sql}) SELECT * FROM x"
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(sql)))
        sql = sql[:at] + draw(st.sampled_from(NOISE)) + sql[at:]
    return sql


DIALECTS = st.sampled_from(["postgres", "duckdb", "spark"])


@settings(max_examples=400, deadline=None)
@given(sql=query(), dialect=DIALECTS)
def test_pipeline_never_crashes(sql: str, dialect: str) -> None:
    ctx = RuleContext(Scope.load(SCOPE), dialect, Limits())
    prepared, error = outcome(lambda: prepare(sql, ctx))
    if error is not None:
        assert error.rule
        assert error.message
        return
    for engine in ("duckdb", "postgres", "spark"):
        with contextlib.suppress(SDEError):
            prepared.sql(engine)


@settings(max_examples=300, deadline=None)
@given(sql=st.text(max_size=200), dialect=DIALECTS)
def test_arbitrary_text_never_crashes(sql: str, dialect: str) -> None:
    ctx = RuleContext(Scope.load(SCOPE), dialect, Limits())
    with contextlib.suppress(SDEError):
        prepare(sql, ctx)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sql=query(), dialect=DIALECTS)
def test_connection_never_returns_a_sentinel(scoped: Any, sql: str, dialect: str) -> None:
    frame, error = outcome(lambda: scoped.sql(sql, dialect=dialect))
    if error is not None:
        assert not sentinel_hits(error.message, ignore=sql), error.message
        return
    assert not sentinel_hits(frame, ignore=sql), sql
