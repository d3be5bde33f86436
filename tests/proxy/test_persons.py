"""The person-tracing facts aggregates mode and DP share (``sde/proxy/persons.py``).

Each row is (query, rule aggregates mode refuses it with, rule DP refuses it with), or
``None`` where the mode accepts it: one set of facts, each mode's own refusal.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlglot import exp, parse_one

from sde.dp.analyse import analyse
from sde.errors import SDEError
from sde.proxy.context import RuleContext
from sde.proxy.persons import OUTER, PID, PersonLinks, person_column, table_class
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.fixtures.proxy import scope_with

AGGREGATES = RuleContext(Scope.load(scope_with(project="htn-aggregates", access="aggregates")))

# An outer join's ON removes no row of the other side: it cannot tie two of them together.
CASES = [
    (
        "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p "
        "LEFT JOIN measurement m ON m.person_id = p.person_id "
        "LEFT JOIN condition_occurrence o ON o.person_id = m.person_id "
        "AND o.person_id = p.person_id GROUP BY 1",
        None,
        None,
    ),
    (  # every person paired with everyone's measurements
        "SELECT t.gender_concept_id, COUNT(*) AS n FROM (SELECT p.person_id, "
        "p.gender_concept_id FROM person p CROSS JOIN measurement m "
        "LEFT JOIN condition_occurrence o ON m.person_id = p.person_id "
        "AND o.person_id = p.person_id) t GROUP BY 1",
        "aggregates.cross-person",
        "dp.join-not-on-person",
    ),
    (  # the nullable relation as a bridge (the outermost aggregates query counts each source)
        "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p CROSS JOIN measurement m "
        "LEFT JOIN condition_occurrence o ON o.person_id = p.person_id "
        "AND o.person_id = m.person_id GROUP BY 1",
        None,
        "dp.join-not-on-person",
    ),
    (  # EXISTS is true when anyone has the value: one bit of an uncounted person
        "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p WHERE EXISTS (SELECT 1 "
        "FROM measurement m LEFT JOIN condition_occurrence o ON o.person_id = m.person_id "
        "AND m.person_id = p.person_id WHERE m.value_as_number = 123.25) GROUP BY 1",
        "aggregates.unbound",
        "dp.subquery-not-person-local",
    ),
    (  # unqualified, both are the subquery's own column: no correlation at all
        "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p WHERE EXISTS (SELECT 1 "
        "FROM measurement WHERE person_id = person_id AND value_as_number = 123.25) GROUP BY 1",
        "aggregates.unbound",
        "dp.subquery-not-person-local",
    ),
    (
        "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p WHERE EXISTS (SELECT 1 "
        "FROM measurement m WHERE m.person_id = p.person_id AND m.value_as_number > 1) "
        "GROUP BY 1",
        None,
        None,
    ),
    (  # correlated through an inner join's ON
        "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p WHERE EXISTS (SELECT 1 "
        "FROM measurement m JOIN condition_occurrence o ON o.person_id = m.person_id "
        "AND o.person_id = p.person_id) GROUP BY 1",
        None,
        None,
    ),
]


def _refusal(check: Callable[[str], object], sql: str) -> str | None:
    try:
        check(sql)
    except SDEError as err:
        return err.rule
    return None


@pytest.mark.parametrize(("sql", "aggregates", "dp"), CASES)
def test_each_mode_refuses_with_its_own_rule(
    sql: str, aggregates: str | None, dp: str | None
) -> None:
    assert _refusal(lambda q: prepare(q, AGGREGATES), sql) == aggregates
    assert _refusal(analyse, sql) == dp


def _links(sql: str, nodes: list[str]) -> PersonLinks:
    select = parse_one(sql)

    def node_of(column: exp.Column) -> str | None:
        if column.name != PID:
            return None
        return column.table if column.table in nodes else OUTER

    return PersonLinks(select, nodes, node_of)


def test_inner_equalities_link_and_outer_ones_tie_only_the_joined_relation() -> None:
    inner = _links("SELECT 1 FROM a JOIN b ON b.person_id = a.person_id, c", ["a", "b", "c"])
    assert inner.connected("a", "b")
    assert inner.components(["a", "b", "c"]) == 2
    left = _links(
        "SELECT 1 FROM a CROSS JOIN b LEFT JOIN c ON c.person_id = a.person_id "
        "AND c.person_id = b.person_id AND a.person_id = b.person_id",
        ["a", "b", "c"],
    )
    assert not left.connected("a", "b")
    assert left.components(["a", "b", "c"]) == 2
    where = _links(
        "SELECT 1 FROM a LEFT JOIN c ON c.person_id = a.person_id CROSS JOIN b "
        "WHERE b.person_id = c.person_id",
        ["a", "b", "c"],
    )
    assert where.components(["a", "b", "c"]) == 1  # WHERE keeps only rows where c is a's
    outer = _links("SELECT 1 FROM a WHERE a.person_id = x.person_id", ["a"])
    assert outer.connected("a", OUTER)


def test_person_columns_of_tables() -> None:
    assert person_column("measurement") == PID
    assert person_column("cohort") == "subject_id"
    assert person_column("concept") is None
    assert table_class("note_nlp") == ("untraced", None)
