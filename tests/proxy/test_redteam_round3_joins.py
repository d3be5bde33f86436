"""Red-team round 3: join holes found open in aggregates mode, now closed.

D. Constant "calendar" CTEs were free cross joins: ``person p CROSS JOIN c CROSS JOIN c``
   with a 100,000-row calendar multiplies each matching person by 10^10 rows, so a WHERE
   aimed at a group of ONE person (a year of birth) timed out (``limits.timeout``) exactly
   when that person exists, and returned an empty result at once when not: an existence
   oracle on a group below the threshold, through whether the query fails. An equality
   between two constant columns (``JOIN d b ON b.one = a.one``) built the same product: it
   counted as a join condition. Now a calendar's free joins count unless an equality ties
   it to a column of a table, an equality between constants constrains nothing, and the
   constant rows joined to tables multiply to at most 100,000.
E. ``PersonLinks`` treated the relation after ``RIGHT JOIN``/``FULL JOIN`` as the
   NULL-extended side (as for LEFT JOIN), but RIGHT/FULL keep every row of it: ``(SELECT
   COUNT(*) FROM concept c RIGHT JOIN person q ON q.person_id = p.person_id AND ... WHERE
   q.year_of_birth = 1913)`` passed as "correlated on person_id" (so the per-person checks
   were skipped) and put the exact size of a one-person group on every person's row. Now
   the ON of a RIGHT join ties only the relations before it, and that of a FULL join none.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlglot import parse_one

import sde
from sde.errors import ScopeViolation, SDEError
from sde.proxy.context import RuleContext
from sde.proxy.persons import OUTER, PID, PersonLinks, person_equalities
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.fixtures.proxy import scope_with

AGGREGATES = scope_with(project="rt3-joins", access="aggregates")


def _prepare(sql: str) -> Any:
    return prepare(sql, RuleContext(Scope.from_dict(AGGREGATES)))


@pytest.fixture(scope="module")
def aggregates(sentinel_nodes: Any) -> Any:
    conn = sde.connect(sentinel_nodes.folder, scope=AGGREGATES, user="tester")
    yield conn
    conn.close()


# -- D. timeout oracle through free constant cross joins ---------------------------------

DIGITS = " UNION ALL ".join(f"SELECT {i} AS x, 1 AS one" for i in range(10))
SAME = " UNION ALL ".join("SELECT 8527 AS x, 1 AS one" for _ in range(10))
CALENDARS = {
    # free since constant CTEs no longer count as cross joins
    "comma": f"WITH d AS ({DIGITS}), c AS (SELECT a.x FROM d a, d b, d c2, d e, d f) ",
    # an equality between two constant columns counts as a join condition, never a cross join
    "equal-ones": f"WITH d AS ({DIGITS}), c AS (SELECT a.x FROM d a JOIN d b ON b.one = a.one "
    "JOIN d c2 ON c2.one = a.one JOIN d e ON e.one = a.one JOIN d f ON f.one = a.one) ",
}
ORACLES = {
    "comma": CALENDARS["comma"] + "SELECT COUNT(*) AS n FROM person p CROSS JOIN c c1 CROSS "
    "JOIN c c3 WHERE p.year_of_birth = {year}",
    "equal-ones": CALENDARS["equal-ones"] + "SELECT COUNT(*) AS n FROM person p CROSS JOIN c "
    "c1 CROSS JOIN c c3 WHERE p.year_of_birth = {year}",
    # the calendar first, the person table joined to it
    "calendar-first": CALENDARS["comma"] + "SELECT COUNT(*) AS n FROM c c1 CROSS JOIN person p "
    "CROSS JOIN c c3 WHERE p.year_of_birth = {year}",
    # an equality between a constant and a data column where every constant matches
    "equal-to-data": f"WITH d AS ({SAME}), c AS (SELECT a.x FROM d a, d b, d c2, d e, d f) "
    "SELECT COUNT(*) AS n FROM person p JOIN c c1 ON c1.x = p.race_concept_id JOIN c c3 ON "
    "c3.x = p.race_concept_id WHERE p.year_of_birth = {year}",
    # one calendar joined to persons on a column, the result joined to itself on person_id
    "self-join": "WITH d AS (SELECT 8507 AS x UNION ALL SELECT 8532), c AS (SELECT a.x FROM "
    "d a, d b, d c2, d e, d f, d g, d h, d i, d j, d k, d l, d m, d n, d o, d q, d r), pc AS "
    "(SELECT p.person_id, p.year_of_birth FROM person p JOIN c ON c.x = p.gender_concept_id) "
    "SELECT COUNT(*) AS n FROM pc a JOIN pc b ON a.person_id = b.person_id WHERE "
    "a.year_of_birth = {year}",
    # the two calendars joined to each other on constants, then to the person
    "constant-prefix": CALENDARS["comma"] + "SELECT COUNT(*) AS n FROM c c1 JOIN c c3 ON c3.x "
    "= c1.x CROSS JOIN person p WHERE p.year_of_birth = {year}",
}


def _outcome(conn: Any, sql: str) -> tuple[str, Any]:
    try:
        return ("rows", conn.sql(sql).values.tolist())
    except SDEError as err:
        return ("error", err.rule)


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_existence_of_one_person_does_not_decide_a_timeout(
    name: str, sentinel_nodes: Any, reference: Any
) -> None:
    (single,) = reference.execute(
        "SELECT year_of_birth FROM person GROUP BY 1 HAVING COUNT(*) = 1 ORDER BY 1 LIMIT 1"
    ).fetchone()
    (none,) = reference.execute(
        "SELECT 1900 WHERE NOT EXISTS (SELECT 1 FROM person WHERE year_of_birth = 1900)"
    ).fetchone()
    conn = sde.connect(sentinel_nodes.folder, scope=AGGREGATES, user="tester", timeout_s=1.0)
    try:
        outcomes = {
            year: _outcome(conn, ORACLES[name].format(year=year)) for year in (single, none)
        }
    finally:
        conn.close()
    # a group of one person (suppressed) and no group at all must look the same
    assert outcomes[single] == outcomes[none], outcomes
    assert outcomes[single] == ("error", "limits.cross-join"), outcomes


#: Calendars joined to data by a real equality stay allowed.
CALENDAR_ALLOWED = [
    # OHDSI-style: years x months joined to events on expressions of their dates
    "WITH y AS (SELECT 2018 AS y UNION ALL SELECT 2019), m AS (SELECT 1 AS m UNION ALL "
    "SELECT 7) SELECT y.y, m.m, COUNT(*) AS n FROM y CROSS JOIN m JOIN condition_occurrence c "
    "ON EXTRACT(YEAR FROM c.condition_start_date) = y.y AND EXTRACT(MONTH FROM "
    "c.condition_start_date) = m.m GROUP BY 1, 2",
    # a 10,000-row calendar CTE joined to persons on a column
    CALENDARS["comma"].replace(", d e, d f", "")
    + "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p JOIN c ON c.x = "
    "p.gender_concept_id GROUP BY 1",
    # a small calendar cross joined to persons: one free join inside, one cross join
    "WITH d AS (SELECT 1 AS x UNION ALL SELECT 2), c AS (SELECT a.x FROM d a, d b) SELECT "
    "p.year_of_birth, COUNT(*) AS n FROM person p CROSS JOIN c GROUP BY 1",
]


@pytest.mark.parametrize("sql", CALENDAR_ALLOWED)
def test_calendars_tied_to_data_stay_allowed(sql: str) -> None:
    _prepare(sql)


@pytest.mark.parametrize(
    "sql",
    [
        # 4 free joins inside the calendar count once it is cross joined to persons
        CALENDARS["comma"] + "SELECT COUNT(*) AS n FROM person p CROSS JOIN c",
        # an equality between constants is no join condition
        f"WITH d AS ({DIGITS}) SELECT COUNT(*) AS n FROM person p CROSS JOIN d a JOIN d b ON "
        "b.one = a.one JOIN d e ON e.one = a.one",
    ],
)
def test_calendars_not_tied_to_data_count_as_cross_joins(sql: str) -> None:
    with pytest.raises(ScopeViolation) as info:
        _prepare(sql)
    assert info.value.rule == "limits.cross-join"


# -- E. RIGHT/FULL JOIN read as if its joined relation were the NULL-extended side --------

#: ``PersonLinks`` linked the relation after RIGHT/FULL JOIN to the outer person through its
#: ON, as for LEFT JOIN; but a RIGHT (or FULL) join keeps every row of that relation, so
#: the "correlated" subquery reads everybody's rows, and being correlated it skips the
#: per-person checks.
RIGHT_JOIN_BROADCAST = {
    "right-max": "SELECT t.mx, COUNT(*) AS n FROM (SELECT p.person_id, (SELECT "
    "MAX(m.value_as_number) FROM concept c RIGHT JOIN measurement m ON m.person_id = "
    "p.person_id AND c.concept_id = m.measurement_concept_id) AS mx FROM person p) t GROUP BY 1",
    "right-outer-max": "SELECT t.mx, COUNT(*) AS n FROM (SELECT p.person_id, (SELECT "
    "MAX(m.value_as_number) FROM concept c RIGHT OUTER JOIN measurement m ON m.person_id = "
    "p.person_id AND c.concept_id = m.measurement_concept_id) AS mx FROM person p) t GROUP BY 1",
    "full-max": "SELECT t.mx, COUNT(*) AS n FROM (SELECT p.person_id, (SELECT "
    "MAX(m.value_as_number) FROM concept c FULL JOIN measurement m ON m.person_id = "
    "p.person_id AND c.concept_id = m.measurement_concept_id) AS mx FROM person p) t GROUP BY 1",
    "full-outer-max": "SELECT t.mx, COUNT(*) AS n FROM (SELECT p.person_id, (SELECT "
    "MAX(m.value_as_number) FROM concept c FULL OUTER JOIN measurement m ON m.person_id = "
    "p.person_id AND c.concept_id = m.measurement_concept_id) AS mx FROM person p) t GROUP BY 1",
    "right-where": "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p WHERE (SELECT "
    "MAX(m.value_as_number) FROM concept c RIGHT JOIN measurement m ON m.person_id = "
    "p.person_id AND c.concept_id = m.measurement_concept_id) > 100 GROUP BY 1",
}


@pytest.mark.parametrize("name", sorted(RIGHT_JOIN_BROADCAST))
def test_right_or_full_join_on_is_not_a_correlation(name: str) -> None:
    with pytest.raises(ScopeViolation) as info:
        _prepare(RIGHT_JOIN_BROADCAST[name])
    assert info.value.rule in {"aggregates.cross-person", "aggregates.unbound"}


def test_right_join_reads_the_size_of_a_one_person_group(aggregates: Any, reference: Any) -> None:
    """Every person's row carried the exact size of a year-of-birth group of 1 and 2."""
    sizes = dict(
        reference.execute(
            "SELECT year_of_birth, COUNT(*) FROM person GROUP BY 1 HAVING COUNT(*) < 3"
        ).fetchall()
    )
    assert sizes
    seen = {}
    for year in sorted(sizes)[:3]:
        sql = (
            "SELECT t.k, COUNT(*) AS n FROM (SELECT p.person_id, (SELECT COUNT(*) FROM concept c "
            "RIGHT JOIN person q ON q.person_id = p.person_id AND c.concept_id = "
            f"q.gender_concept_id WHERE q.year_of_birth = {year}) AS k FROM person p) t GROUP BY 1"
        )
        try:
            got = aggregates.sql(sql)
        except ScopeViolation:
            continue  # refused: fixed
        seen[year] = got["k"].tolist()
    leaked = {y: k for y, k in seen.items() if k == [sizes[y]]}
    assert not leaked, f"sizes of groups under the threshold read: {leaked}"


@pytest.mark.parametrize(
    ("sql", "linked", "apart"),
    [
        # LEFT pads the joined relation: it holds the kept side's person
        ("SELECT 1 FROM a LEFT JOIN b ON b.person_id = a.person_id", [("a", "b")], []),
        # RIGHT pads the relations before it: they hold the joined relation's person
        ("SELECT 1 FROM a RIGHT JOIN b ON b.person_id = a.person_id", [("a", "b")], []),
        # RIGHT keeps every row of b: an equality of b with an outer person ties nothing
        ("SELECT 1 FROM c RIGHT JOIN b ON b.person_id = o.person_id", [], [("b", OUTER)]),
        ("SELECT 1 FROM c RIGHT OUTER JOIN b ON b.person_id = o.person_id", [], [("b", OUTER)]),
        # FULL keeps every row of both sides
        ("SELECT 1 FROM a FULL JOIN b ON b.person_id = a.person_id", [], [("a", "b")]),
        ("SELECT 1 FROM a FULL OUTER JOIN b ON b.person_id = a.person_id", [], [("a", "b")]),
        # LEFT keeps every row of a: an equality of a with an outer person ties nothing
        ("SELECT 1 FROM a LEFT JOIN c ON a.person_id = o.person_id", [], [("a", OUTER)]),
        # but the padded side of RIGHT may be tied to the outer person
        ("SELECT 1 FROM a RIGHT JOIN c ON a.person_id = o.person_id", [("a", OUTER)], []),
    ],
)
def test_outer_join_links_only_the_padded_side(
    sql: str, linked: list[tuple[str, str]], apart: list[tuple[str, str]]
) -> None:
    select = parse_one(sql)
    nodes = [n for n in "abc" if f" {n} " in f"{sql} "]

    def node_of(col: Any) -> str | None:
        if col.name != PID:
            return None
        return OUTER if col.table == "o" else col.table

    links = PersonLinks(select, nodes, node_of)
    for a, b in linked:
        assert links.connected(a, b), (a, b)
    for a, b in apart:
        assert not links.connected(a, b), (a, b)
    assert person_equalities(parse_one("SELECT 1 FROM a FULL JOIN b ON b.x = a.x"), node_of) == []
