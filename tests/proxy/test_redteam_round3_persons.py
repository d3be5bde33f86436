"""Red-team round 3: per-person checks below the outermost query (aggregates mode).

Holes found open and closed in ``sde/proxy/rules/aggregates.py``:

1. A window in a derived table/CTE partitioned by an *expression* of ``person_id``
   (``PARTITION BY m.person_id IS NOT NULL``) passed the per-person check, which only
   looked for a ``person_id`` column anywhere inside the partition keys: ``MAX(x) OVER
   (PARTITION BY m.person_id IS NOT NULL)`` is ``MAX(x) OVER ()``, the refused broadcast
   of one person's value to every row. A per-person key is now the bare column.
2. ``DISTINCT ON (k)`` below the outermost query keeps, per ``k``, the row of the one
   person that sorts first: an arg-max across persons, exactly what the refused
   ``ROW_NUMBER() OVER (PARTITION BY k ORDER BY ...) = 1`` does. It now needs a bare
   ``person_id`` key.
3. ``ORDER BY ... LIMIT n`` (and OFFSET, FETCH, TOP) in an uncorrelated CTE keeps the
   top-n rows across persons (which persons are kept depends on everybody else's
   values). Refused unless correlated on the outer person.
"""

from __future__ import annotations

from typing import Any

import pytest

import sde
from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.fixtures.proxy import scope_with

AGGREGATES = scope_with(project="rt3-persons", access="aggregates")


def _prepare(sql: str) -> Any:
    return prepare(sql, RuleContext(Scope.from_dict(AGGREGATES)))


@pytest.fixture(scope="module")
def aggregates(sentinel_nodes: Any) -> Any:
    conn = sde.connect(sentinel_nodes.folder, scope=AGGREGATES, user="tester")
    yield conn
    conn.close()


# -- 1. PARTITION BY an expression of person_id -----------------------------------------

BROADCAST_WINDOWS = [
    "SELECT t.mx, COUNT(*) AS n FROM (SELECT m.person_id, MAX(m.value_as_number) OVER "
    "(PARTITION BY m.person_id IS NOT NULL) AS mx FROM measurement m) t GROUP BY 1",
    "SELECT t.mx, COUNT(*) AS n FROM (SELECT m.person_id, MAX(m.value_as_number) OVER "
    "(PARTITION BY m.person_id = m.person_id) AS mx FROM measurement m) t GROUP BY 1",
    "SELECT t.mx, COUNT(*) AS n FROM (SELECT m.person_id, MAX(m.value_as_number) OVER "
    "(PARTITION BY m.person_id > 0) AS mx FROM measurement m) t GROUP BY 1",
]


@pytest.mark.parametrize("sql", BROADCAST_WINDOWS)
def test_window_partitioned_by_an_expression_of_person_id_is_cross_person(sql: str) -> None:
    with pytest.raises(ScopeViolation) as info:
        _prepare(sql)
    assert info.value.rule == "aggregates.cross-person"


def test_partition_by_person_id_is_not_null_returns_the_cohort_maximum(
    aggregates: Any, reference: Any
) -> None:
    """The leak on data: every group shows the largest measurement of the cohort, one
    person's own value (MAX is refused as an aggregate in this mode)."""
    sql = (
        "SELECT p.gender_concept_id, COUNT(*) AS n, AVG(t.mx) AS mx FROM person p JOIN "
        "(SELECT m.person_id, MAX(m.value_as_number) OVER (PARTITION BY m.person_id IS NOT "
        "NULL) AS mx FROM measurement m) t ON t.person_id = p.person_id GROUP BY 1"
    )
    (top,) = reference.execute("SELECT MAX(value_as_number) FROM measurement").fetchone()
    try:
        got = aggregates.sql(sql)
    except ScopeViolation:
        return  # refused: fixed
    assert not (len(got) and ((got["mx"] - top).abs() < 1e-6).all()), (
        "one person's maximum was returned"
    )


# -- 2. DISTINCT ON across persons -------------------------------------------------------


def test_distinct_on_below_the_outer_query_is_cross_person() -> None:
    """DISTINCT ON (year) ... ORDER BY value DESC = ROW_NUMBER() OVER (PARTITION BY year
    ORDER BY value DESC) = 1, which is refused; the DISTINCT ON spelling is accepted."""
    window = (
        "WITH t AS (SELECT m.person_id, m.value_as_number AS v, ROW_NUMBER() OVER (PARTITION "
        "BY p.year_of_birth ORDER BY m.value_as_number DESC) AS rn FROM measurement m JOIN "
        "person p ON p.person_id = m.person_id) SELECT COUNT(*) AS n, AVG(t.v) AS v FROM t "
        "WHERE t.rn = 1"
    )
    with pytest.raises(ScopeViolation):
        _prepare(window)
    distinct_on = (
        "WITH t AS (SELECT DISTINCT ON (p.year_of_birth) m.person_id, m.value_as_number AS v "
        "FROM measurement m JOIN person p ON p.person_id = m.person_id ORDER BY "
        "p.year_of_birth, m.value_as_number DESC) SELECT COUNT(*) AS n, AVG(t.v) AS v FROM t"
    )
    with pytest.raises(ScopeViolation) as info:
        _prepare(distinct_on)
    assert info.value.rule == "aggregates.cross-person"


# -- 3. ORDER BY ... LIMIT across persons ------------------------------------------------


@pytest.mark.parametrize("tail", ["LIMIT 11", "LIMIT 10 OFFSET 1"])
def test_top_n_across_persons_in_a_cte_is_cross_person(tail: str) -> None:
    """SUM over the top 11 minus SUM over the top 10 is the 11th largest value."""
    sql = (
        "WITH t AS (SELECT m.person_id, m.value_as_number AS v FROM measurement m ORDER BY "
        f"m.value_as_number DESC {tail}) SELECT COUNT(*) AS n, SUM(t.v) AS s FROM t"
    )
    with pytest.raises(ScopeViolation) as info:
        _prepare(sql)
    assert info.value.rule == "aggregates.cross-person"


# -- still allowed: per-person forms -----------------------------------------------------

PER_PERSON = {
    "partition-bare": "SELECT t.mx, COUNT(*) AS n FROM (SELECT m.person_id, "
    "SUM(m.value_as_number) OVER (PARTITION BY m.person_id) AS mx FROM measurement m) t "
    "GROUP BY 1",
    "partition-paren": "SELECT COUNT(*) AS n, AVG(t.mx) AS mx FROM (SELECT m.person_id, "
    "SUM(m.value_as_number) OVER (PARTITION BY (m.person_id), m.measurement_concept_id) AS mx "
    "FROM measurement m) t",
    "group-bare": "SELECT COUNT(*) AS n, AVG(t.k) AS k FROM (SELECT m.person_id, COUNT(*) AS k "
    "FROM measurement m GROUP BY m.person_id) t",
    "distinct-on-person": "WITH t AS (SELECT DISTINCT ON (m.person_id) m.person_id, "
    "m.value_as_number AS v FROM measurement m ORDER BY m.person_id, m.measurement_date DESC) "
    "SELECT COUNT(*) AS n, AVG(t.v) AS v FROM t",
    "limit-correlated": "SELECT COUNT(*) AS n FROM person p WHERE (SELECT m.value_as_number "
    "FROM measurement m WHERE m.person_id = p.person_id ORDER BY m.measurement_date DESC "
    "LIMIT 1) > 100",
}


@pytest.mark.parametrize("name", sorted(PER_PERSON))
def test_per_person_forms_are_still_accepted(name: str) -> None:
    _prepare(PER_PERSON[name])


CROSS_PERSON = {
    "group-expression": "SELECT COUNT(*) AS n, AVG(t.k) AS k FROM (SELECT m.person_id, "
    "COUNT(*) AS k FROM measurement m GROUP BY m.person_id * 1) t",
    "group-rollup": "SELECT COUNT(*) AS n, SUM(t.k) AS k FROM (SELECT m.person_id, COUNT(*) "
    "AS k FROM measurement m GROUP BY ROLLUP (m.person_id)) t",
    "top-per-person-groups": "WITH t AS (SELECT m.person_id, COUNT(*) AS k FROM measurement m "
    "GROUP BY m.person_id ORDER BY 2 DESC LIMIT 10) SELECT COUNT(*) AS n, SUM(t.k) AS k FROM t",
    "fetch": "WITH t AS (SELECT m.person_id, m.value_as_number AS v FROM measurement m ORDER BY "
    "m.value_as_number DESC FETCH FIRST 11 ROWS ONLY) SELECT COUNT(*) AS n, SUM(t.v) AS s "
    "FROM t",
    "in-limit": "SELECT COUNT(*) AS n FROM person p WHERE p.person_id IN (SELECT m.person_id "
    "FROM measurement m ORDER BY m.value_as_number DESC LIMIT 11)",
    "in-union-limit": "SELECT COUNT(*) AS n FROM person p WHERE p.person_id IN (SELECT "
    "m.person_id FROM measurement m UNION SELECT d.person_id FROM death d ORDER BY 1 "
    "LIMIT 11)",
    "distinct-on-expression": "WITH t AS (SELECT DISTINCT ON (m.person_id IS NOT NULL) "
    "m.person_id, m.value_as_number AS v FROM measurement m ORDER BY m.person_id IS NOT "
    "NULL, m.value_as_number DESC) SELECT COUNT(*) AS n, AVG(t.v) AS v FROM t",
}


@pytest.mark.parametrize("name", sorted(CROSS_PERSON))
def test_cross_person_variants_are_refused(name: str) -> None:
    with pytest.raises(ScopeViolation) as info:
        _prepare(CROSS_PERSON[name])
    # FETCH is refused earlier by the syntax allow-list; the rule would refuse it too
    assert info.value.rule in {
        "aggregates.cross-person",
        "aggregates.no-person",
        "syntax.unsupported",
    }
