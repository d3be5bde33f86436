"""Aggregates mode has no row-level error oracle: an engine error never depends on data.

The attack: a query whose *engine error* depends on one person's data. Aggregates mode
shows only thresholded aggregates, so "the query failed" is a bit about that person::

    SELECT gender_concept_id, COUNT(*) FROM person
    WHERE CASE WHEN <one person's attributes> THEN 1/0 ELSE 1 END = 1 GROUP BY 1

Every probe family below fails on a raw engine exactly when the largest measurement value
(one person's exact value) is above ``T``; the family is written so that, when nothing
fails, the visible result is the same for every ``T``. Each runs with ``T`` just below
and just above that value through a real aggregates-mode connection on DuckDB,
PostgreSQL and Spark: the researcher must see one and the same thing (refused with
``aggregates.not-total``, or the same rows and metadata), never ``engine.error``. The
same queries through a rows-mode connection (no totality rule) show that each family is
a real oracle on at least one engine, so the table tests something.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import sde
from sde.errors import SDEError
from tests.fixtures.proxy import scope_with

AGGREGATES = scope_with(project="htn-oracle", access="aggregates")

BASE = (
    "SELECT p.gender_concept_id AS g, COUNT(*) AS n FROM person p "
    "JOIN measurement m ON m.person_id = p.person_id {where} GROUP BY 1 {having} ORDER BY 1"
)
#: The dangerous branch: true for the target's row(s) only when ``T`` is below the value.
HIT = "m.value_as_number > {T}"

#: family -> (WHERE, HAVING, expected outcome in aggregates mode: refused or answered).
PROBES: dict[str, tuple[str, str, str]] = {
    # row level (WHERE): evaluated on every in-scope row before grouping
    "int-division-by-zero": (f"COALESCE(1 / CASE WHEN {HIT} THEN 0 ELSE 1 END, 0) >= 0", "", "ok"),
    "float-division-by-zero": (
        f"COALESCE(1.0 / CASE WHEN {HIT} THEN 0.0 ELSE 1.0 END, 0) >= 0",
        "",
        "ok",
    ),
    "modulo-by-zero": (
        f"COALESCE(p.year_of_birth % CASE WHEN {HIT} THEN 0 ELSE 7 END, 0) >= 0",
        "",
        "ok",
    ),
    "int-addition-overflow": (
        f"p.year_of_birth + CASE WHEN {HIT} THEN 2147483647 ELSE 0 END > 0",
        "",
        "ok",
    ),
    "int-multiplication-overflow": (
        f"p.year_of_birth * CASE WHEN {HIT} THEN 2000000000 ELSE 1 END > 0",
        "",
        "ok",
    ),
    "bigint-overflow": (
        f"p.person_id + CASE WHEN {HIT} THEN 9223372036854775807 ELSE 0 END > -1",
        "",
        "refused",
    ),
    "double-overflow": (
        f"m.value_as_number * CASE WHEN {HIT} THEN 1e308 ELSE 1 END > -1",
        "",
        "ok",
    ),
    "cast-text-to-int": (
        f"CAST(CASE WHEN {HIT} THEN 'x' ELSE '1' END AS INTEGER) = 1",
        "",
        "refused",
    ),
    "cast-double-to-int": (
        f"CAST(CASE WHEN {HIT} THEN 1e12 ELSE 1 END AS INTEGER) >= 0",
        "",
        "refused",
    ),
    "cast-text-to-date": (
        f"CAST(CASE WHEN {HIT} THEN 'x' ELSE '2020-01-01' END AS DATE) > DATE '2000-01-01'",
        "",
        "refused",
    ),
    "sqrt-of-negative": (f"SQRT(CASE WHEN {HIT} THEN -1 ELSE 1 END) > 0", "", "refused"),
    "ln-of-negative": (f"LN(CASE WHEN {HIT} THEN -1 ELSE 1 END) >= 0", "", "refused"),
    "exp-overflow": (f"EXP(CASE WHEN {HIT} THEN 1000 ELSE 0 END) > 0", "", "refused"),
    # group level (HAVING): aggregates that fail because of one person's rows
    "bigint-sum-overflow": (
        "",
        f"SUM(CASE WHEN {HIT} THEN 9223372036854775807 ELSE 1 END) > 0",
        "refused",
    ),
    "division-by-group-sum": (
        "",
        f"COALESCE(1 / (SUM(CASE WHEN {HIT} THEN 1 ELSE 0 END) - 1), 0) >= -1",
        "ok",
    ),
    "double-sum-overflow": (
        "",
        f"SUM(CASE WHEN {HIT} THEN 1e308 ELSE 0 END) * 10 >= 0",
        "ok",
    ),
    "stddev-overflow": (
        "",
        f"COALESCE(STDDEV_SAMP(CASE WHEN {HIT} THEN 1e300 ELSE 0 END), 0) >= 0",
        "ok",
    ),
}

#: Families written with a derived table: the error happens inside a per-person CTE.
CTE_PROBES: dict[str, tuple[str, str]] = {
    "cte-division-by-zero": (
        "WITH t AS (SELECT m.person_id, 1 / CASE WHEN {HIT} THEN 0 ELSE 1 END AS x "
        "FROM measurement m) SELECT p.gender_concept_id AS g, COUNT(*) AS n FROM person p "
        "JOIN t ON t.person_id = p.person_id WHERE COALESCE(t.x, 0) >= 0 GROUP BY 1 ORDER BY 1",
        "ok",
    ),
    "cte-per-person-sum-overflow": (
        "WITH t AS (SELECT m.person_id, SUM(CASE WHEN {HIT} THEN 9223372036854775807 ELSE 1 "
        "END) AS s FROM measurement m GROUP BY m.person_id) SELECT p.gender_concept_id AS g, "
        "COUNT(*) AS n FROM person p JOIN t ON t.person_id = p.person_id WHERE t.s > 0 "
        "GROUP BY 1 ORDER BY 1",
        "refused",
    ),
}


def probe_sql(family: str, t: float) -> str:
    hit = HIT.format(T=repr(t))
    if family in CTE_PROBES:
        return CTE_PROBES[family][0].replace("{HIT}", hit)
    where, having, _ = PROBES[family]
    return BASE.format(
        where=f"WHERE {where.format(T=repr(t))}" if where else "",
        having=f"HAVING {having.format(T=repr(t))}" if having else "",
    )


def expected(family: str) -> str:
    return CTE_PROBES[family][1] if family in CTE_PROBES else PROBES[family][2]


FAMILIES = sorted([*PROBES, *CTE_PROBES])


@dataclass
class Case:
    engine: str
    conn: Any  # aggregates mode
    rows: Any  # rows mode over the same node(s): no totality rule
    value: float  # the largest measurement value: one person's exact value


def _open(engine: str, request: pytest.FixtureRequest) -> Any:
    nodes = request.getfixturevalue("sentinel_nodes")
    if engine == "duckdb":
        return sde.connect(nodes.folder, scope=AGGREGATES, user="attacker")
    common = {"scope": AGGREGATES, "registry": nodes.registry, "user": "attacker"}
    if engine == "postgres":
        return sde.connect(request.getfixturevalue("pg_sentinel_dsn"), schema="lth", **common)
    warehouse = request.getfixturevalue("spark_sentinel_warehouse")
    return sde.connect(warehouse, spark=request.getfixturevalue("spark"), node="lth", **common)


_ROWS = {"duckdb": "scoped", "postgres": "pg_scoped", "spark": "spark_scoped"}


@pytest.fixture(scope="module", params=["duckdb", "postgres", "spark"])
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    rows = request.getfixturevalue(_ROWS[request.param])
    value = float(rows.sql("SELECT MAX(value_as_number) AS v FROM measurement").v[0])
    conn = _open(request.param, request)
    yield Case(request.param, conn, rows, value)
    conn.close()


def visible(conn: Any, sql: str, hidden: object = None) -> tuple[Any, ...]:
    """Everything the researcher can observe about one query (a refusal quotes the query,
    so the hidden value the query itself holds is blanked in its message)."""
    try:
        frame = conn.sql(sql)
    except SDEError as err:
        message = err.message if hidden is None else err.message.replace(str(hidden), "?")
        return ("error", err.rule, message)
    cells = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    return ("ok", list(frame.columns), cells, repr(frame.attrs))


@pytest.mark.parametrize("family", FAMILIES)
def test_probe_outcome_does_not_depend_on_the_threshold(case: Case, family: str) -> None:
    low, high = case.value - 0.5, case.value + 0.5
    below = visible(case.conn, probe_sql(family, low), repr(low))
    above = visible(case.conn, probe_sql(family, high), repr(high))
    assert below == above, f"{family} tells T apart on {case.engine}: {below} != {above}"
    if expected(family) == "refused":
        assert below[:2] == ("error", "aggregates.not-total"), below
        assert "aggregates mode" in below[2]
    else:
        assert below[0] == "ok", below
        assert below[2], "every gender group survives the threshold"


def test_every_probe_is_an_oracle_without_the_rule(case: Case) -> None:
    """Rows mode runs the same SQL unchecked for totality: most families fail there for
    one T and not the other, so the aggregates-mode table above tests something."""
    told_apart = []
    for family in FAMILIES:
        below = visible(case.rows, probe_sql(family, case.value - 0.5))
        above = visible(case.rows, probe_sql(family, case.value + 0.5))
        if below[:2] == ("error", "engine.error") and above[0] == "ok":
            told_apart.append(family)
    # each engine has its own partial constructs; all of them have these
    common = {"int-division-by-zero", "int-addition-overflow", "cast-text-to-int"}
    assert common <= set(told_apart), told_apart
    if case.engine == "spark":  # ANSI mode: a BIGINT SUM overflows
        assert "bigint-sum-overflow" in told_apart


def test_the_reported_attack_no_longer_fails(case: Case) -> None:
    """The colleague's query: a division by zero aimed at one person's attributes. It now
    runs whether or not the person exists (what the filter itself keeps is the known
    'predicate aimed at one person' limit of thresholds, not an error bit)."""
    year = int(case.rows.sql("SELECT MIN(year_of_birth) AS y FROM person").y[0])
    sql = (
        "SELECT gender_concept_id, COUNT(*) AS n FROM person WHERE CASE WHEN "
        "year_of_birth = {y} THEN 1/0 ELSE 1 END = 1 GROUP BY 1 ORDER BY 1"
    )
    present, absent = (visible(case.conn, sql.format(y=y)) for y in (year, 1901))
    assert present[0] == absent[0] == "ok", (present, absent)
    cast = (
        "SELECT gender_concept_id, COUNT(*) AS n FROM person WHERE CAST(CASE WHEN "
        "year_of_birth = {y} THEN 'x' ELSE '1' END AS INT) = 1 GROUP BY 1"
    )
    present, absent = (visible(case.conn, cast.format(y=y)) for y in (year, 1901))
    assert present[:2] == absent[:2] == ("error", "aggregates.not-total")


# -- legitimate research is not broken -------------------------------------------------

#: Research queries aggregates mode accepted before the totality rule that it now refuses,
#: and why: each holds a construct that can fail on some data.
NOW_REFUSED = {
    "cast-source-values": "CAST(text AS INT) fails on a value that is not a number",
}


def _aggregates_context() -> Any:
    from sde.proxy.context import RuleContext
    from sde.scope import Scope
    from tests.proxy.sentinel_data import SCOPE

    return RuleContext(Scope.load({**SCOPE, "project": "htn-oracle", "access": "aggregates"}))


def test_research_queries_that_are_total_still_pass() -> None:
    """Every research query the aggregates-mode rules accept without the totality rule is
    still accepted with it, unless listed in NOW_REFUSED (and those are refused)."""
    from pathlib import Path

    import yaml

    from sde.proxy.parse import parse
    from sde.proxy.pipeline import prepare
    from sde.proxy.rules import RULES, totality

    ctx = _aggregates_context()
    queries = yaml.safe_load((Path(__file__).parent / "research_queries.yaml").read_text())
    accepted, refused = [], {}
    for query in queries:
        try:
            tree = parse(query["sql"], ctx)
            for rule in RULES:
                tree = tree if rule is totality.check else rule(tree, ctx)
        except SDEError:
            continue
        accepted.append(query["name"])
        try:
            prepare(query["sql"], ctx)
        except SDEError as err:
            refused[query["name"]] = err.rule
    assert refused == dict.fromkeys(NOW_REFUSED, "aggregates.not-total")
    assert len(accepted) >= 45, accepted


def test_date_arithmetic_runs_on_every_engine(case: Case) -> None:
    """``date + 90`` is guarded (dates outside 0200..9800 become NULL) and still agrees with
    rows mode, which runs it unguarded."""
    sql = (
        "SELECT p.gender_concept_id AS g, COUNT(*) AS n, AVG(m.measurement_date - "
        "c.condition_start_date) AS days FROM person p JOIN measurement m ON m.person_id = "
        "p.person_id JOIN condition_occurrence c ON c.person_id = p.person_id WHERE "
        "m.measurement_date BETWEEN c.condition_start_date - 36500 AND "
        "c.condition_start_date + 90 GROUP BY 1 ORDER BY 1"
    )
    got = case.conn.sql(sql)
    expected = case.rows.sql(sql).set_index("g").loc[got.g.tolist()]
    assert len(got) > 0
    assert got.n.tolist() == expected.n.tolist()
    assert list(map(_days, got.days)) == list(map(_days, expected.days))


def _days(value: Any) -> float:
    """A mean number of days (Spark returns date - date as an interval)."""
    days = value.total_seconds() / 86400 if hasattr(value, "total_seconds") else float(value)
    return round(days, 6)
